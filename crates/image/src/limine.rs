//! Limine images: the layout capOS operators build, made from a Limine
//! binary release with the release's own host tool.
//!
//! ```text
//! LBA 0            protective (or hybrid) MBR; Limine's stage 1 after
//!                  `limine bios-install`
//! LBA 1..=33       primary GPT header and 128-entry array (8.x and
//!                  earlier without a BIOS boot partition: bios-install
//!                  shrinks the array and puts half A of stage 2 after it)
//! LBA 40..=2047    optional BIOS boot partition (stage 2 for 10.x, which
//!                  requires one, or for 8.x when present)
//! LBA 2048..       EFI system partition (FAT32): /EFI/BOOT/BOOTX64.EFI,
//!                  /boot/limine/limine-bios.sys, /boot/limine/limine.conf,
//!                  the kernel
//! ...              holes
//! last 33 LBAs     backup array and header (8.x without a BIOS boot
//!                  partition: half B of stage 2 between them)
//! ```
//!
//! cloudimg writes the GPT and the ESP; `limine bios-install IMAGE`
//! (the release's `limine.c`, compiled with `cc -O2 -std=c99`, or a
//! `limine` executable the caller gives) writes stage 1 into the MBR's
//! first 440 bytes and stage 2 where the release puts it (limine.c,
//! `bios_install`: 8.2.0 embeds it in the GPT areas unless given a
//! partition number; 10.4.0 autodetects the BIOS boot partition and
//! refuses a GPT disk without one). bios-install restores bytes 440..510
//! (disk signature and partition table) after writing stage 1, so a
//! hybrid MBR survives it.
//!
//! The hybrid MBR is the one `sgdisk -h N` (GPT fdisk 1.0.9) writes: entry
//! 1 the 0xEE partition from LBA 1 to the LBA before the ESP, entry 2 the
//! ESP as type 0xEF, status 0, CHS as gdisk computes them (checked
//! against sgdisk by the tests).
//!
//! The same inputs, seed and SOURCE_DATE_EPOCH give the same bytes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::io::OutputFile;
use cloudimg_disk::layout::gpt::{self, GptSpec, NewPartition};
use cloudimg_disk::layout::{mbr, Guid};
use cloudimg_disk::SECTOR_SIZE;

use crate::error::{Error, Result};
use crate::esp::{build_esp, EspSpec};
use crate::hybrid::{
    commit, esp_volume_id, seeded_guid, PartitionRange, BACKUP_GPT_SECTORS, BIOS_BOOT_TYPE,
    EFI_LOADER_PATH, ESP_TYPE,
};

/// First LBA of the optional BIOS boot partition: the first 8-sector
/// (4 KiB) boundary after the primary GPT's 34 sectors, as in the corpus
/// README's Limine 10.x example (LBA 40-2047).
pub const LIMINE_BIOS_BOOT_FIRST_LBA: u64 = 40;
/// First LBA of the ESP (1 MiB), as in capOS's layout.
pub const LIMINE_ESP_FIRST_LBA: u64 = 2048;
/// Where Limine's BIOS stage 3 goes on the ESP; limine.c's bios-install
/// reminder lists the root, /boot, /limine and /boot/limine.
pub const LIMINE_BIOS_SYS_PATH: &str = "/boot/limine/limine-bios.sys";
/// Where the config goes on the ESP; both releases' binaries list
/// `/boot/limine/limine.conf` among the places they search.
pub const LIMINE_CONF_PATH: &str = "/boot/limine/limine.conf";
/// Where the kernel goes on the ESP.
pub const LIMINE_KERNEL_PATH: &str = "/boot/capos.elf";
/// FAT label of the ESP.
pub const LIMINE_ESP_LABEL: &str = "CAPOS-ESP";
/// MBR type of the ESP in a hybrid MBR (`sgdisk -h`: EF00 / 0x100).
pub const MBR_TYPE_ESP: u8 = 0xEF;
/// Minimum size of a BIOS boot partition for Limine 10.x (limine.c:
/// "Partition %u is smaller than 32KiB").
pub const LIMINE_MIN_BIOS_BOOT_BYTES: u64 = 32 * 1024;
const _: () = assert!(
    (LIMINE_ESP_FIRST_LBA - LIMINE_BIOS_BOOT_FIRST_LBA) * SECTOR_SIZE >= LIMINE_MIN_BIOS_BOOT_BYTES
);

