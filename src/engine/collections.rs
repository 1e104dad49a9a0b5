//! Compact collections for per-contact data. A location can hold 100,000 managed contacts,
//! each with a handful of tags, fields, tasks and notes: B-tree nodes (sized for eleven
//! entries) would cost kilobytes per contact where sorted vectors cost bytes.

use serde::{Deserialize, Deserializer, Serialize};

/// A small sorted map (a sorted vector of pairs).
pub type SmallMap<K, V> = litemap::LiteMap<K, V>;

/// Short text held per contact (ids, field values, tags): up to 24 bytes inline, no heap
/// allocation — most GHL ids, emails, names and tags fit.
pub type Text = compact_str::CompactString;

/// A set of tags kept as a sorted, deduplicated vector of [`Text`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TagSet(Vec<Text>);

impl TagSet {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a tag; false when it was there already.
    pub fn insert(&mut self, tag: impl Into<Text>) -> bool {
        let tag = tag.into();
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

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.0.iter().map(Text::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tags in `self` but not in `other`.
    pub fn difference<'a>(&'a self, other: &'a TagSet) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |t| !other.contains(t))
    }

    /// Tags in both sets.
    pub fn intersection<'a>(&'a self, other: &'a TagSet) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |t| other.contains(t))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|t| keep(t));
    }
}

impl<T: Into<Text>> FromIterator<T> for TagSet {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut tags: Vec<Text> = iter.into_iter().map(Into::into).collect();
        tags.sort();
        tags.dedup();
        tags.shrink_to_fit();
        Self(tags)
    }
}

impl<T: Into<Text>> Extend<T> for TagSet {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for tag in iter {
            self.insert(tag);
        }
        // A vector grown by insertion keeps room for four; a ledger holds 100,000 of these.
        self.0.shrink_to_fit();
    }
}

impl<'de> Deserialize<'de> for TagSet {
    /// Accepts any list and restores the invariants (sorted, no duplicates).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Text>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_sorted_set() {
        let mut tags: TagSet = ["b", "a", "b"].into_iter().collect();
        assert_eq!(tags.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(tags.insert("c"));
        assert!(!tags.insert("a"));
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
