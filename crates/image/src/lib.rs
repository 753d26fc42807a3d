//! cloudimg-image: build a hybrid BIOS+UEFI GPT boot disk for capOS.
//!
//! The disk has a protective MBR carrying GRUB's boot.img, a BIOS boot
//! partition with GRUB's core.img, and a FAT32 EFI system partition
//! (written by this crate with `fatfs`) holding `/EFI/BOOT/BOOTX64.EFI`,
//! the GRUB config and the kernel; or ([`limine`]) the layout capOS
//! operators build with Limine, from a Limine binary release and its own
//! host tool. Everything else is a hole. The same options give the same
//! bytes.
#![deny(missing_docs)]

pub mod error;
pub mod esp;
pub mod grub;
pub mod hybrid;
pub mod kernel;
pub mod limine;

pub use error::{Error, Result};
pub use hybrid::{build_image, BuiltImage, ImageOptions, PartitionRange};
pub use kernel::{demo_kernel, demo_kernel_without_landmark, LANDMARK};
pub use limine::{build_limine_image, BuiltLimineImage, LimineOptions, LimineRelease, LimineTool};
