//! General codecs the formats build on, none tied to one format: GNU tar
//! headers, a tar writer for one disk member and a streaming tar reader
//! ([`tar`]); single-member gzip, written pigz-style and read with its
//! findings ([`gzip`]); and deflate helpers shared by the compressing
//! writers ([`deflate`]).
//!
//! What one cloud requires of them (GCP's `disk.raw` member, its oldgnu
//! rules, the `disk.raw.tar.gz` writer and extractor) stays with that
//! format, in `formats::gcp`; the OVA's ustar rules in `formats::ova`.

pub mod deflate;
pub mod gzip;
pub mod tar;
