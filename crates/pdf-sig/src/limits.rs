//! Limits on hostile input (DESIGN.md, "pdf-sig: the increment").
//!
//! Each bounds the memory or time one malformed or malicious file can cost.

/// How deeply arrays and dictionaries may nest, and how deep the page and field trees
/// may go.
pub const MAX_NESTING: usize = 128;

/// The largest stream, raw or decoded, that the reader loads (object and
/// cross-reference streams): 64 MiB.
pub const MAX_STREAM_LEN: u64 = 64 * 1024 * 1024;

/// The largest number of cross-reference entries, over all sections: 2^23 - 1, the
/// highest object number PDF 1.7 allows readers to expect (Annex C).
pub const MAX_XREF_ENTRIES: u64 = 8_388_607;

/// The largest indirect object (not counting stream data) the reader parses: 16 MiB.
pub const MAX_OBJECT_LEN: u64 = 16 * 1024 * 1024;
