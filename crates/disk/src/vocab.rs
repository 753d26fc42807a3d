//! The words every crate shares: which provider a disk is for and which
//! firmware starts it. `check`, `package`, `boot`, `cloud` and the CLI all
//! use these types rather than their own.

use serde::{Deserialize, Serialize};

use crate::disk::MIB;

/// Azure's unit for an uploaded disk: its virtual size (the fixed VHD's
/// footer excluded) is a whole MiB (the project's cloud-formats reference,
/// §3). `check` checks it, `package` grows to it, `cloud` re-checks it.
pub const AZURE_SIZE_UNIT: u64 = MIB;
/// Smallest Azure managed disk upload (20 MiB, footer excluded; Azure
/// DiskCreationData.UploadSizeBytes, less the footer).
pub const AZURE_MIN: u64 = 20 * MIB;
/// Largest Azure managed disk upload (32 TiB, footer excluded; the same
/// source).
pub const AZURE_MAX: u64 = 32 << 40;

/// Which cloud or platform a disk (or one of its shapes) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Google Compute Engine.
    Gcp,
    /// Amazon EC2 (VM Import/Export).
    Aws,
    /// Microsoft Azure (page-blob VHD).
    Azure,
    /// OpenStack, Oracle OCI, Proxmox and libvirt (QCOW2).
    Openstack,
    /// Microsoft Hyper-V (VHDX).
    Hyperv,
    /// VMware vSphere (OVA).
    Vsphere,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 6] = [
        Provider::Gcp,
        Provider::Aws,
        Provider::Azure,
        Provider::Openstack,
        Provider::Hyperv,
        Provider::Vsphere,
    ];

    /// The three clouds whose import rules (sizes, boot paths) `check`
    /// knows and the `cloud` crate drives.
    pub const CLOUDS: [Provider; 3] = [Provider::Gcp, Provider::Aws, Provider::Azure];

    /// `gcp`, `aws`, `azure`, `openstack`, `hyperv`, `vsphere`: the name in
    /// JSON, check ids and command lines.
    pub fn id(self) -> &'static str {
        match self {
            Provider::Gcp => "gcp",
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Openstack => "openstack",
            Provider::Hyperv => "hyperv",
            Provider::Vsphere => "vsphere",
        }
    }
}

/// How the firmware starts the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS under QEMU): MBR boot code.
    Bios,
    /// UEFI (OVMF under QEMU): `/EFI/BOOT/BOOTX64.EFI` on the ESP.
    Uefi,
}

impl Firmware {
    /// `BIOS`, `UEFI`: the name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        }
    }

    /// `bios`, `uefi`: the name in file names, JSON and command lines.
    pub fn id(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_id_is_its_json_name() {
        for p in Provider::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.id());
        }
    }

    #[test]
    fn firmware_id_is_its_json_name() {
        for fw in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(serde_json::to_value(fw).unwrap(), fw.id());
            assert_eq!(fw.name(), fw.id().to_uppercase());
        }
    }
}

// ---------------------------------------------------------------------
// Accepted shapes: which artifact formats each provider takes. Stated
// once here; the `cloud` crate checks a verified artifact's format
// against it and `cloudimg cloud aws` picks `--format` by it.
// ---------------------------------------------------------------------

impl Provider {
    /// Whether an artifact of `format` is a shape this provider takes.
    ///
    /// For the clouds, what their import takes (the project's
    /// cloud-formats reference): GCP a gzip'd tar holding `disk.raw`
    /// (§1; [`Format::Gzip`], whose verifier checks the tar inside); AWS
    /// `import-snapshot`'s `RAW`, `VHD` (fixed or dynamic) and `VMDK`
    /// (§2; the guide names stream-optimized VMDKs, and [`Format::Vmdk`]
    /// also covers monolithic sparse ones, which AWS is not documented
    /// to take \[U\]); Azure a fixed VHD only (§3). For the other
    /// platforms, the shape `package` writes for them (QCOW2, VHDX,
    /// OVA); they may take more.
    pub fn accepts(self, format: crate::formats::Format) -> bool {
        use crate::formats::Format as F;
        matches!(
            (self, format),
            (Provider::Gcp, F::Gzip)
                | (
                    Provider::Aws,
                    F::Raw | F::VhdFixed | F::VhdDynamic | F::Vmdk
                )
                | (Provider::Azure, F::VhdFixed)
                | (Provider::Openstack, F::Qcow2)
                | (Provider::Hyperv, F::Vhdx)
                | (Provider::Vsphere, F::Ova)
        )
    }
}

#[cfg(test)]
mod accepts_tests {
    use super::*;
    use crate::formats::Format;

    #[test]
    fn azure_takes_only_a_fixed_vhd() {
        assert!(Provider::Azure.accepts(Format::VhdFixed));
        for f in [Format::VhdDynamic, Format::Raw, Format::Vhdx, Format::Vmdk] {
            assert!(!Provider::Azure.accepts(f), "{f}");
        }
    }

    #[test]
    fn every_provider_takes_a_shape_and_no_descriptor() {
        for p in Provider::ALL {
            assert!(!p.accepts(Format::VmdkDescriptor) && !p.accepts(Format::Tar));
        }
        assert!(Provider::Gcp.accepts(Format::Gzip) && !Provider::Gcp.accepts(Format::Raw));
        assert!(Provider::Aws.accepts(Format::Raw) && !Provider::Aws.accepts(Format::Qcow2));
    }
}
