//! Partition tables: the protective MBR and GPT.

pub mod gpt;
pub mod mbr;
