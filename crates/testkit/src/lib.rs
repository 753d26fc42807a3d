//! Helpers shared by cloudimg's integration tests (each crate's
//! `tests/common/mod.rs` re-exports them): oracle tools and files that are
//! required under CI, running commands, seeded data, the shared corpus.

use std::path::Path;
use std::process::Command;

/// Whether an external oracle tool is on PATH (or /usr/sbin, /sbin). When
/// it is missing the test is skipped with a message, except under CI or
/// with REQUIRE_ORACLES=1, where a missing oracle fails the test.
pub fn require_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .iter()
        .any(|d| d.join(name).is_file());
    found || missing(&format!("oracle tool {name}"))
}

/// Whether missing oracles must fail the tests: under CI, or with
/// `REQUIRE_ORACLES=1`.
pub fn strict() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("REQUIRE_ORACLES").is_some_and(|v| v == "1")
}

/// A required thing is missing: fail when [`strict`], else skip (false).
fn missing(what: &str) -> bool {
    if strict() {
        panic!("{what} is missing (CI or REQUIRE_ORACLES=1 set): install it with scripts/setup.sh");
    }
    eprintln!("SKIP: {what} not found");
    false
}

/// Run a command, panic with its output if it fails, return stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small seeded PRNG (xorshift64*) for reproducible test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// The path of a file in ../shared/corpus (relative to the repository's
/// parent), or None when the corpus is not there.
pub fn corpus(rel: &str) -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let p = root.join(rel);
    if p.exists() {
        Some(p)
    } else if std::env::var_os("CI").is_some() {
        panic!("corpus file {} is missing", p.display())
    } else {
        eprintln!("SKIP: corpus file {} not found", p.display());
        None
    }
}

/// Whether a file the tests need (firmware, GRUB platform files) exists;
/// like [`require_tool`], a missing one fails under CI.
pub fn require_file(path: &str) -> bool {
    Path::new(path).exists() || missing(path)
}

/// Whether GRUB's image tools and platform files are all there.
pub fn require_grub() -> bool {
    require_tool("grub-mkimage")
        && require_file("/usr/lib/grub/x86_64-efi/multiboot2.mod")
        && require_file("/usr/lib/grub/i386-pc/boot.img")
}

/// A Limine release from the corpus (`limine/limine-<version>`), ready
/// for `cloudimg image build --limine DIR`: a directory under
/// `target/limine-host/` holding copies of its `BOOTX64.EFI` and
/// `limine-bios.sys` and its host tool compiled from `limine.c` (and
/// `limine-bios-hdd.h`, stage 1 and 2 as a C array) with
/// `cc -O2 -std=c99` (the release's own instructions), once per test
/// binary (and reused while limine.c is unchanged). None (or a panic
/// under CI) when the corpus or `cc` is missing.
pub fn limine_release(version: &str) -> Option<std::path::PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static READY: OnceLock<Mutex<HashMap<String, std::path::PathBuf>>> = OnceLock::new();
    let src = corpus(&format!("limine/limine-{version}"))?;
    if !require_tool("cc") {
        return None;
    }
    let mut ready = READY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = ready.get(version) {
        return Some(dir.clone());
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/limine-host")
        .join(version);
    std::fs::create_dir_all(&dir).expect("creating target/limine-host");
    for name in [
        "BOOTX64.EFI",
        "limine-bios.sys",
        "limine.c",
        "limine-bios-hdd.h",
    ] {
        let bytes = std::fs::read(src.join(name))
            .unwrap_or_else(|e| panic!("reading {}: {e}", src.join(name).display()));
        let dst = dir.join(name);
        if std::fs::read(&dst).ok().as_deref() != Some(&bytes[..]) {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, &bytes).expect("copying a Limine file");
            std::fs::rename(&tmp, &dst).expect("renaming a Limine file");
            let _ = std::fs::remove_file(dir.join("limine"));
        }
    }
    if !dir.join("limine").is_file() {
        let tmp = dir.join(format!(".limine.{}", std::process::id()));
        run(Command::new("cc")
            .args(["-O2", "-std=c99"])
            .arg(dir.join("limine.c"))
            .arg("-o")
            .arg(&tmp));
        std::fs::rename(&tmp, dir.join("limine")).expect("renaming the Limine host tool");
    }
    ready.insert(version.to_string(), dir.clone());
    Some(dir)
}
