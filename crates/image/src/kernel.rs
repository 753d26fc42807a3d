//! The built-in demo kernel, assembled from `kernel/demo.S` by this
//! crate's build script (GNU as + ld), embedded as a multiboot2 ELF.
//!
//! It prints [`LANDMARK`] on COM1, then a line naming the firmware path
//! (`capos demo kernel: firmware=uefi` when GRUB passed an EFI system
//! table tag, 11 or 12, else `firmware=bios`), then powers QEMU off.

/// The line the demo kernel prints first; the boot harness waits for it.
pub const LANDMARK: &str = "capos kernel starting";

/// The demo kernel ELF.
pub fn demo_kernel() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/capos-demo.elf"))
}

/// The same kernel built with `NO_LANDMARK`: it prints another line
/// instead of [`LANDMARK`] and halts without powering off, so a harness
/// waiting for the landmark times out. For tests of failure detection.
pub fn demo_kernel_without_landmark() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/capos-demo-no-landmark.elf"))
}

/// Whether `elf` carries a multiboot2 header (magic 0xE85250D6, 8-byte
/// aligned, in the first 32 KiB, with a valid checksum).
pub fn has_multiboot2_header(elf: &[u8]) -> bool {
    let limit = elf.len().min(32768);
    (0..limit.saturating_sub(16)).step_by(8).any(|off| {
        let word = |i: usize| {
            u32::from_le_bytes([
                elf[off + i],
                elf[off + i + 1],
                elf[off + i + 2],
                elf[off + i + 3],
            ])
        };
        word(0) == 0xE852_50D6
            && word(0)
                .wrapping_add(word(4))
                .wrapping_add(word(8))
                .wrapping_add(word(12))
                == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_kernels_are_multiboot2_elfs() {
        for k in [demo_kernel(), demo_kernel_without_landmark()] {
            assert!(k.starts_with(b"\x7fELF\x01\x01\x01"));
            assert!(has_multiboot2_header(k));
        }
        let has = |k: &[u8], s: &str| k.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(demo_kernel(), LANDMARK));
        assert!(!has(demo_kernel_without_landmark(), LANDMARK));
        assert!(!has_multiboot2_header(b"\x7fELF not a kernel"));
    }
}
