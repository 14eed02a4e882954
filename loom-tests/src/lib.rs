//! Loom model checks of pc-core live in `tests/`, one file per structure. They compile only with
//! `RUSTFLAGS="--cfg loom"`; see `.ci/run`.
