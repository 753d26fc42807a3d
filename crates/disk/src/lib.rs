//! cloudimg-disk: read, write and verify the virtual-disk shapes that
//! clouds import.
//!
//! Every conversion goes reader → [`VirtualDisk`] → writer, and every
//! artifact written is decoded again by the matching `verify` module before
//! it is given its final name (see [`package`]).
//!
//! ```
//! use cloudimg_disk::{MemDisk, VirtualDisk, ExtentKind};
//! let mut bytes = vec![0u8; 4096];
//! bytes[1024] = 7;
//! let disk = MemDisk::new(bytes);
//! let extents = disk.extents().unwrap();
//! assert_eq!(extents.iter().map(|e| e.len).sum::<u64>(), 4096);
//! assert!(extents.iter().any(|e| e.kind == ExtentKind::Data));
//! ```
#![deny(missing_docs)]

pub mod check;
pub mod codec;
pub mod disk;
pub mod error;
pub mod formats;
pub mod inspect;
pub mod io;
pub mod layout;
pub mod package;
pub mod trace;
pub mod verify;
pub mod vocab;

pub use disk::{Extent, ExtentKind, MemDisk, VirtualDisk, SECTOR_SIZE};
pub use error::{Error, ErrorKind, Result};
pub use vocab::Firmware;
