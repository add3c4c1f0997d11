//! `regex`'s API over `regex-lite`, for oci-spec's one regex (the
//! `process.execCPUAffinity` check). See Cargo.toml.

pub use regex_lite::{Captures, Error, Regex, RegexBuilder};
