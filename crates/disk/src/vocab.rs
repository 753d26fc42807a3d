//! The words every crate shares: which provider a disk is for and which
//! firmware starts it. `check`, `package`, `boot`, `cloud` and the CLI all
//! use these types rather than their own.

use serde::{Deserialize, Serialize};

use crate::disk::{GIB, MIB};

// Each provider's size rules, stated once (the project's cloud-formats
// reference, ../shared/reference/cloud-formats.md, §1-4). `check` checks
// them, `package` grows disks to them, `cloud` re-checks uploads.

/// GCP's unit for an imported `disk.raw`: a whole GiB (cloud-formats §1:
/// gcloud's disk helper rejects non-multiples of `BYTES_IN_ONE_GB` =
/// 2^30; the import error "disk.raw must be a multiple of 1 GB").
/// No maximum is documented (NOT confirmed).
pub const GCP_SIZE_UNIT: u64 = GIB;
/// AWS rounds snapshots and volumes up to a whole GiB (cloud-formats §2,
/// marked unconfirmed there: a report, not a primary statement).
pub const AWS_VOLUME_UNIT: u64 = GIB;
/// Largest AWS VHD: qemu's VHD limit, 0xFF000000 sectors = 2040 GiB
/// (cloud-formats §4a; qemu block/vpc.c).
pub const AWS_VHD_MAX: u64 = 2040 * GIB;
/// Largest stream-optimized VMDK AWS can be given: its grain directory
/// and tables hold u32 sector numbers, so grains lie below 2 TiB
/// (cloud-formats §4b).
pub const AWS_VMDK_MAX: u64 = 2 << 40;
/// Old AWS VM Import limit for MBR (BIOS) boot volumes, 2 TiB
/// (cloud-formats §2, awsdocs vmie_prereqs.md, 2019 guide).
pub const AWS_BIOS_BOOT_MAX: u64 = 2 << 40;
/// Azure's unit for an uploaded disk: its virtual size (the fixed VHD's
/// footer excluded) is a whole MiB (cloud-formats §3: "All VHDs on Azure
/// must have a virtual size aligned to 1 MB"). `check` checks it,
/// `package` grows to it, `cloud` re-checks it.
pub const AZURE_SIZE_UNIT: u64 = MIB;
/// Smallest Azure managed disk upload (20 MiB, footer excluded;
/// cloud-formats §3, Azure DiskCreationData.UploadSizeBytes, less the
/// footer).
pub const AZURE_MIN: u64 = 20 * MIB;
/// Largest Azure managed disk upload (32 TiB, footer excluded; the same
/// source).
pub const AZURE_MAX: u64 = 32 << 40;

/// The smallest size GCP accepts for a disk of `size` bytes: the next
/// whole [`GCP_SIZE_UNIT`] (an exact multiple stays).
pub fn gcp_size(size: u64) -> u64 {
    size.div_ceil(GCP_SIZE_UNIT) * GCP_SIZE_UNIT
}

/// The smallest size Azure accepts for a disk of `size` bytes: the next
/// whole [`AZURE_SIZE_UNIT`] (an exact multiple stays).
pub fn azure_size(size: u64) -> u64 {
    size.div_ceil(AZURE_SIZE_UNIT) * AZURE_SIZE_UNIT
}

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

    /// Its name for people, e.g. in `--help`: `Google Compute Engine`,
    /// `Amazon EC2`, `Microsoft Azure`, ...
    pub fn title(self) -> &'static str {
        match self {
            Provider::Gcp => "Google Compute Engine",
            Provider::Aws => "Amazon EC2",
            Provider::Azure => "Microsoft Azure",
            Provider::Openstack => "OpenStack (QCOW2)",
            Provider::Hyperv => "Microsoft Hyper-V",
            Provider::Vsphere => "VMware vSphere",
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
