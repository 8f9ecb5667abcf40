//! Test kit: a fresh SoftHSM2 token per test, with keys and certificates (not published).
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
