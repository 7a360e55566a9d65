//! Integration tests live in `tests/`; see README.md.
