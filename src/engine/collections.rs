//! Compact collections for per-contact data. A location can hold 100,000 managed contacts,
//! each with a handful of tags, fields, tasks and notes: B-tree nodes (sized for eleven
//! entries) would cost kilobytes per contact where sorted vectors cost bytes.

use serde::{Deserialize, Deserializer, Serialize};

/// A small sorted map (a sorted vector of pairs).
pub type SmallMap<K, V> = litemap::LiteMap<K, V>;

/// A set of tags kept as a sorted, deduplicated vector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TagSet(Vec<String>);

impl TagSet {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a tag; false when it was there already.
    pub fn insert(&mut self, tag: String) -> bool {
        match self.0.binary_search(&tag) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, tag);
                true
            }
        }
    }

    pub fn remove(&mut self, tag: &str) -> bool {
        match self.0.binary_search_by(|t| t.as_str().cmp(tag)) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.0.binary_search_by(|t| t.as_str().cmp(tag)).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tags in `self` but not in `other`.
    pub fn difference<'a>(&'a self, other: &'a TagSet) -> impl Iterator<Item = &'a String> + 'a {
        self.0.iter().filter(move |t| !other.contains(t))
    }

    /// Tags in both sets.
    pub fn intersection<'a>(&'a self, other: &'a TagSet) -> impl Iterator<Item = &'a String> + 'a {
        self.0.iter().filter(move |t| other.contains(t))
    }

    pub fn retain(&mut self, keep: impl FnMut(&String) -> bool) {
        self.0.retain(keep);
    }
}

impl FromIterator<String> for TagSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut tags: Vec<String> = iter.into_iter().collect();
        tags.sort();
        tags.dedup();
        tags.shrink_to_fit();
        Self(tags)
    }
}

impl Extend<String> for TagSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, iter: I) {
        for tag in iter {
            self.insert(tag);
        }
    }
}

impl<'a> IntoIterator for &'a TagSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for TagSet {
    /// Accepts any list and restores the invariants (sorted, no duplicates).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_sorted_set() {
        let mut tags: TagSet = ["b", "a", "b"].into_iter().map(String::from).collect();
        assert_eq!(
            tags.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(tags.insert("c".into()));
        assert!(!tags.insert("a".into()));
        assert!(tags.remove("b"));
        assert!(!tags.contains("b"));
        let other: TagSet = ["a".to_owned()].into_iter().collect();
        assert_eq!(tags.difference(&other).collect::<Vec<_>>(), ["c"]);
        let json = serde_json::to_string(&tags).unwrap();
        assert_eq!(json, r#"["a","c"]"#);
        let back: TagSet = serde_json::from_str(r#"["c","a","c"]"#).unwrap();
        assert_eq!(back, tags);
    }
}
