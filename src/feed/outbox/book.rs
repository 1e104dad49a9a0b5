//! The outbox's content: what the receiver accepted and no sink has had yet, as it is kept in
//! storage. Pure: time and sequence numbers come in as arguments.
//!
//! - An entry names a contact, the kind of change (an update or a deletion), what announced
//!   it and when: ids and GHL's event names only, never personal data.
//! - Entries for one contact coalesce: a newer update merges into the pending update (its
//!   sequence number moves up), and a deletion supersedes the updates before it. A deletion is
//!   never merged away: an update after it is kept beside it.
//! - It is bounded in entries and bytes: past either, [`Book::add`] refuses ([`Full`]) and the
//!   receiver answers 429, which GHL retries.
//! - An entry leaves with [`Book::ack`] once every sink that wanted it has it (or gave up).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    #[serde(rename = "u")]
    Updated,
    #[serde(rename = "d")]
    Deleted,
}

/// One accepted change. Stored as a compact JSON array: `[seq, "u"|"d", contact, trigger, ms]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Orders the entries; an acknowledgement covers the entries up to one.
    pub seq: u64,
    pub change: Change,
    pub contact: String,
    /// The GHL event that announced it (`ContactUpdate`, `NoteCreate`, …).
    pub trigger: String,
    /// When it was accepted (Unix milliseconds).
    pub at_ms: i64,
}

impl Entry {
    /// Its size in storage (what the byte bound counts).
    pub fn size(&self) -> usize {
        serde_json::to_string(&self.as_row()).map_or(0, |s| s.len() + 1)
    }

    fn as_row(&self) -> (u64, Change, &str, &str, i64) {
        (
            self.seq,
            self.change,
            &self.contact,
            &self.trigger,
            self.at_ms,
        )
    }
}

/// The bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub bytes: usize,
}

impl Limits {
    /// One Secret holds at most 1 MiB of data (etcd keeps the bytes as they are; base64 is
    /// only the JSON transit, well within the API server's request limit); this leaves room
    /// for the metadata. ~11,000 entries: a 10,000-contact burst fits.
    pub const MAX_BYTES: usize = 896 * 1024;

    pub fn new(entries: usize) -> Self {
        Self {
            entries: entries.max(1),
            bytes: Self::MAX_BYTES,
        }
    }
}

/// The outbox is full: the change is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the change feed's outbox is full ({entries} entries, {bytes} bytes)")]
pub struct Full {
    pub entries: usize,
    pub bytes: usize,
}

/// A stored outbox that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the outbox cannot be read: {0}")]
pub struct Unreadable(#[from] serde_json::Error);

/// The entries, by sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    entries: BTreeMap<u64, Entry>,
    bytes: usize,
}

impl Book {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes in storage.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// When the oldest entry was accepted (Unix milliseconds).
    pub fn oldest_ms(&self) -> Option<i64> {
        self.entries.values().map(|e| e.at_ms).min()
    }

    /// The highest sequence number held.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    fn insert(&mut self, entry: Entry) {
        self.bytes += entry.size();
        if let Some(old) = self.entries.insert(entry.seq, entry) {
            self.bytes -= old.size();
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let removed = self.entries.remove(&seq)?;
        self.bytes -= removed.size();
        Some(removed)
    }

    /// The pending entries of `contact`, oldest first.
    fn of(&self, contact: &str) -> Vec<u64> {
        self.entries
            .values()
            .filter(|e| e.contact == contact)
            .map(|e| e.seq)
            .collect()
    }

