//! Helpers for end-to-end tests and benchmarks.
