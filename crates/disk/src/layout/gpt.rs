//! GUID partition table. STUB.
