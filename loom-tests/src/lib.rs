//! Loom models of the `fanout` engine live in `tests/`; this crate has no code of its own.
