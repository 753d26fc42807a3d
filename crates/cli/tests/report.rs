//! `cloudimg report DIR`: the one-page report of an evidence directory,
//! checked by a renderer we did not write. The evidence comes from one
//! real boot (`cloudimg boot --log`, BIOS, the fastest under TCG); the
//! HTML is opened in headless Chromium (Debian's `chromium`) and the text
//! it renders (`document.body.innerText`, read over the DevTools protocol
//! on `--remote-debugging-pipe`) is compared with the evidence JSON.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use common::real::{ready_aws, AwsEmu};
use common::{cloudimg, ok, require_grub, require_tool};

/// The evidence of one real boot, made once per test binary: the demo
/// image booted under SeaBIOS with `--log`. None (or a panic under CI)
/// when QEMU or GRUB is missing.
fn evidence() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !(require_tool("qemu-system-x86_64") && require_grub()) {
            return None;
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-evidence");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        ok(cloudimg(&["image", "build", "-o", "img.raw"], &root));
        ok(cloudimg(
            &["boot", "img.raw", "--firmware", "bios", "--log", "ev"],
            &root,
        ));
        Some(root.join("ev"))
    })
    .as_deref()
}

/// A copy of `src`'s files in a new directory (so each test writes its
/// own report).
fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// The boot records (`boot-*.json`) in `dir`, sorted by name.
fn records(dir: &Path) -> Vec<Value> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("boot-") && n.ends_with(".json")
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// Headless Chromium driven over the DevTools protocol on
/// `--remote-debugging-pipe`: Chromium reads NUL-terminated JSON messages
/// on fd 3 and writes its own on fd 4 (chromium/src
/// content/browser/devtools/devtools_pipe_handler.cc). A shell maps our
/// pipes to those descriptors, so no `unsafe` is needed; `timeout` ends a
/// Chromium that hangs.
struct Chromium {
    child: Child,
    /// Chromium's stderr, shown when it fails.
    stderr: PathBuf,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
}

/// The flags the tests run Chromium with: headless, as root in a
/// container (no sandbox), nothing fetched or synced in the background.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
];

impl Chromium {
    fn start(profile: &Path) -> Chromium {
        let stderr = profile.with_extension("stderr");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec timeout 120 "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg("chromium")
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting chromium");
        let to = child.stdin.take().unwrap();
        let from = BufReader::new(child.stdout.take().unwrap());
        Chromium {
            child,
            stderr,
            to,
            from,
            next_id: 1,
        }
    }

    /// Send one command (to a page's `session`, or the browser) and
    /// return its result, passing over events.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).unwrap();
            assert!(
                n > 0,
                "chromium closed the pipe during {method}; its stderr:\n{}",
                fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate `expr` in the page and return its value.
    fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Chromium shows of a page.
#[derive(Debug)]
struct Rendered {
    /// `document.body.innerText`: table cells separated by tabs, rows by
    /// newlines (HTML Standard, "The innerText getter").
    text: String,
    /// `<script>` elements in the document.
    scripts: u64,
    /// Elements other than the page's own kinds (any would be markup
    /// that came from the evidence).
    foreign: u64,
    /// Rows of the summary table.
    rows: u64,
    /// Resources the page loaded (Resource Timing).
    resources: u64,
    /// The document's title.
    title: String,
}

/// The elements report.html is made of.
const OWN_ELEMENTS: &str =
    "html,head,meta,title,style,body,h1,h2,p,code,table,thead,tbody,tr,th,td,a,section,span,dl,dt,dd,pre";

/// Open `html` in headless Chromium and read what it rendered.
fn render(html: &Path) -> Rendered {
    let html = fs::canonicalize(html).unwrap();
    let url_path = html.to_str().unwrap();
    assert!(
        url_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)),
        "the test's path needs no URL escaping: {url_path}"
    );
    let profile = html.with_file_name("chromium-profile");
    let mut c = Chromium::start(&profile);
    let target = c.call(
        None,
        "Target.createTarget",
        json!({"url": format!("file://{url_path}")}),
    );
    let attached = c.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    let session = attached["sessionId"].as_str().unwrap().to_string();
    let mut ready = false;
    for _ in 0..600 {
        // The new target starts on about:blank, itself "complete".
        let loaded = format!(
            "location.href === {} && document.readyState === 'complete'",
            json!(format!("file://{url_path}"))
        );
        if c.eval(&session, &loaded) == json!(true) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "chromium did not finish loading {url_path}");
    let v = c.eval(
        &session,
        &format!(
            "JSON.stringify({{text: document.body.innerText, \
             scripts: document.scripts.length, \
             foreign: document.querySelectorAll(':not({OWN_ELEMENTS})').length, \
             rows: document.querySelectorAll('tbody tr').length, \
             resources: performance.getEntriesByType('resource').length, \
             title: document.title}})"
        ),
    );
    let _ = c.call(None, "Browser.close", json!({}));
    let v: Value = serde_json::from_str(v.as_str().expect("a JSON string")).unwrap();
    Rendered {
        text: v["text"].as_str().unwrap().to_string(),
        scripts: v["scripts"].as_u64().unwrap(),
        foreign: v["foreign"].as_u64().unwrap(),
        rows: v["rows"].as_u64().unwrap(),
        resources: v["resources"].as_u64().unwrap(),
        title: v["title"].as_str().unwrap().to_string(),
    }
}

