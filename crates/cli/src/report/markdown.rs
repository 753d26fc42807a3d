//! `report.md`: the same report in GitHub-flavoured Markdown, for a pull
//! request, a release note or a terminal. Table cells escape Markdown's
//! punctuation with backslashes (CommonMark 0.31, "Backslash escapes":
//! any ASCII punctuation may be escaped; GFM tables take `\|` in a cell),
//! so a value can neither end a cell nor open HTML; serial tails sit in
//! fenced code blocks whose fence is longer than any run of backticks
//! inside (CommonMark, "Fenced code blocks": the closing fence must be at
//! least as long as the opening one).

use std::fmt::Write;

use super::{seconds_text, Entry, Report};

/// The punctuation escaped in inline text: what could start emphasis,
/// links (`[`; so `![`, `](` cannot form either), code, HTML, entities,
/// strikethrough, GitHub's math (`$`) or end a table cell. Kept short so
/// that paths and formats stay readable: what only means something at
/// the start of a line (`#`, `+`, `=`) cannot be there, as every value
/// follows a cell's `| ` or a list item's `- Name: `.
const SPECIAL: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '|', '&', '~', '$'];

/// `text` as inline Markdown on one line: punctuation escaped, line
/// breaks as spaces, control characters as U+FFFD.
pub fn escape_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if SPECIAL.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block holding `text` verbatim (control characters other
/// than newline and tab as U+FFFD).
pub fn code_block(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect();
    let longest = clean.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{clean}\n{fence}\n")
}

/// The whole report.
pub fn render(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# cloudimg boot report\n");
    let _ = writeln!(m, "**{}**\n", escape_inline(&r.verdict()));
    let _ = writeln!(
        m,
        "Evidence directory {}; written by cloudimg {}.\n",
        escape_inline(&r.dir.display().to_string()),
        env!("CARGO_PKG_VERSION")
    );
    m.push_str("| # | Artifact | Format | Firmware | Disk | Where | Result | Seconds |\n");
    m.push_str("|--:|---|---|---|---|---|---|--:|\n");
    for (i, e) in r.entries.iter().enumerate() {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            escape_inline(&e.artifact_name()),
            escape_inline(&e.format),
            escape_inline(&e.firmware),
            escape_inline(&e.disk),
            escape_inline(&e.place.to_string()),
            e.result(),
            seconds_text(e.seconds)
        );
    }
    for (i, e) in r.entries.iter().enumerate() {
        section(&mut m, i + 1, e);
    }
    m
}

fn section(m: &mut String, n: usize, e: &Entry) {
    let _ = writeln!(
        m,
        "\n## {n}. {} ({}, {}): {}\n",
        escape_inline(&e.artifact_name()),
        escape_inline(&e.firmware),
        escape_inline(&e.disk),
        e.result()
    );
    for (name, value) in e.details() {
        let _ = writeln!(m, "- {name}: {}", escape_inline(&value));
    }
    if e.serial_tail.is_empty() {
        m.push_str("\nNo serial output was recorded.\n");
    } else {
        let _ = write!(
            m,
            "\nSerial console, last lines:\n\n{}",
            code_block(&e.serial_tail)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_end_or_open_markup() {
        assert_eq!(
            escape_inline("a|b<script>\n*x*"),
            "a\\|b\\<script\\> \\*x\\*"
        );
    }

    #[test]
    fn fence_outlasts_backticks_inside() {
        let b = code_block("````\n```");
        assert!(b.starts_with("`````text\n"), "{b}");
        assert!(b.ends_with("\n`````\n"), "{b}");
    }
}
