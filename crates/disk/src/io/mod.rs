//! Small I/O building blocks: the sparse-aware raw file, the disk digest,
//! and output files that only get their final name once verified.

mod copy;
mod digest;
pub mod direct;
mod output;
pub mod priority;
mod raw_file;
mod read;
pub mod sha256x2;
mod temp;

pub(crate) use copy::write_nonzero;
pub use copy::{DecodedCopy, HOLE_BLOCK};
pub use digest::{feed_disk, sha256_disk, sha256_file, DiskDigest, Sha256Hex};
pub use direct::ReadBack;
pub use output::{cleanup_registered, OutputFile};
pub use raw_file::RawFile;
pub use read::{open_input, read_exact_at};
pub use temp::{unnamed_temp_beside, unnamed_temp_in, FileReader};