/// A Limine release version, as `Limine X.Y.Z` in its binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LimineVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl std::fmt::Display for LimineVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl LimineVersion {
    /// The first `Limine X.Y.Z` in `bytes` (both releases' limine-bios.sys
    /// and BOOTX64.EFI carry it as their branding string).
    pub fn find_in(bytes: &[u8]) -> Option<Self> {
        const TAG: &[u8] = b"Limine ";
        let mut at = 0;
        while let Some(i) = find(&bytes[at..], TAG) {
            let start = at + i + TAG.len();
            if let Some(v) = Self::parse_prefix(&bytes[start..]) {
                return Some(v);
            }
            at = start;
        }
        None
    }

    /// `X.Y.Z` at the start of `b`.
    fn parse_prefix(b: &[u8]) -> Option<Self> {
        let mut parts = [0u32; 3];
        let mut i = 0;
        for (n, part) in parts.iter_mut().enumerate() {
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 4 {
                return None;
            }
            *part = std::str::from_utf8(&b[i..i + digits]).ok()?.parse().ok()?;
            i += digits;
            if n < 2 {
                if b.get(i) != Some(&b'.') {
                    return None;
                }
                i += 1;
            }
        }
        Some(LimineVersion {
            major: parts[0],
            minor: parts[1],
            patch: parts[2],
        })
    }

    /// The config key naming the executable: `kernel_path` up to 8.x
    /// (8.2.0's binaries know only `KERNEL_PATH`), `path` from 9.x on
    /// (10.4.0's say "Executable path not specified" and the current
    /// CONFIG.md lists `path`, with `kernel_path` as its alias). That 9.0
    /// is where `path` arrived was not confirmed against a 9.x binary.
    pub fn kernel_path_key(&self) -> &'static str {
        if self.major <= 8 {
            "kernel_path"
        } else {
            "path"
        }
    }

    /// Whether bios-install needs a BIOS boot partition on a GPT disk
    /// (10.x: "Installing to a GPT device, but no BIOS boot partition
    /// specified or detected"; up to 9.x it embeds stage 2 in the GPT).
    pub fn needs_bios_boot_partition(&self) -> bool {
        self.major >= 10
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A Limine binary release directory: `BOOTX64.EFI`, `limine-bios.sys`
/// and either `limine.c` or a `limine` executable.
#[derive(Debug, Clone)]
pub struct LimineRelease {
    /// The directory.
    pub dir: PathBuf,
    /// `BOOTX64.EFI`.
    pub efi: Vec<u8>,
    /// `limine-bios.sys`.
    pub bios_sys: Vec<u8>,
    /// The version both binaries name.
    pub version: LimineVersion,
}

/// File names in a release directory.
pub const RELEASE_EFI: &str = "BOOTX64.EFI";
/// BIOS stage 3.
pub const RELEASE_BIOS_SYS: &str = "limine-bios.sys";
/// The host tool's source.
pub const RELEASE_TOOL_SOURCE: &str = "limine.c";
/// A ready host tool.
pub const RELEASE_TOOL: &str = "limine";

impl LimineRelease {
    /// Read a release directory; both binaries must name the same version.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| Error::ReadInput { path, source })
        };
        let efi = read(RELEASE_EFI)?;
        let bios_sys = read(RELEASE_BIOS_SYS)?;
        let version_of = |name: &str, bytes: &[u8]| {
            LimineVersion::find_in(bytes).ok_or_else(|| {
                Error::Limine(format!(
                    "{}: no \"Limine X.Y.Z\" version string (not a Limine binary?)",
                    dir.join(name).display()
                ))
            })
        };
        let v_efi = version_of(RELEASE_EFI, &efi)?;
        let v_sys = version_of(RELEASE_BIOS_SYS, &bios_sys)?;
        if v_efi != v_sys {
            return Err(Error::Limine(format!(
                "{}: {RELEASE_EFI} is Limine {v_efi} but {RELEASE_BIOS_SYS} is Limine {v_sys}",
                dir.display()
            )));
        }
        Ok(LimineRelease {
            dir: dir.to_path_buf(),
            efi,
            bios_sys,
            version: v_efi,
        })
    }
}

