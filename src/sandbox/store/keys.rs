//! The location's contacts by duplicate-matching key (lower-case email, phone digits), kept in
//! step with every write, so the duplicate rule costs a lookup rather than a scan of the
//! location (a 100,000-contact converge makes 100,000 creates).

use std::collections::{BTreeSet, HashMap};

/// Ids by email and by phone; the lowest id first, as a scan of the id-ordered store finds it.
#[derive(Debug, Default)]
pub(super) struct MatchKeys {
    by_email: HashMap<String, BTreeSet<String>>,
    by_phone: HashMap<String, BTreeSet<String>>,
    /// What each contact is filed under, to unfile it when it changes.
    filed: HashMap<String, (Option<String>, Option<String>)>,
}

impl MatchKeys {
    /// Files contact `id` under its current email and phone (`None`s: deleted or absent).
    pub(super) fn file(&mut self, id: &str, email: Option<&str>, phone: Option<&str>) {
        let email = email.map(str::to_lowercase);
        let phone = phone.map(super::phone_digits).filter(|d| !d.is_empty());
        if let Some((old_email, old_phone)) = self.filed.remove(id) {
            unfile(&mut self.by_email, old_email, id);
            unfile(&mut self.by_phone, old_phone, id);
        }
        if email.is_none() && phone.is_none() {
            return;
        }
        for (index, key) in [(&mut self.by_email, &email), (&mut self.by_phone, &phone)] {
            if let Some(key) = key {
                index.entry(key.clone()).or_default().insert(id.to_owned());
            }
        }
        self.filed.insert(id.to_owned(), (email, phone));
    }

    /// The first contact with this email (any case).
    pub(super) fn email(&self, email: &str) -> Option<&str> {
        first(&self.by_email, &email.to_lowercase())
    }

    /// The first contact with these phone digits.
    pub(super) fn phone(&self, digits: &str) -> Option<&str> {
        first(&self.by_phone, digits)
    }

    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }
}

fn first<'a>(index: &'a HashMap<String, BTreeSet<String>>, key: &str) -> Option<&'a str> {
    index
        .get(key)
        .and_then(|ids| ids.first())
        .map(String::as_str)
}

fn unfile(index: &mut HashMap<String, BTreeSet<String>>, key: Option<String>, id: &str) {
    if let Some(key) = key
        && let Some(ids) = index.get_mut(&key)
    {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_changes_and_finds_the_lowest_id() {
        let mut keys = MatchKeys::default();
        keys.file("b", Some("Ann@X.io"), Some("+1 (555) 010"));
        keys.file("a", Some("ann@x.io"), None);
        assert_eq!(keys.email("ANN@x.io"), Some("a"));
        assert_eq!(keys.phone("1555010"), Some("b"));
        keys.file("a", Some("other@x.io"), None);
        assert_eq!(keys.email("ann@x.io"), Some("b"));
        keys.file("b", None, None);
        assert_eq!(keys.email("ann@x.io"), None);
        assert_eq!(keys.phone("1555010"), None);
        assert_eq!(keys.email("other@x.io"), Some("a"));
        keys.file("c", None, Some("no digits"));
        assert_eq!(keys.phone(""), None);
    }
}