    /// Records `entry` (its `seq` above every one held), coalescing with the contact's pending
    /// entries; refused when the result would not fit `limits` (a change that coalesces takes
    /// no new entry, so a full outbox still takes it unless it is bytes longer).
    pub fn add(&mut self, entry: Entry, limits: Limits) -> Result<(), Full> {
        let pending = self.of(&entry.contact);
        let last = pending.last().and_then(|seq| self.entries.get(seq));
        let replaced: Vec<u64> = match (entry.change, last.map(|e| e.change)) {
            // A newer update takes the place of the pending one.
            (Change::Updated, Some(Change::Updated)) => {
                pending.last().copied().into_iter().collect()
            }
            // A deletion supersedes the updates since the last deletion (kept).
            (Change::Deleted, _) => pending
                .iter()
                .copied()
                .filter(|seq| self.entries[seq].change == Change::Updated)
                .collect(),
            // An update after a deletion stays beside it.
            (Change::Updated, _) => Vec::new(),
        };
        let freed: usize = replaced.iter().map(|seq| self.entries[seq].size()).sum();
        let entries = self.entries.len() - replaced.len() + 1;
        let bytes = self.bytes - freed + entry.size();
        if entries > limits.entries || bytes > limits.bytes {
            return Err(Full {
                entries: self.entries.len(),
                bytes: self.bytes,
            });
        }
        for seq in replaced {
            self.remove(seq);
        }
        self.insert(entry);
        Ok(())
    }

    /// `contact`'s entries up to `seq` were delivered to every sink that wanted them (or given
    /// up): they leave. True when any did.
    pub fn ack(&mut self, contact: &str, seq: u64) -> bool {
        let done: Vec<u64> = self.of(contact).into_iter().filter(|s| *s <= seq).collect();
        for s in &done {
            self.remove(*s);
        }
        !done.is_empty()
    }

    /// Everything `other` holds that this book does not (after two writers raced: nothing
    /// either accepted is lost; an entry one had acknowledged may come back and be delivered
    /// again, with the same event id).
    pub fn merge(&mut self, other: &Book) {
        for entry in other.entries.values() {
            if !self.entries.contains_key(&entry.seq) {
                self.insert(entry.clone());
            }
        }
    }

