//! End-to-end tests of `pdfsign`: the binary against SoftHSM2 tokens from the test kit,
//! every output judged by independent validators (see `pdfsign_e2e`), and the library
//! where a count inside the process is needed.

mod batch;
mod errors;
mod library;
mod list;
mod sign;
mod verify;
