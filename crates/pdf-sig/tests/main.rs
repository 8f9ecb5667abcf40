//! Integration tests of pdf-sig: one binary (`autotests = false`), one module per
//! concern. Every signed output is judged by independent validators (see `support`).

mod support;

mod reader;
mod refusals;
mod signing;
mod two_phase;