    /// The stored form: one JSON array per line.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        for entry in self.entries.values() {
            if let Ok(row) = serde_json::to_string(&entry.as_row()) {
                out.push_str(&row);
                out.push('\n');
            }
        }
        out
    }

    /// Reads the stored form; a line that is not an entry makes the whole unreadable (the
    /// caller keeps the object and says so rather than drop what it holds).
    pub fn decode(text: &str) -> Result<Self, Unreadable> {
        let mut book = Book::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (seq, change, contact, trigger, at_ms): (u64, Change, String, String, i64) =
                serde_json::from_str(line)?;
            book.insert(Entry {
                seq,
                change,
                contact,
                trigger,
                at_ms,
            });
        }
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, change: Change, contact: &str) -> Entry {
        Entry {
            seq,
            change,
            contact: contact.into(),
            trigger: match change {
                Change::Updated => "ContactUpdate".into(),
                Change::Deleted => "ContactDelete".into(),
            },
            at_ms: 1_700_000_000_000 + seq as i64,
        }
    }

    fn kinds(book: &Book) -> Vec<(u64, &str, Change)> {
        book.entries()
            .map(|e| (e.seq, e.contact.as_str(), e.change))
            .collect()
    }

    const ROOMY: Limits = Limits {
        entries: 100,
        bytes: 1 << 20,
    };

    #[test]
    fn changes_to_one_contact_coalesce_but_a_deletion_is_never_merged_away() {
        use Change::{Deleted as D, Updated as U};
        // (changes in order, what is kept)
        type Changes = &'static [(u64, Change, &'static str)];
        type Kept = &'static [(u64, &'static str, Change)];
        let table: &[(Changes, Kept)] = &[
            (&[(1, U, "a"), (2, U, "a")], &[(2, "a", U)]),
            (&[(1, U, "a"), (2, U, "b")], &[(1, "a", U), (2, "b", U)]),
            (&[(1, U, "a"), (2, D, "a")], &[(2, "a", D)]),
            (&[(1, D, "a"), (2, U, "a")], &[(1, "a", D), (2, "a", U)]),
            (
                &[(1, D, "a"), (2, U, "a"), (3, U, "a")],
                &[(1, "a", D), (3, "a", U)],
            ),
            (
                &[(1, D, "a"), (2, U, "a"), (3, D, "a")],
                &[(1, "a", D), (3, "a", D)],
            ),
            (&[(1, D, "a"), (2, D, "a")], &[(1, "a", D), (2, "a", D)]),
        ];
        for (changes, kept) in table {
            let mut book = Book::default();
            for (seq, change, contact) in *changes {
                book.add(entry(*seq, *change, contact), ROOMY).unwrap();
            }
            assert_eq!(kinds(&book), *kept, "{changes:?}");
            let bytes: usize = book.entries().map(Entry::size).sum();
            assert_eq!(book.bytes(), bytes, "{changes:?}");
        }
    }

    #[test]
    fn past_its_bounds_it_refuses_new_contacts_but_still_coalesces() {
        let limits = Limits {
            entries: 2,
            bytes: 1 << 20,
        };
        let mut book = Book::default();
        book.add(entry(1, Change::Updated, "a"), limits).unwrap();
        book.add(entry(2, Change::Updated, "b"), limits).unwrap();
        assert!(book.add(entry(3, Change::Updated, "c"), limits).is_err());
        assert!(book.add(entry(4, Change::Deleted, "c"), limits).is_err());
        // Taking no room: accepted.
        book.add(entry(5, Change::Updated, "a"), limits).unwrap();
        book.add(entry(6, Change::Deleted, "b"), limits).unwrap();
        assert_eq!(book.len(), 2);
        let one = entry(1, Change::Updated, "a").size();
        let tight = Limits {
            entries: 100,
            bytes: one * 2,
        };
        let mut book = Book::default();
        book.add(entry(1, Change::Updated, "a"), tight).unwrap();
        book.add(entry(2, Change::Updated, "b"), tight).unwrap();
        assert!(book.add(entry(3, Change::Updated, "c"), tight).is_err());
    }

    #[test]
    fn an_acknowledgement_covers_entries_up_to_its_sequence_number() {
        let mut book = Book::default();
        book.add(entry(1, Change::Deleted, "a"), ROOMY).unwrap();
        book.add(entry(2, Change::Updated, "a"), ROOMY).unwrap();
        book.add(entry(3, Change::Updated, "b"), ROOMY).unwrap();
        assert!(book.ack("a", 1));
        assert_eq!(
            kinds(&book),
            [(2, "a", Change::Updated), (3, "b", Change::Updated)]
        );
        assert!(!book.ack("a", 1), "nothing left up to 1");
        assert!(!book.ack("c", 9));
        assert!(book.ack("a", 9));
        assert_eq!(book.len(), 1);
        assert!(book.ack("b", 3));
        assert!(book.is_empty());
        assert_eq!(book.bytes(), 0);
    }

    #[test]
    fn it_round_trips_through_its_stored_form_and_refuses_what_is_not_one() {
        let mut book = Book::default();
        book.add(entry(1, Change::Deleted, "a\n\"quoted\"\ttab"), ROOMY)
            .unwrap();
        book.add(entry(2, Change::Updated, "b"), ROOMY).unwrap();
        let text = book.encode();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(text.len(), book.bytes());
        assert_eq!(Book::decode(&text).unwrap(), book);
        assert_eq!(Book::decode("").unwrap(), Book::default());
        for bad in [
            "{}",
            "[1,\"x\",\"a\",\"t\",0]",
            "[1,\"u\",\"a\"]",
            "not json",
        ] {
            assert!(Book::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_what_either_accepted() {
        let mut ours = Book::default();
        ours.add(entry(1, Change::Updated, "a"), ROOMY).unwrap();
        let mut theirs = Book::default();
        theirs.add(entry(2, Change::Deleted, "b"), ROOMY).unwrap();
        theirs.add(entry(1, Change::Updated, "a"), ROOMY).unwrap();
        ours.merge(&theirs);
        assert_eq!(
            kinds(&ours),
            [(1, "a", Change::Updated), (2, "b", Change::Deleted)]
        );
        assert_eq!(ours.bytes(), ours.encode().len());
    }
}
