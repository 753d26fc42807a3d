//! Subcommands.
pub mod boot;
pub mod image;
