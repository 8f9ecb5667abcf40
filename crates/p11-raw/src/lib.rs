//! p11-raw
