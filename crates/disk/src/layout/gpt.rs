//! GUID partition table. STUB: to be implemented.

use crate::disk::VirtualDisk;
use crate::verify::Finding;

/// Check a disk's GPT in both copies; every problem is a finding (offsets
/// are in the disk). An MBR-only disk gives no findings. STUB.
pub fn verify(_disk: &dyn VirtualDisk) -> Vec<Finding> {
    Vec::new()
}
