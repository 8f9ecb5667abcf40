//! PKCS#11 login-state machine, session pool and shared key handles for concurrent signing.
//!
//! This crate is being built; see the issue tracker.

#![forbid(unsafe_code)]
