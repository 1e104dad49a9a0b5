//! Keeping contact personal data out of logs, Events, metrics and status.
//!
//! Text that came from GHL (error messages) or from users' records can echo an email address or
//! a phone number. Everything such text passes through [`redact`] before it leaves the process.

/// Longest free text the operator repeats from elsewhere.
const MAX_LEN: usize = 300;

/// Replaces email addresses and phone-number-like digit runs with `[redacted]` and caps the
/// length. Cheap enough to call on every error message.
pub fn redact(text: &str) -> String {
    let text = &unquote_values(text);
    let mut out = String::with_capacity(text.len().min(MAX_LEN));
    for (i, word) in text.split_inclusive(char::is_whitespace).enumerate() {
        if i > 0 && out.len() >= MAX_LEN {
            out.push('…');
            break;
        }
        let trimmed = word.trim_end();
        let trailing = &word[trimmed.len()..];
        if looks_like_email(trimmed) || looks_like_phone(trimmed) {
            out.push_str("[redacted]");
        } else {
            out.push_str(trimmed);
        }
        out.push_str(trailing);
    }
    if out.len() > MAX_LEN + 3 {
        let mut cut = MAX_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Parsers quote offending values in backticks (`` invalid type: integer `5` ``): drop them.
fn unquote_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            out.push_str("[redacted]");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn looks_like_email(word: &str) -> bool {
    match word.find('@') {
        Some(at) => at > 0 && word[at + 1..].contains('.'),
        None => false,
    }
}

fn looks_like_phone(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let phone_chars = word
        .chars()
        .all(|c| c.is_ascii_digit() || "+-().,:;\"'[]".contains(c));
    digits >= 7 && phone_chars
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn emails_and_phones_are_removed() {
        let text = "contact ada@example.com with phone +1 415-555-0100 or +14155550100 exists";
        let out = redact(text);
        assert!(!out.contains("ada@example.com"), "{out}");
        assert!(!out.contains("14155550100"), "{out}");
        assert!(out.contains("contact [redacted] with phone"), "{out}");
    }

    #[test]
    fn quoted_values_from_parsers_are_removed() {
        let out = redact("invalid type: string `Ada Lovelace`, expected a boolean");
        assert_eq!(out, "invalid type: string [redacted], expected a boolean");
    }

    #[test]
    fn ordinary_text_and_ids_are_kept() {
        let text = "property gender should not exist (contact seD4PfOuKoVMLkEZqohJ, 422)";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn long_text_is_capped_on_a_char_boundary() {
        let text = "é".repeat(1000);
        let out = redact(&text);
        assert!(out.chars().count() <= 302, "{}", out.len());
        assert!(out.ends_with('…'));
    }
}
