//! `report.html`: one self-contained page. The CSS is inline; there are no
//! scripts, no images, no fonts, no external links, and a
//! Content-Security-Policy that forbids loading anything, so the page
//! shows the same offline, attached to a release or opened from a CI
//! artifact. Every value is HTML-escaped ([`escape`]): the serial tail is
//! whatever the guest printed.

use std::fmt::Write;

use super::{seconds_text, Entry, Report};

/// The page's style: readable on screen and on paper, PASS green and
/// FAIL red, serial tails in a monospaced box.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#111}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:1px solid #ccc}
.verdict{font-size:1.2em;font-weight:bold}
.pass .result,.verdict.pass{color:#176f2c}
.fail .result,.verdict.fail{color:#b00020}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:.4em 0}
dt{font-weight:bold}
dd{margin:0;overflow-wrap:anywhere}
pre{background:#f4f4f4;border:1px solid #ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
@media print{pre{white-space:pre-wrap}}
";

/// `text` as HTML text or attribute value: `&`, `<`, `>`, `"` and `'`
/// as character references; control characters other than newline and
/// tab (which HTML does not allow, and which a console may carry) as
/// U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let verdict_class = if r.passed() == r.entries.len() {
        "pass"
    } else {
        "fail"
    };
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<title>cloudimg boot report: {}</title>",
        escape(&r.verdict())
    );
    let _ = writeln!(h, "<style>\n{STYLE}</style>\n</head>\n<body>");
    h.push_str("<h1>cloudimg boot report</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"verdict {verdict_class}\">{}</p>",
        escape(&r.verdict())
    );
    let _ = writeln!(
        h,
        "<p>Evidence directory <code>{}</code>; written by cloudimg {}.</p>",
        escape(&r.dir.display().to_string()),
        env!("CARGO_PKG_VERSION")
    );
    table(&mut h, r);
    for (i, e) in r.entries.iter().enumerate() {
        section(&mut h, i + 1, e);
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The summary table: one row per boot, linking to its section.
fn table(h: &mut String, r: &Report) {
    h.push_str("<table>\n<thead><tr><th>#</th><th>Artifact</th><th>Format</th><th>Firmware</th><th>Disk</th><th>Where</th><th>Result</th><th>Seconds</th></tr></thead>\n<tbody>\n");
    for (i, e) in r.entries.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td class=\"num\">{n}</td><td><a href=\"#boot-{n}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"result\">{}</td><td class=\"num\">{}</td></tr>",
            e.result().to_ascii_lowercase(),
            escape(&e.artifact_name()),
            escape(&e.format),
            escape(&e.firmware),
            escape(&e.disk),
            escape(&e.place.to_string()),
            e.result(),
            seconds_text(e.seconds),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

/// One boot's details and serial tail.
fn section(h: &mut String, n: usize, e: &Entry) {
    let _ = writeln!(
        h,
        "<section id=\"boot-{n}\" class=\"{}\">\n<h2>{n}. {} ({}, {}): <span class=\"result\">{}</span></h2>\n<dl>",
        e.result().to_ascii_lowercase(),
        escape(&e.artifact_name()),
        escape(&e.firmware),
        escape(&e.disk),
        e.result()
    );
    for (name, value) in e.details() {
        let _ = writeln!(h, "<dt>{name}</dt><dd>{}</dd>", escape(&value));
    }
    h.push_str("</dl>\n");
    if e.serial_tail.is_empty() {
        h.push_str("<p>No serial output was recorded.</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p>Serial console, last lines:</p>\n<pre>{}</pre>",
            escape(&e.serial_tail)
        );
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup() {
        let s = escape("</pre><script>alert('x')</script>&amp;\"\u{1b}[2J\0");
        assert_eq!(
            s,
            "&lt;/pre&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;&quot;\u{fffd}[2J\u{fffd}"
        );
    }
}
