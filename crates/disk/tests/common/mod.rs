//! Helpers shared by the integration tests: see `cloudimg-testkit`.
#![allow(unused_imports)]

pub use cloudimg_testkit::*;
