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
}
