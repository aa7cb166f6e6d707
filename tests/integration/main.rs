//! Integration tests: one binary.

mod api;
