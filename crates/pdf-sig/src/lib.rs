//! Incremental-update PDF signature writer that keeps every earlier byte and signature.
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
