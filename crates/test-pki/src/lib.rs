//! Test-only PKI: the fixture CA chain, leaf certificates and software keys (not published).
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
