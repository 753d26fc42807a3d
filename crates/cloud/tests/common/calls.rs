//! Which cloud CLIs a run started, and with which arguments: a directory
//! of small shell wrappers named like the CLIs, first on `PATH`, that log
//! their argument vector and `exec` the real program (or, as a tripwire,
//! fail). The real CLI then runs unchanged, with the same process id (so
//! a timeout still ends its process group).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Wrappers in `<under>/calls-bin`, each logging to `<under>/calls.log`.
pub struct Calls {
    bin: PathBuf,
    log: PathBuf,
}

/// `s` quoted for `/bin/sh` (single quotes, `'` as `'\''`).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Calls {
    /// One wrapper per `(name, real program)`; `None` makes a tripwire
    /// that logs the call and exits 97 without running anything.
    pub fn new(under: &Path, programs: &[(&str, Option<PathBuf>)]) -> Calls {
        use std::os::unix::fs::PermissionsExt;
        let bin = under.join("calls-bin");
        let log = under.join("calls.log");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, real) in programs {
            // One line per call: the program's name and each argument,
            // separated by a tab.
            let record = format!(
                "{{ printf '%s' {}; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; echo; }} >> {}",
                sh_quote(name),
                sh_quote(log.to_str().unwrap())
            );
            let then = match real {
                Some(p) => format!("exec {} \"$@\"", sh_quote(p.to_str().unwrap())),
                None => format!("echo '{name}: a tripwire, not run' >&2; exit 97"),
            };
            let script = bin.join(name);
            std::fs::write(&script, format!("#!/bin/sh\n{record}\n{then}\n")).unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Calls { bin, log }
    }

    /// Tripwires for every cloud CLI cloudimg may run.
    pub fn tripwires(under: &Path) -> Calls {
        Calls::new(
            under,
            &[
                ("aws", None),
                ("gcloud", None),
                ("gsutil", None),
                ("az", None),
            ],
        )
    }

    /// `PATH` with the wrappers first, then `rest` (a PATH value).
    pub fn path(&self, rest: &OsString) -> OsString {
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(rest));
        std::env::join_paths(paths).unwrap()
    }

    /// `env` with its `PATH` (or the caller's) behind the wrappers.
    pub fn wrap(&self, env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
        let rest = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| std::env::var_os("PATH").unwrap_or_default());
        let mut out: Vec<_> = env.into_iter().filter(|(k, _)| k != "PATH").collect();
        out.push(("PATH".into(), self.path(&rest)));
        out
    }

    /// Every call so far, one per line: the program and its arguments,
    /// tab-separated.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// The first `name` on the caller's `PATH` (e.g. the machine's gcloud).
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