/// The host tool, ready to run; a compiled one lives in a private
/// temporary directory removed on drop.
#[derive(Debug)]
pub struct LimineTool {
    /// The executable.
    pub path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl LimineTool {
    /// The release's `limine` executable if it has one, else its
    /// `limine.c` compiled with `cc -O2 -std=c99` (as the release's
    /// documentation says) into a private temporary directory.
    pub fn for_release(release: &LimineRelease) -> Result<Self> {
        let exe = release.dir.join(RELEASE_TOOL);
        if exe.is_file() {
            return Ok(LimineTool {
                path: exe,
                _dir: None,
            });
        }
        let source = release.dir.join(RELEASE_TOOL_SOURCE);
        if !source.is_file() {
            return Err(Error::Limine(format!(
                "{} holds neither {RELEASE_TOOL} nor {RELEASE_TOOL_SOURCE} (the host tool that installs the BIOS stages)",
                release.dir.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("cloudimg-limine-")
            .tempdir()
            .map_err(|e| Error::io("creating a directory for the Limine host tool", e))?;
        let path = dir.path().join(RELEASE_TOOL);
        let mut cc = Command::new("cc");
        cc.args(["-O2", "-std=c99"])
            .arg(&source)
            .arg("-o")
            .arg(&path);
        run_tool("cc", &mut cc).map_err(|e| {
            Error::Limine(format!(
                "compiling {} with cc -O2 -std=c99: {e} (or put a ready `{RELEASE_TOOL}` executable in {})",
                source.display(),
                release.dir.display()
            ))
        })?;
        Ok(LimineTool {
            path,
            _dir: Some(dir),
        })
    }

    /// The tool's own version (`limine --version`, first line
    /// `Limine X.Y.Z`).
    pub fn version(&self) -> Result<LimineVersion> {
        let out = run_tool(
            &self.path.display().to_string(),
            Command::new(&self.path).arg("--version"),
        )?;
        LimineVersion::find_in(out.as_bytes()).ok_or_else(|| Error::Tool {
            tool: self.path.display().to_string(),
            message: format!("--version printed no Limine version: {:?}", out.trim()),
        })
    }
}

/// Run a tool with stdin closed; its stdout, or an error quoting its
/// stderr on one line.
fn run_tool(name: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Tool {
            tool: name.into(),
            message: e.to_string(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let said: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return Err(Error::Tool {
            tool: name.into(),
            message: format!("{}: {}", out.status, said.join(" / ")),
        });
    }
    for line in stderr.lines() {
        log::info!("{name}: {line}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LimineOptions {
    /// Disk size in bytes (a multiple of 512).
    pub size: u64,
    /// ESP size in bytes (a multiple of 512, at least 34 MiB).
    pub esp_size: u64,
    /// The multiboot2 kernel.
    pub kernel: Vec<u8>,
    /// The kernel command line (`cmdline:` in limine.conf; none if empty).
    pub cmdline: String,
    /// Time stamped on every FAT entry (Unix seconds).
    pub source_date_epoch: i64,
    /// Seed of the disk and partition GUIDs and FAT volume id.
    pub seed: u64,
    /// Add a BIOS boot partition (LBA 40..=2047) for stage 2.
    pub bios_boot_partition: bool,
    /// Write a hybrid MBR (0xEE plus the ESP) instead of a protective one.
    pub hybrid_mbr: bool,
    /// Whether an existing output file may be replaced.
    pub overwrite: bool,
}

impl LimineOptions {
    /// capOS's layout: 256 MiB disk, 128 MiB ESP at 1 MiB, demo kernel,
    /// protective MBR, no BIOS boot partition.
    pub fn new() -> Self {
        LimineOptions {
            size: 256 << 20,
            esp_size: 128 << 20,
            kernel: crate::kernel::demo_kernel().to_vec(),
            cmdline: String::new(),
            source_date_epoch: crate::hybrid::DEFAULT_EPOCH,
            seed: 0,
            bios_boot_partition: false,
            hybrid_mbr: false,
            overwrite: false,
        }
    }
}

impl Default for LimineOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the partitions of a Limine image go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimineLayout {
    /// The BIOS boot partition, when asked for (partition 1).
    pub bios_boot: Option<PartitionRange>,
    /// The ESP (the last partition).
    pub esp: PartitionRange,
}

/// Where the partitions go for `opts`, or why they do not fit.
pub fn plan(opts: &LimineOptions) -> Result<LimineLayout> {
    if opts.size % SECTOR_SIZE != 0 || opts.esp_size % SECTOR_SIZE != 0 {
        return Err(Error::InvalidLayout(format!(
            "disk size {} and ESP size {} must be multiples of 512",
            opts.size, opts.esp_size
        )));
    }
    let esp_sectors = opts.esp_size / SECTOR_SIZE;
    let needed = LIMINE_ESP_FIRST_LBA + esp_sectors + BACKUP_GPT_SECTORS;
    if esp_sectors == 0 || opts.size / SECTOR_SIZE < needed {
        return Err(Error::InvalidLayout(format!(
            "a disk of {} bytes cannot hold a {}-byte ESP at LBA {LIMINE_ESP_FIRST_LBA} (at least {} bytes needed)",
            opts.size,
            opts.esp_size,
            needed * SECTOR_SIZE
        )));
    }
    Ok(LimineLayout {
        bios_boot: opts.bios_boot_partition.then_some(PartitionRange {
            first_lba: LIMINE_BIOS_BOOT_FIRST_LBA,
            last_lba: LIMINE_ESP_FIRST_LBA - 1,
        }),
        esp: PartitionRange {
            first_lba: LIMINE_ESP_FIRST_LBA,
            last_lba: LIMINE_ESP_FIRST_LBA + esp_sectors - 1,
        },
    })
}

/// limine.conf for `version`: no menu, serial console, one entry booting
/// the kernel with multiboot2 from the partition holding the config.
pub fn limine_conf(version: LimineVersion, cmdline: &str) -> String {
    let key = version.kernel_path_key();
    let mut conf = format!(
        "# capOS boot menu (written by cloudimg for Limine {version})\n\
         timeout: 0\n\
         serial: yes\n\
         \n\
         /capOS\n\
         \x20   protocol: multiboot2\n\
         \x20   {key}: boot():{LIMINE_KERNEL_PATH}\n"
    );
    let cmdline = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
    if !cmdline.is_empty() {
        conf.push_str(&format!("    cmdline: {cmdline}\n"));
    }
    conf
}

/// The hybrid MBR partition table `sgdisk -h` writes for an ESP (entries
/// 1 and 2 of the four; 3 and 4 empty).
pub fn hybrid_entries(esp: PartitionRange) -> [mbr::MbrEntry; 2] {
    let entry = |index, kind, first: u64, last: u64| mbr::MbrEntry {
        index,
        status: 0,
        start_chs: mbr::chs_for_lba(first),
        kind,
        end_chs: mbr::chs_for_lba(last),
        start_lba: u32::try_from(first).unwrap_or(u32::MAX),
        sectors: u32::try_from(last + 1 - first).unwrap_or(u32::MAX),
    };
    [
        entry(1, mbr::TYPE_GPT_PROTECTIVE, 1, esp.first_lba - 1),
        entry(2, MBR_TYPE_ESP, esp.first_lba, esp.last_lba),
    ]
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuiltLimineImage {
    /// The image file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The Limine release installed.
    pub version: LimineVersion,
    /// The disk GUID.
    pub disk_guid: Guid,
    /// The partitions.
    pub layout: LimineLayout,
    /// The ESP's FAT volume id.
    pub esp_volume_id: u32,
}

/// The GPT of a Limine image, as written before bios-install.
fn gpt_for(opts: &LimineOptions, layout: &LimineLayout, disk_guid: Guid) -> Result<gpt::GptImage> {
    let type_guid = |s: &str| s.parse::<Guid>().expect("constant GUID parses");
    let mut partitions = Vec::new();
    if let Some(bios) = layout.bios_boot {
        partitions.push(NewPartition {
            type_guid: type_guid(BIOS_BOOT_TYPE),
            unique_guid: seeded_guid(opts.seed, "limine bios boot partition"),
            first_lba: bios.first_lba,
            last_lba: bios.last_lba,
            attributes: 0,
            name: "BIOS boot".into(),
        });
    }
    partitions.push(NewPartition {
        type_guid: type_guid(ESP_TYPE),
        unique_guid: seeded_guid(opts.seed, "limine esp"),
        first_lba: layout.esp.first_lba,
        last_lba: layout.esp.last_lba,
        attributes: 0,
        name: "EFI System".into(),
    });
    let spec = GptSpec {
        partitions,
        ..GptSpec::new(disk_guid)
    };
    let mut image =
        gpt::create(&spec, opts.size).map_err(|e| Error::InvalidLayout(format!("GPT: {e}")))?;
    if opts.hybrid_mbr {
        let table = &mut image.head[mbr::ENTRIES_OFFSET..mbr::SIGNATURE_OFFSET];
        table.fill(0);
        for (i, e) in hybrid_entries(layout.esp).iter().enumerate() {
            table[i * mbr::ENTRY_LEN..(i + 1) * mbr::ENTRY_LEN].copy_from_slice(&e.to_bytes());
        }
    }
    Ok(image)
}

/// The bios-install command line: the image, and for a release that
/// would otherwise embed stage 2 in the GPT, the BIOS boot partition's
/// number (limine.c 8.2.0: "GPT partition specified. Installing there
/// instead of embedding."); 10.x finds the partition by its type.
fn bios_install_args(version: LimineVersion, layout: &LimineLayout, image: &Path) -> Vec<String> {
    let mut args = vec!["bios-install".to_string(), image.display().to_string()];
    if layout.bios_boot.is_some() && !version.needs_bios_boot_partition() {
        args.push("1".into());
    }
    args
}

/// Build a Limine image at `out` from `release`, installing the BIOS
/// stages with `tool` (written under a temporary name, renamed when
/// complete).
pub fn build_limine_image(
    opts: &LimineOptions,
    release: &LimineRelease,
    tool: &LimineTool,
    out: &Path,
) -> Result<BuiltLimineImage> {
    let version = release.version;
    let layout = plan(opts)?;
    if version.needs_bios_boot_partition() && layout.bios_boot.is_none() {
        return Err(Error::Limine(format!(
            "Limine {version} installs its BIOS stage 2 only into a BIOS boot partition on a GPT disk: add --bios-boot-partition"
        )));
    }
    if !crate::kernel::has_multiboot2_header(&opts.kernel) {
        return Err(Error::InvalidLayout(
            "the kernel has no multiboot2 header in its first 32 KiB".into(),
        ));
    }
    let tool_version = tool.version()?;
    if tool_version != version {
        return Err(Error::Limine(format!(
            "{} is Limine {tool_version} but {} holds Limine {version}: stage 2 must come from the same release",
            tool.path.display(),
            release.dir.display()
        )));
    }
    let volume_id = esp_volume_id(opts.seed);
    let esp_vol = build_esp(&EspSpec {
        size: layout.esp.len(),
        volume_id,
        label: LIMINE_ESP_LABEL.into(),
        mtime: opts.source_date_epoch,
        hidden_sectors: u32::try_from(layout.esp.first_lba).expect("the ESP starts at LBA 2048"),
        files: vec![
            (EFI_LOADER_PATH.into(), release.efi.clone()),
            (LIMINE_BIOS_SYS_PATH.into(), release.bios_sys.clone()),
            (
                LIMINE_CONF_PATH.into(),
                limine_conf(version, &opts.cmdline).into_bytes(),
            ),
            (LIMINE_KERNEL_PATH.into(), opts.kernel.clone()),
        ],
    })?;
    let disk_guid = seeded_guid(opts.seed, "limine disk guid");
    let gpt = gpt_for(opts, &layout, disk_guid)?;

    let output =
        OutputFile::create(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    write_layout(&output, opts.size, &gpt, layout.esp.offset(), &esp_vol)?;
    let mut install = Command::new(&tool.path);
    install.args(bios_install_args(version, &layout, output.temp_path()));
    run_tool(
        &format!("{} bios-install", tool.path.display()),
        &mut install,
    )?;
    let path = commit(output, opts.overwrite)?;
    Ok(BuiltLimineImage {
        path,
        size: opts.size,
        version,
        disk_guid,
        layout,
        esp_volume_id: volume_id,
    })
}

/// Write the GPT and the ESP's data into the sized temporary file.
fn write_layout(
    output: &OutputFile,
    size: u64,
    gpt: &gpt::GptImage,
    esp_offset: u64,
    esp: &crate::esp::SparseVolume,
) -> Result<()> {
    let file = output.file();
    let name = output.target().display().to_string();
    file.set_len(size)
        .map_err(|e| Error::io(format!("sizing {name}"), e))?;
    let put = |bytes: &[u8], offset: u64| {
        file.write_all_at(bytes, offset)
            .map_err(|e| Error::io(format!("writing {name} at offset {offset}"), e))
    };
    put(&gpt.head, 0)?;
    for (off, chunk) in esp.data_chunks() {
        put(chunk, esp_offset + off)?;
    }
    put(&gpt.tail, gpt.tail_offset)?;
    // bios-install reopens the file by name.
    file.sync_data()
        .map_err(|e| Error::io(format!("flushing {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_found_after_other_limine_words() {
        let v = LimineVersion::find_in(b"xx Limine is great Limine 8.2.0 (x86-64, BIOS)").unwrap();
        assert_eq!(v.to_string(), "8.2.0");
        assert_eq!(v.kernel_path_key(), "kernel_path");
        let v = LimineVersion::find_in(b"Limine 10.4.0\0").unwrap();
        assert_eq!(v.kernel_path_key(), "path");
        assert!(v.needs_bios_boot_partition());
        assert_eq!(LimineVersion::find_in(b"Limine 8.x"), None);
    }

    #[test]
    fn conf_names_the_kernel_with_the_release_key() {
        let v8 = LimineVersion {
            major: 8,
            minor: 2,
            patch: 0,
        };
        let conf = limine_conf(v8, " a  b ");
        assert!(conf.contains("timeout: 0\nserial: yes\n"), "{conf}");
        assert!(conf.contains("/capOS\n    protocol: multiboot2\n    kernel_path: boot():/boot/capos.elf\n    cmdline: a b\n"), "{conf}");
        let v10 = LimineVersion { major: 10, ..v8 };
        assert!(limine_conf(v10, "").contains("    path: boot():/boot/capos.elf\n"));
        assert!(!limine_conf(v10, "").contains("cmdline"));
    }

    #[test]
    fn hybrid_entries_match_sgdisk() {
        // sgdisk -h 1 on a 256 MiB disk with an ESP at 2048..=264191
        // (GPT fdisk 1.0.9), bytes 446..478.
        let want: [u8; 32] = [
            0x00, 0x00, 0x02, 0x00, 0xee, 0x20, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0x07,
            0x00, 0x00, 0x00, 0x20, 0x21, 0x00, 0xef, 0x71, 0x21, 0x10, 0x00, 0x08, 0x00, 0x00,
            0x00, 0x00, 0x04, 0x00,
        ];
        let e = hybrid_entries(PartitionRange {
            first_lba: 2048,
            last_lba: 264_191,
        });
        assert_eq!([e[0].to_bytes(), e[1].to_bytes()].concat(), want);
    }
}
