//! The real cloud CLIs against local emulators (standin/api): where the
//! tools live (`scripts/setup.sh` puts them in `.venv/`), how to start an
//! emulator, the environment that points a CLI at it, and how to ask the
//! emulator what it still holds.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudimg_cloud::RunOptions;

use super::{require_file, require_grub, require_tool};

/// What a cloud run needs here besides the CLIs: QEMU, qemu-img, OVMF,
/// GRUB (the demo image), python3 and tar (missing ones fail under CI).
pub fn tools_ready() -> bool {
    require_tool("qemu-system-x86_64")
        && require_tool("qemu-img")
        && require_tool("python3")
        && require_tool("tar")
        && require_grub()
        && require_file("/usr/share/OVMF/OVMF_CODE_4M.fd")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `.venv/cloud/bin`: awscli, azure-cli, moto, fake-gcs-server.
pub fn venv_bin() -> PathBuf {
    repo().join(".venv/cloud/bin")
}

/// `.venv/npm/bin`: azurite.
pub fn npm_bin() -> PathBuf {
    repo().join(".venv/npm/bin")
}

/// `standin/api`.
pub fn api_dir() -> PathBuf {
    repo().join("standin/api")
}

/// A tool `scripts/setup.sh` installs: present, or (under CI /
/// REQUIRE_ORACLES=1) a failure naming the script.
pub fn require_installed(path: &Path) -> bool {
    require_file(path.to_str().unwrap())
}

/// What every real-CLI flow needs: QEMU and friends, the venv's python,
/// and `aws` (checked by the caller per provider).
pub fn ready_aws() -> bool {
    tools_ready() && require_installed(&venv_bin().join("aws"))
}

/// `PATH` with the venv first (so `aws`/`az` are the installed ones, not
/// the stand-ins nor a system copy), then the caller's PATH.
pub fn path_with_venv() -> OsString {
    let mut paths = vec![venv_bin(), npm_bin()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// A gcloud on PATH (it is not installable from a registry).
pub fn ready_gcloud() -> bool {
    tools_ready() && require_tool("gcloud")
}

// ------------------------------------------------------- emulators ----

/// One emulator process from standin/api, alive while this value is: it
/// prints its URLs as one JSON line, and exits when its stdin closes.
pub struct Emulator {
    /// Temp dir: the emulator's state and the CLI's configuration.
    pub dir: tempfile::TempDir,
    /// What it printed: its URLs by name.
    pub urls: serde_json::Value,
    /// The URL of its control endpoints (`/_standin/...`).
    control: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Emulator {
    /// Start `standin/api/<script> --state DIR --faults SPEC`; `control`
    /// names the URL (in its JSON line) that serves `/_standin/...`.
    pub fn start(script: &str, faults: &str, control: &str) -> Emulator {
        Emulator::start_with(script, faults, control, &[])
    }

    /// [`Emulator::start`] with more arguments for the script.
    pub fn start_with(script: &str, faults: &str, control: &str, extra: &[&str]) -> Emulator {
        let dir = tempfile::Builder::new()
            .prefix("emu-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let mut child = Command::new(venv_bin().join("python"))
            .arg(api_dir().join(script))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--faults")
            .arg(faults)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start standin/api/{script}: {e}"));
        let urls = first_line_json(&mut child);
        let stdin = child.stdin.take();
        Emulator {
            control: urls[control].as_str().unwrap().to_string(),
            urls,
            dir,
            child,
            stdin,
        }
    }

    /// The URL named `name`.
    pub fn url(&self, name: &str) -> String {
        self.urls[name].as_str().unwrap().to_string()
    }

    /// Everything the emulator still holds, asked of the emulator itself.
    pub fn leftovers(&self) -> Vec<String> {
        let body = http(&self.control, "GET", "/_standin/leftovers", "");
        serde_json::from_str(&body).unwrap()
    }

    /// Replace the fault spec.
    pub fn set_faults(&self, spec: &str) {
        http(&self.control, "POST", "/_standin/faults", spec);
    }
}

impl Drop for Emulator {
    /// Close the emulator's stdin (it stops its QEMUs and exits); kill it
    /// if it has not within 10 s.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run options for a flow against an emulator whose CLI environment is
/// `env`: evidence under `ev`, fast polling, short backoff, progress to
/// the test's stderr.
pub fn emulator_options(
    env: Vec<(OsString, OsString)>,
    artifact: PathBuf,
    ev: &Path,
) -> RunOptions {
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact, ev.join("ev"), log);
    o.env = env;
    o.poll_interval = Duration::from_millis(500);
    o.boot_timeout = Duration::from_secs(120);
    o.backoff = Duration::from_millis(200);
    o.command_timeout = Duration::from_secs(300);
    o
}

/// A runner (progress to the test's stderr, short backoff) for an
/// emulator whose CLI environment is `env`, describing every `poll`.
pub fn emulator_runner(env: Vec<(OsString, OsString)>, poll: Duration) -> cloudimg_cloud::Runner {
    let mut r = cloudimg_cloud::Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    r.env = env;
    r.backoff = Duration::from_millis(200);
    r.poll = poll;
    r
}

// ------------------------------------------------------------ AWS ----

/// A local AWS: moto (S3, STS, the rest of EC2) and our EC2 endpoint
/// (standin/api/aws_emulator.py).
pub struct AwsEmu {
    /// The emulator.
    pub emu: Emulator,
}

/// The region every test works in.
pub const REGION: &str = "us-east-1";

impl AwsEmu {
    /// Start the emulator with fault spec `faults` (standin/api/faults.py)
    /// and make bucket `bkt` with the real CLI.
    pub fn start(faults: &str) -> AwsEmu {
        let emu = AwsEmu {
            emu: Emulator::start("aws_emulator.py", faults, "ec2"),
        };
        emu.write_config();
        let mb = emu.aws(&["s3", "mb", "s3://bkt"]);
        assert!(mb.status.success(), "aws s3 mb: {mb:?}");
        emu
    }

    /// The temp dir (state, config, evidence of child runs).
    pub fn dir(&self) -> &Path {
        self.emu.dir.path()
    }

    /// A throwaway CLI configuration: region, JSON output, dummy keys.
    fn write_config(&self) {
        std::fs::write(
            self.dir().join("config"),
            format!("[default]\nregion = {REGION}\noutput = json\n"),
        )
        .unwrap();
        std::fs::write(
            self.dir().join("credentials"),
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
        )
        .unwrap();
    }

    /// The environment that points the real `aws` at the emulator:
    /// `AWS_ENDPOINT_URL` (every service: moto) and
    /// `AWS_ENDPOINT_URL_EC2` (ours), read by botocore >= 1.31 (awscli v1
    /// 1.29+; `cli_honours_the_endpoint_variables` checks the installed
    /// one), and the config/credentials files above. Nothing reaches past
    /// 127.0.0.1.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let d = self.dir();
        vec![
            ("PATH".into(), path_with_venv()),
            ("AWS_CONFIG_FILE".into(), d.join("config").into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                d.join("credentials").into(),
            ),
            ("AWS_ENDPOINT_URL".into(), self.emu.url("moto").into()),
            ("AWS_ENDPOINT_URL_EC2".into(), self.emu.url("ec2").into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_PROFILE".into(), "default".into()),
        ]
    }

    /// Run the real `aws` with the emulator's environment only.
    pub fn aws(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(venv_bin().join("aws"));
        c.args(args).env_clear().envs(self.env());
        c.env("HOME", self.dir());
        c.output().unwrap()
    }

    /// Everything the emulator still holds (our EC2 resources, QEMU
    /// processes, moto's S3 objects).
    pub fn leftovers(&self) -> Vec<String> {
        self.emu.leftovers()
    }

    /// Run options for `artifact` against this emulator, evidence under
    /// `ev` ([`emulator_options`]).
    pub fn options_for(&self, artifact: PathBuf, ev: &Path) -> RunOptions {
        let mut o = emulator_options(self.env(), artifact, ev);
        // Long enough for every eventual-consistency fault the tests
        // inject, short enough that a deletion refused for good (a
        // snapshot still in use) ends the teardown soon.
        o.settle = Duration::from_secs(30);
        o
    }

    /// A runner for `teardown_journal` against this emulator.
    pub fn runner(&self) -> cloudimg_cloud::Runner {
        emulator_runner(self.env(), Duration::from_millis(300))
    }

    /// The real `aws`'s JSON answer to `args` (which must succeed).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws(args);
        assert!(out.status.success(), "aws {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The records of a run's `commands.jsonl` (one per CLI invocation).
pub fn commands(s: &cloudimg_cloud::Summary) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.evidence_dir.join("commands.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The command lines of a run that contain `what` (e.g. `ec2 run-instances`).
pub fn lines_with(s: &cloudimg_cloud::Summary, what: &str) -> Vec<String> {
    commands(s)
        .iter()
        .filter_map(|r| r["line"].as_str())
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------ GCP ----

/// A local GCP: fake-gcs-server and our Compute endpoint
/// (standin/api/gcp_emulator.py), with bucket `bkt`.
pub struct GcpEmu {
    /// The emulator.
    pub emu: Emulator,
}

/// The project every GCP test works in.
pub const PROJECT: &str = "capos-proj";

impl GcpEmu {
    /// Start the emulator with fault spec `faults`.
    pub fn start(faults: &str) -> GcpEmu {
        let emu = GcpEmu {
            emu: Emulator::start("gcp_emulator.py", faults, "compute"),
        };
        std::fs::create_dir_all(emu.emu.dir.path().join("gcloud")).unwrap();
        std::fs::write(emu.emu.dir.path().join("token"), "standin-token\n").unwrap();
        emu.write_boto();
        emu
    }

    /// The boto configuration that points the real `gsutil` at the fake
    /// GCS server's HTTPS front. gsutil ignores gcloud's endpoint
    /// overrides and always speaks https to `gs_json_host:gs_json_port`
    /// from `[Credentials]` (gslib/gcs_json_api.py in the SDK: `http_base
    /// = 'https://'`); `prefer_api = json` keeps it off the XML API. The
    /// front's self-signed certificate is trusted through gcloud's
    /// `core/custom_ca_certs_file` (see [`GcpEmu::env`]): the gsutil
    /// wrapper (bin/bootstrapping/gsutil.py) passes it as `-o
    /// Boto:ca_certificates_file=...`, which overrides the boto file's.
    fn write_boto(&self) {
        let https = self.emu.url("gcs_https");
        let port = https.rsplit(':').next().unwrap();
        std::fs::write(
            self.emu.dir.path().join("boto"),
            format!(
                "[Credentials]\ngs_json_host = 127.0.0.1\ngs_json_port = {port}\n\
                 [GSUtil]\nprefer_api = json\n"
            ),
        )
        .unwrap();
    }

    /// The environment that points the real `gcloud` and `gsutil` at the
    /// emulator: the API endpoint overrides
    /// (`CLOUDSDK_API_ENDPOINT_OVERRIDES_*`, gcloud's properties
    /// `api_endpoint_overrides/storage|compute`), gsutil's boto file and
    /// CA certificate ([`GcpEmu::write_boto`]), an access token from a
    /// file (`auth/access_token_file`, which the gsutil wrapper passes
    /// on), a throwaway configuration directory, account and project
    /// properties, and no
    /// prompts, usage reporting or update checks (nothing leaves
    /// 127.0.0.1).
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let d = self.emu.dir.path();
        vec![
            ("CLOUDSDK_CONFIG".into(), d.join("gcloud").into()),
            (
                "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE".into(),
                d.join("token").into(),
            ),
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE".into(),
                format!("{}/storage/v1/", self.emu.url("gcs")).into(),
            ),
            (
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE".into(),
                format!("{}/compute/v1/", self.emu.url("compute")).into(),
            ),
            ("BOTO_CONFIG".into(), d.join("boto").into()),
            (
                "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE".into(),
                self.emu.url("gcs_cert").into(),
            ),
            ("CLOUDSDK_CORE_ACCOUNT".into(), "standin@example.com".into()),
            ("CLOUDSDK_CORE_PROJECT".into(), PROJECT.into()),
            ("CLOUDSDK_COMPUTE_ZONE".into(), "us-central1-a".into()),
            ("CLOUDSDK_CORE_DISABLE_PROMPTS".into(), "1".into()),
            (
                "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING".into(),
                "true".into(),
            ),
            (
                "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK".into(),
                "true".into(),
            ),
        ]
    }

    /// Run options for `artifact` against this emulator, evidence under
    /// `ev` ([`emulator_options`]).
    pub fn options_for(&self, artifact: PathBuf, ev: &Path) -> RunOptions {
        emulator_options(self.env(), artifact, ev)
    }

    /// A runner for `teardown_journal` against this emulator.
    pub fn runner(&self) -> cloudimg_cloud::Runner {
        emulator_runner(self.env(), Duration::from_millis(500))
    }

    /// Run the real `gcloud` with the emulator's environment.
    pub fn gcloud(&self, args: &[&str]) -> std::process::Output {
        Command::new("gcloud")
            .args(args)
            .envs(self.env())
            .output()
            .unwrap()
    }

    /// Everything the emulator still holds (images, instances, QEMUs, GCS
    /// objects).
    pub fn leftovers(&self) -> Vec<String> {
        self.emu.leftovers()
    }

    /// The faults the emulator has answered so far, `"OP STATUS"` each
    /// (`GET /_standin/injected`).
    pub fn injected(&self) -> Vec<String> {
        let body = http(&self.emu.url("compute"), "GET", "/_standin/injected", "");
        serde_json::from_str(&body).unwrap()
    }
}

/// The JSON object an emulator prints as its first line once it listens.
fn first_line_json(child: &mut Child) -> serde_json::Value {
    let mut line = String::new();
    let out = child.stdout.take().unwrap();
    BufReader::new(out).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator did not start ({e}): {line:?}"))
}

/// One plain HTTP/1.0 request to a local control endpoint; the body.
pub fn http(base: &str, method: &str, path: &str, body: &str) -> String {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{method} {path}: {head}");
    rest.to_string()
}

// ---------------------------------------------------------- Azure ----

/// A local Azure Blob Storage: Azurite with account `caposimages`
/// (standin/api/azure_emulator.py).
pub struct AzureEmu {
    /// The emulator.
    pub emu: Emulator,
    /// Started with `--login`: az reaches Azurite as in Azure, through
    /// an Azure AD login (see [`AzureEmu::start_login`]).
    login: bool,
}

impl AzureEmu {
    /// Start Azurite and make container `vhds` with the real `az`.
    pub fn start() -> AzureEmu {
        let emu = AzureEmu {
            emu: Emulator::start("azure_emulator.py", "", "blob"),
            login: false,
        };
        let c = emu.az(&["storage", "container", "create", "--name", "vhds"]);
        assert!(c.status.success(), "{c:?}");
        emu
    }

    /// Start Azurite over HTTPS with its OAuth check on, beside a local
    /// Azure AD, Resource Manager and proxy (`azure_emulator.py
    /// --login`); register that local cloud in [`az_env`]'s throwaway
    /// configuration, log in to it as its service principal (`az login
    /// --service-principal`), and make container `vhds` with
    /// `--auth-mode login`. Then `az storage ... --account-name
    /// caposimages --auth-mode login` reaches Azurite with a Bearer
    /// token, as in Azure.
    pub fn start_login() -> AzureEmu {
        let emu = AzureEmu {
            emu: Emulator::start_with("azure_emulator.py", "", "blob", &["--login"]),
            login: true,
        };
        let l = &emu.emu.urls["login"];
        let s = |k: &str| l[k].as_str().unwrap().to_string();
        let (aad, arm) = (s("aad"), s("arm"));
        let suffix = s("storage_suffix");
        let (app, secret, tenant) = (s("app_id"), s("secret"), s("tenant"));
        for args in [
            // `--skip-endpoint-discovery`: else az asks ARM's
            // /metadata/endpoints (azure-cli's cloud/custom.py,
            // _populate_from_metadata_endpoint).
            vec![
                "cloud",
                "register",
                "--name",
                "cloudimg-local",
                "--skip-endpoint-discovery",
                "--endpoint-active-directory",
                &aad,
                "--endpoint-resource-manager",
                &arm,
                "--endpoint-active-directory-resource-id",
                &arm,
                "--suffix-storage-endpoint",
                &suffix,
            ],
            vec!["cloud", "set", "--name", "cloudimg-local"],
            vec![
                "login",
                "--service-principal",
                "--username",
                &app,
                "--password",
                &secret,
                "--tenant",
                &tenant,
            ],
            vec![
                "storage",
                "container",
                "create",
                "--account-name",
                "caposimages",
                "--name",
                "vhds",
                "--auth-mode",
                "login",
            ],
        ] {
            let out = emu.az(&args);
            assert!(out.status.success(), "az {}: {out:?}", args.join(" "));
        }
        emu
    }

    /// The environment of a blob command against Azurite: [`az_env`]'s
    /// throwaway configuration and either the account's connection
    /// string (`AZURE_STORAGE_CONNECTION_STRING`, read by `az storage`
    /// when no credential is given on the line) or, after `--login`, no
    /// storage credential but the way to the local cloud:
    /// `REQUESTS_CA_BUNDLE` (the emulator's self-signed certificate;
    /// azure-cli's core/_debug.py and requests honour it),
    /// `HTTPS_PROXY` (requests, under azure-core and MSAL, honours it:
    /// the proxy takes `caposimages.blob.cloudimg.test:443`, the host az
    /// names, to Azurite and refuses any other; `HTTP_PROXY` too, which
    /// it answers 501), `NO_PROXY=127.0.0.1`
    /// (Azure AD and ARM are asked directly) and
    /// `AZURE_CORE_INSTANCE_DISCOVERY=false` (azure-cli's
    /// core/_profile.py `core.instance_discovery`: else MSAL asks
    /// login.microsoftonline.com whether the authority is known).
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let mut e = az_env(self.emu.dir.path());
        if !self.login {
            e.push((
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                self.emu.url("connection_string").into(),
            ));
            return e;
        }
        let l = &self.emu.urls["login"];
        let s = |k: &str| OsString::from(l[k].as_str().unwrap());
        e.extend([
            ("REQUESTS_CA_BUNDLE".into(), s("ca_bundle")),
            ("HTTPS_PROXY".into(), s("proxy")),
            ("HTTP_PROXY".into(), s("proxy")),
            ("NO_PROXY".into(), "127.0.0.1".into()),
            ("AZURE_CORE_INSTANCE_DISCOVERY".into(), "false".into()),
        ]);
        e
    }

    /// Run the real `az` against Azurite.
    pub fn az(&self, args: &[&str]) -> std::process::Output {
        Command::new(venv_bin().join("az"))
            .args(args)
            .env_clear()
            .envs(self.env())
            .output()
            .unwrap()
    }
}

/// A throwaway `az` environment under `dir`: an empty configuration
/// directory (so: not logged in), no telemetry, the venv first on PATH.
pub fn az_env(dir: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("PATH".into(), path_with_venv()),
        ("HOME".into(), dir.into()),
        ("AZURE_CONFIG_DIR".into(), dir.join("azure").into()),
        ("AZURE_CORE_COLLECT_TELEMETRY".into(), "false".into()),
    ]
}

/// A passing run through a real CLI: landmark seen with the right
/// firmware, teardown clean, and the emulator (`leftovers`, asked after
/// the run) holds nothing.
pub fn assert_passed(
    s: &cloudimg_cloud::Summary,
    leftovers: impl FnOnce() -> Vec<String>,
    firmware: &str,
) {
    assert!(s.passed, "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean(), "{s:#?}");
    let serial = std::fs::read_to_string(s.evidence_dir.join("serial.log")).unwrap();
    assert!(serial.contains("capos kernel starting"), "{serial}");
    assert!(serial.contains(&format!("firmware={firmware}")), "{serial}");
    assert_eq!(leftovers(), Vec::<String>::new());
}
