//! GUID partition table. STUB: to be implemented.

use crate::disk::VirtualDisk;
use crate::verify::Finding;

/// Check a disk's GPT in both copies; every problem is a finding (offsets
/// are in the disk). An MBR-only disk gives no findings. STUB.
pub fn verify(_disk: &dyn VirtualDisk) -> Vec<Finding> {
    Vec::new()
}

/// Grow a disk as `truncate` + `sgdisk -e` would. STUB.
pub fn grow<D: VirtualDisk>(_disk: D, _new_size: u64) -> crate::Result<crate::disk::PatchedDisk<D>> {
    Err(crate::Error::unsupported("GPT grow not implemented"))
}
