//! Sign PDF documents with keys held in PKCS#11 tokens, from many threads at once.
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