/// The summary row a boot record should render as (after its number).
fn expected_row(r: &Value) -> String {
    let name = Path::new(r["artifact"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let secs = r["seconds_to_landmark"]
        .as_f64()
        .map_or("-".to_string(), |s| format!("{s:.2}"));
    format!(
        "{name}\t{}\t{}\t{}\tqemu {}\t{}\t{secs}",
        r["artifact_format"].as_str().unwrap(),
        r["firmware"].as_str().unwrap(),
        r["disk_interface"].as_str().unwrap(),
        r["accel"].as_str().unwrap(),
        if r["passed"].as_bool().unwrap() {
            "PASS"
        } else {
            "FAIL"
        }
    )
}

/// The rendered page lists every boot of the evidence with its artifact,
/// format, firmware, disk, result and time, as the JSON records say, and
/// each boot's serial tail; it loads nothing and runs nothing.
#[test]
fn rendered_report_matches_the_evidence_json() {
    let Some(ev) = evidence() else { return };
    if !require_tool("chromium") {
        return;
    }
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = t.path().join("ev");
    copy_dir(ev, &dir);
    let out = ok(cloudimg(&["report", "ev"], t.path()));
    assert!(out.contains("1 of 1 boots reached the landmark"), "{out}");
    let recs = records(&dir);
    assert_eq!(recs.len(), 1, "one boot made the evidence");
    let page = render(&dir.join("report.html"));
    assert_eq!(page.scripts, 0);
    assert_eq!(page.foreign, 0, "only the report's own elements");
    assert_eq!(page.resources, 0, "nothing loaded from anywhere");
    assert_eq!(page.rows as usize, recs.len(), "{}", page.text);
    let passed = recs.iter().filter(|r| r["passed"] == json!(true)).count();
    let verdict = format!("{passed} of {} boots reached the landmark", recs.len());
    assert!(page.text.contains(&verdict), "{}", page.text);
    assert!(page.title.contains(&verdict), "{}", page.title);
    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    for (i, r) in recs.iter().enumerate() {
        let row = format!("{}\t{}", i + 1, expected_row(r));
        assert!(
            page.text.lines().any(|l| l == row),
            "row {row:?} not rendered:\n{}",
            page.text
        );
        assert!(
            md.contains(&format!("| {} |", row.replace('\t', " | "))),
            "{row:?} not in report.md:\n{md}"
        );
        let tail = r["serial_tail"].as_str().unwrap();
        assert!(tail.contains("capos kernel starting"), "{tail}");
        assert!(
            page.text.contains(tail),
            "serial tail not rendered:\n{}",
            page.text
        );
    }
}

/// Serial text is the guest's: markup in it (or in a failure message or
/// an artifact's name) shows as text and never becomes elements.
#[test]
fn hostile_serial_text_is_shown_not_run() {
    let Some(ev) = evidence() else { return };
    if !require_tool("chromium") {
        return;
    }
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = t.path().join("ev");
    copy_dir(ev, &dir);
    let name = records(&dir).len();
    assert_eq!(name, 1);
    let src = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let mut r: Value = serde_json::from_str(&fs::read_to_string(&src).unwrap()).unwrap();
    let hostile = "</pre></table><script>document.title='pwned'</script>\n\
                   <img src=x onerror=\"document.title='pwned'\"><b>bold</b>\n\
                   ```\n| a | b |\n</section></body>";
    r["serial_tail"] = json!(hostile);
    r["failure"] = json!("</td></tr><script>alert(1)</script>");
    r["artifact"] = json!("dir/<i title=x>evil.raw");
    r["passed"] = json!(false);
    r["seconds_to_landmark"] = Value::Null;
    fs::write(&src, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    let out = cloudimg(&["report", "ev"], t.path());
    assert_eq!(out.status.code(), Some(1), "a failed boot: exit 1");
    let page = render(&dir.join("report.html"));
    assert_eq!(page.scripts, 0);
    assert_eq!(page.foreign, 0, "no element came from the evidence");
    assert_eq!(page.rows, 1);
    assert!(!page.title.contains("pwned"), "{}", page.title);
    assert!(page.text.contains(hostile), "{}", page.text);
    assert!(
        page.text.contains("</td></tr><script>alert(1)</script>"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .lines()
            .any(|l| l.starts_with("1\t<i title=x>evil.raw\t") && l.ends_with("\tFAIL\t-")),
        "{}",
        page.text
    );
    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("\\<i title=x\\>evil.raw"), "{md}");
    assert!(
        md.contains("\n````text\n"),
        "a fence longer than ``` :\n{md}"
    );
}

/// A directory without evidence, or a record that is not one: one line
/// naming the file, exit 2, nothing written.
#[test]
fn no_evidence_is_one_line_and_exit_2() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("empty")).unwrap();
    let out = cloudimg(&["report", "empty"], t.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("empty") && err.contains("no boot records"),
        "{err}"
    );
    assert!(!t.path().join("empty/report.html").exists());

    fs::create_dir(t.path().join("bad")).unwrap();
    fs::write(t.path().join("bad/boot-uefi-nvme.json"), "{\"passed\": tru").unwrap();
    let out = cloudimg(&["report", "bad"], t.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad/boot-uefi-nvme.json"), "{err}");
    assert!(!t.path().join("bad/report.md").exists());
}

/// A symlink planted at report.html is replaced by the report, its target
/// never written.
#[test]
fn report_never_writes_through_a_symlink() {
    let Some(ev) = evidence() else { return };
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = t.path().join("ev");
    copy_dir(ev, &dir);
    let victim = t.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let _ = fs::remove_file(dir.join("report.html"));
    std::os::unix::fs::symlink(&victim, dir.join("report.html")).unwrap();
    ok(cloudimg(&["report", "ev"], t.path()));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let meta = fs::symlink_metadata(dir.join("report.html")).unwrap();
    assert!(meta.file_type().is_file());
}

/// A cloud run's evidence (`cloud aws --evidence DIR` through the real
/// `aws` against the local AWS emulator in standin/api, which boots the
/// imported disk in QEMU: SeaBIOS for `legacy-bios`) is reported from its
/// summary.json and serial.log, as the rendered page shows.
#[test]
fn cloud_run_evidence_is_reported() {
    let Some(ev) = evidence() else { return };
    if !(require_tool("chromium") && ready_aws()) {
        return;
    }
    let emu = AwsEmu::start("");
    let mb = emu.aws(&["s3", "mb", "s3://capos-images"]);
    assert!(mb.status.success(), "{mb:?}");
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = t.path();
    let cloudimg = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cloudimg"))
            .args(args)
            .current_dir(d)
            .envs(emu.env())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("running cloudimg")
    };
    let image = ev.parent().unwrap().join("img.raw");
    ok(cloudimg(&[
        "package",
        image.to_str().unwrap(),
        "--aws",
        "-o",
        "cloud",
    ]));
    ok(cloudimg(&[
        "cloud",
        "aws",
        "--bucket",
        "capos-images",
        "--format",
        "raw",
        "--boot-mode",
        "legacy-bios",
        "--artifact",
        "cloud/capos-aws.raw",
        "--name",
        "capos-report",
        "--evidence",
        "cev",
        "--timeout",
        "120",
        "--poll",
        "1",
    ]));
    ok(cloudimg(&["report", "cev"]));
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(d.join("cev/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], json!(true), "{summary}");
    let page = render(&d.join("cev/report.html"));
    assert_eq!((page.scripts, page.foreign, page.resources), (0, 0, 0));
    assert_eq!(page.rows, 1);
    let row = format!(
        "1\tcapos-aws.raw\t{}\t{}\t-\t{}\tPASS\t{:.2}",
        summary["artifact_format"].as_str().unwrap(),
        summary["boot_mode"].as_str().unwrap(),
        summary["provider"].as_str().unwrap(),
        summary["seconds_to_landmark"].as_f64().unwrap()
    );
    assert!(
        page.text.lines().any(|l| l == row),
        "row {row:?} not rendered:\n{}",
        page.text
    );
    assert!(
        page.text.contains("capos demo kernel: firmware=bios"),
        "serial tail from serial.log:\n{}",
        page.text
    );
    // Asked of the emulator: the run left nothing.
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
