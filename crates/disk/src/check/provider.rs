//! Each cloud's size rules (`size:gcp`, `size:aws`, `size:aws-bios`,
//! `size:azure`), stated once in [`crate::vocab`], and what growing the
//! disk to a provider's unit would cover (Limine's stage 2).

use super::{fix, Check, Ctx, Firmware, Provider, Status, Target};
use crate::layout::gpt;
use crate::vocab::{azure_size, gcp_size, AZURE_MAX, AZURE_MIN, AZURE_SIZE_UNIT, GCP_SIZE_UNIT};
use crate::vocab::{AWS_BIOS_BOOT_MAX, AWS_VHD_MAX, AWS_VMDK_MAX, AWS_VOLUME_UNIT};

/// The size checks of `cloud` (`size:gcp`, `size:aws` and, over 2 TiB,
/// `size:aws-bios`, `size:azure`); none for providers that are not
/// clouds (`check` keeps only [`Provider::CLOUDS`]).
pub(super) fn check_size(cx: &mut Ctx<'_>, cloud: Provider, size: u64) {
    match cloud {
        Provider::Gcp => gcp(cx, size),
        Provider::Aws => aws(cx, size),
        Provider::Azure => azure(cx, size),
        Provider::Openstack | Provider::Hyperv | Provider::Vsphere => {}
    }
}

/// Push the size check `id` of `cloud`: it concerns both of its paths.
fn push(
    cx: &mut Ctx<'_>,
    id: &'static str,
    cloud: Provider,
    status: Status,
    message: String,
    fix: Option<String>,
) {
    cx.checks.push(Check {
        id,
        subject: format!("size for {}", cloud.id()),
        status,
        message,
        fix: if status == Status::Pass { None } else { fix },
        paths: Target::of(cloud).to_vec(),
    });
}

/// `size:gcp`: a whole GiB, which `package` grows the disk to.
fn gcp(cx: &mut Ctx<'_>, size: u64) {
    let (id, cloud) = ("size:gcp", Provider::Gcp);
    if let Some((msg, fix)) = growth_hazard(cx, GCP_SIZE_UNIT, "GiB") {
        push(cx, id, cloud, Status::Warn, msg, fix);
        return;
    }
    let grown = gcp_size(size).max(GCP_SIZE_UNIT);
    let msg = if grown == size {
        format!(
            "{} GiB, a whole number of GiB as GCP requires",
            size / GCP_SIZE_UNIT
        )
    } else {
        format!(
            "{size} bytes is not a whole GiB; cloudimg package grows it to {} GiB ({grown} bytes) and moves the backup GPT",
            grown / GCP_SIZE_UNIT
        )
    };
    push(cx, id, cloud, Status::Pass, msg, None);
}

/// `size:aws`: what fits a VHD and a stream-optimized VMDK (raw fits any
/// size); `size:aws-bios` over the old 2 TiB limit for BIOS boot volumes.
fn aws(cx: &mut Ctx<'_>, size: u64) {
    let (id, cloud) = ("size:aws", Provider::Aws);
    let mut notes = Vec::new();
    if size > AWS_VHD_MAX {
        notes.push("larger than 2040 GiB, the most a VHD holds: use the raw shape".to_string());
    }
    if size > AWS_VMDK_MAX {
        notes.push("larger than 2 TiB, the most a stream-optimized VMDK's grain offsets address: use the raw shape".to_string());
    }
    if notes.is_empty() {
        let msg = format!(
            "{size} bytes fits every AWS shape (raw any size, VHD ≤ 2040 GiB, VMDK ≤ 2 TiB); the volume is rounded up to {} GiB",
            size.div_ceil(AWS_VOLUME_UNIT).max(1)
        );
        push(cx, id, cloud, Status::Pass, msg, None);
    } else {
        let fix = fix("import the raw shape (cloudimg package writes it)");
        push(cx, id, cloud, Status::Warn, notes.join("; "), fix);
    }
    if size > AWS_BIOS_BOOT_MAX {
        cx.checks.push(Check {
            id: "size:aws-bios",
            subject: "size for aws legacy BIOS".into(),
            status: Status::Warn,
            message: format!(
                "{size} bytes is over 2 TiB, the old VM Import limit for BIOS (MBR) boot volumes"
            ),
            fix: fix(
                "boot it with UEFI (register-image --boot-mode uefi), or keep it at 2 TiB or less",
            ),
            paths: vec![Target {
                cloud: Provider::Aws,
                firmware: Firmware::Bios,
            }],
        });
    }
}

