//! End-to-end tests of the pdfsign workspace live in this crate's integration tests.

#![forbid(unsafe_code)]
