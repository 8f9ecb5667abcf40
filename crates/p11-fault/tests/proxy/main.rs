//! The fault proxy over SoftHSM2: pass-through, each fault kind, each event, latency,
//! threads, and the spec from the environment. One binary; each test has its own token
//! and keeps its rules to that token's slot.

mod config;
mod events;
mod faults;
mod passthrough;
mod support;
mod threads;
