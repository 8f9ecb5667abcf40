//! CMS SignedData (RFC 5652) for PAdES baseline signatures, signed through a key trait.
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