/// `size:azure`: a whole MiB (which `package --azure` grows the disk to)
/// inside Azure's range.
fn azure(cx: &mut Ctx<'_>, size: u64) {
    let (id, cloud) = ("size:azure", Provider::Azure);
    let grown = azure_size(size);
    if !(AZURE_MIN..=AZURE_MAX).contains(&grown) {
        let fix = if grown < AZURE_MIN {
            fix("grow the image to at least 20 MiB (truncate -s 20M IMAGE; sgdisk -e IMAGE)")
        } else {
            fix("shrink the image to at most 32 TiB")
        };
        let msg =
            format!("{size} bytes is outside Azure's range for uploaded disks, 20 MiB ..= 32 TiB");
        push(cx, id, cloud, Status::Fail, msg, fix);
    } else if let Some((msg, fix)) = growth_hazard(cx, AZURE_SIZE_UNIT, "MiB") {
        push(cx, id, cloud, Status::Warn, msg, fix);
    } else if grown != size {
        let msg = format!(
            "{size} bytes is not a whole MiB, which Azure requires; `cloudimg package --azure` grows it to {} MiB ({grown} bytes) and moves the backup GPT",
            grown / AZURE_SIZE_UNIT
        );
        push(cx, id, cloud, Status::Pass, msg, None);
    } else {
        let msg = format!(
            "{} MiB, a whole MiB inside 20 MiB ..= 32 TiB",
            size / AZURE_SIZE_UNIT
        );
        push(cx, id, cloud, Status::Pass, msg, None);
    }
}

/// When growing the disk to the next whole `unit` would put the backup GPT
/// over data the GPT does not own (Limine up to 9.x keeps half B of its
/// BIOS stage 2 just before the backup header): the message and fix of a
/// warning saying what `cloudimg package` does instead and what the stock
/// tools would break. `None` when the first whole `unit` is safe, or the
/// GPT cannot be grown at all (the `gpt` check says why).
fn growth_hazard(cx: &Ctx<'_>, unit: u64, unit_name: &str) -> Option<(String, Option<String>)> {
    let growth = gpt::plan_growth(cx.disk, unit).ok()?;
    let first = growth.skipped.first()?;
    let foreign: Vec<_> = growth
        .skipped
        .iter()
        .flat_map(|s| s.foreign_lbas.iter().copied())
        .collect();
    let hits_stage2 = cx.limine_mbr.is_some_and(|m| m.stage2_in_lbas(&foreign));
    let whose = if hits_stage2 {
        "Limine's BIOS stage 2 (its MBR says so)"
    } else {
        "data the GPT does not own"
    };
    let sized = |b: u64| format!("{} {unit_name}", b / unit);
    let msg = format!(
        "{} bytes is not a whole {unit_name}, and a backup GPT at {} would cover {}, which {} {whose}: `truncate -s {}{}` + `sgdisk -e` would overwrite it{}; cloudimg package grows it to {} instead ({} bytes), leaving those bytes as they are",
        growth.from,
        sized(first.size),
        gpt::lba_ranges_text(&first.foreign_lbas),
        if gpt::is_one_lba(&first.foreign_lbas) { "holds" } else { "hold" },
        first.size / unit,
        &unit_name[..1],
        if hits_stage2 { " and break BIOS boot" } else { "" },
        sized(growth.to),
        growth.to,
    );
    let fix = fix(&format!(
        "nothing to do for cloudimg package; to get a {} disk, make the image a whole {unit_name} before installing the boot loader (limine bios-install), or use Limine 10.x with a BIOS boot partition, which keeps stage 2 out of the GPT areas",
        sized(first.size)
    ));
    Some((msg, fix))
}
