//! The master boot record. STUB.
