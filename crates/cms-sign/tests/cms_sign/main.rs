//! Integration tests of cms-sign: one binary (see STYLE.md, "Tests").
//!
//! Every signature made here is judged by OpenSSL (`openssl cms -verify`) as well as by
//! the crate's own verifier. Under `CI` a missing openssl fails the tests.

mod builder;
mod decode;
mod interop;
mod softhsm;
mod support;
mod timestamp;
