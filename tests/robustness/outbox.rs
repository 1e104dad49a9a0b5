//! A stored outbox under hostile input: any text is read or refused, never a panic; whatever
//! is read keeps its byte count and survives being written and read again; adding and
//! acknowledging never breaks the bounds.

use ghl_operator::feed::outbox::{Book, Change, Entry, Limits};
use proptest::prelude::*;

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        (
            any::<u64>(),
            prop::bool::ANY,
            "\\PC{0,30}",
            "\\PC{0,20}",
            any::<i64>()
        )
            .prop_map(|(seq, deleted, contact, trigger, at)| {
                serde_json::json!([seq, if deleted { "d" } else { "u" }, contact, trigger, at])
                    .to_string()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_stored_text_is_read_or_refused(lines in prop::collection::vec(line(), 0..20)) {
        let text = lines.join("\n");
        if let Ok(book) = Book::decode(&text) {
            let again = Book::decode(&book.encode()).unwrap();
            prop_assert_eq!(again.bytes(), book.bytes());
            prop_assert_eq!(again, book);
        }
    }

    #[test]
    fn adds_and_acks_keep_the_bounds(
        ops in prop::collection::vec((0u8..3, 0usize..6, prop::bool::ANY), 0..200),
        entries in 1usize..10,
        bytes in 50usize..2000,
    ) {
        let limits = Limits { entries, bytes };
        let mut book = Book::default();
        for (seq, (op, contact, deleted)) in ops.into_iter().enumerate() {
            let contact = format!("contact-{contact}");
            match op {
                0 | 1 => {
                    let change = if deleted { Change::Deleted } else { Change::Updated };
                    let entry = Entry { seq: seq as u64, change, contact, trigger: "T".into(), at_ms: 0 };
                    let _ = book.add(entry, limits);
                }
                _ => {
                    book.ack(&contact, seq as u64);
                }
            }
            prop_assert!(book.len() <= entries);
            prop_assert!(book.bytes() <= bytes);
            prop_assert_eq!(book.bytes(), book.encode().len());
        }
    }
}
