//! cloudimg-boot: boot disk images under QEMU (placeholder, filled in next).
