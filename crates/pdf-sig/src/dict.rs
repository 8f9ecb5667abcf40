//! Looking up dictionary entries without allocating.

use lopdf::{Dictionary, Object};

/// An absent dictionary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Absent;

/// [`Dictionary::get`] builds an error message (two allocations) for every absent key,
/// and most keys asked for while planning an increment are optional: a one-page PDF
/// asked for ten absent keys per signature. This asks the map directly.
pub(crate) trait Entry {
    /// The value of `key`, or [`Absent`].
    fn at(&self, key: &[u8]) -> Result<&Object, Absent>;
}

impl Entry for Dictionary {
    fn at(&self, key: &[u8]) -> Result<&Object, Absent> {
        self.as_hashmap().get(key).ok_or(Absent)
    }
}

/// A dictionary of `entries`, its map sized once. lopdf's `FromIterator` inserts one by
/// one, growing and rehashing the map up to three times for a dozen entries. A later
/// duplicate key replaces the earlier one's value, as with [`Dictionary::set`].
pub(crate) fn dictionary<K: Into<Vec<u8>>>(
    entries: impl IntoIterator<Item = (K, Object)>,
) -> Dictionary {
    let mut dict = Dictionary::new();
    dict.as_hashmap_mut()
        .extend(entries.into_iter().map(|(key, value)| (key.into(), value)));
    dict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_and_absent() {
        let mut dict = Dictionary::new();
        dict.set("Type", Object::Name(b"Page".to_vec()));
        assert_eq!(dict.at(b"Type"), Ok(&Object::Name(b"Page".to_vec())));
        assert_eq!(dict.at(b"Parent"), Err(Absent));
    }

    #[test]
    fn built_at_once_like_set_one_by_one() {
        let entries = [
            ("A", Object::Integer(1)),
            ("B", Object::Integer(2)),
            ("A", Object::Integer(3)),
        ];
        let mut expected = Dictionary::new();
        for (key, value) in entries.clone() {
            expected.set(key, value);
        }
        let built = dictionary(entries);
        assert_eq!(built, expected);
        assert_eq!(
            built
                .iter()
                .map(|(key, _)| key.as_slice())
                .collect::<Vec<_>>(),
            [&b"A"[..], b"B"]
        );
    }
}
