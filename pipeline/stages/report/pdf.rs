//! The feedback reports as printable files: each page printed to PDF by headless Chromium,
//! when it is installed (`chromium`, `chromium-browser`, `google-chrome` or
//! `google-chrome-stable` on the `PATH`). The pages' style sheet sets A4 (`@page`) and keeps
//! tables and heat maps whole on a page (`break-inside: avoid`).
//!
//! Chromium runs with a fresh profile in a temporary folder, no network services, no header or
//! footer (which would print the file's path and the day), and writes the PDF into that folder;
//! the file is then checked (`%PDF-` … `%%EOF`) and moved into the reports folder whole, so no
//! half-written PDF is ever left there. Chromium stamps the PDF with the time it was made: that
//! stamp is replaced by `report.date` (or 1 January 1970 without one), same length, so two runs
//! give the same bytes with the same Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::io;

/// The names Chromium goes by, tried in this order on the `PATH`.
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How long Chromium may take to print one page before it is stopped.
const LIMIT: Duration = Duration::from_secs(120);

/// The first Chromium on the `PATH`, if any.
pub fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in NAMES {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if is_executable(&p) {
                return Some(p);
            }
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `path` as a `file://` URL, with every byte outside the unreserved set percent-encoded.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Prints `html` to `pdf` with `chromium`; `date` (ISO) is the stamp the PDF gets.
pub fn print(chromium: &Path, html: &Path, pdf: &Path, date: Option<&str>) -> Result<()> {
    let html =
        std::fs::canonicalize(html).with_context(|| format!("cannot find {}", html.display()))?;
    let work = tempfile::Builder::new()
        .prefix("relcap-pdf-")
        .tempdir()
        .context("cannot make a temporary folder for Chromium")?;
    let profile = work.path().join("profile");
    let out = work.path().join("page.pdf");
    let log = std::fs::File::create(work.path().join("chromium.log"))?;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(file_url(&html))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", chromium.display()))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Chromium did not print {} within {LIMIT:?}", html.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let bytes = std::fs::read(&out).ok().filter(|b| is_whole_pdf(b));
    let Some(mut bytes) = bytes else {
        let tail = std::fs::read_to_string(work.path().join("chromium.log")).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(3).collect();
        bail!(
            "Chromium ({status}) wrote no PDF of {}: {}",
            html.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    };
    set_dates(&mut bytes, date);
    io::write_atomic(pdf, |w| {
        use std::io::Write as _;
        w.write_all(&bytes)?;
        Ok(())
    })
}

/// A PDF as Chromium finishes it: the header at the start and `%%EOF` at the end.
pub fn is_whole_pdf(b: &[u8]) -> bool {
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    b.starts_with(b"%PDF-") && b[..end].ends_with(b"%%EOF")
}

/// Replaces the 14 digits of every `/CreationDate (D:…` and `/ModDate (D:…` by `date` at
/// midnight (or 1970-01-01), in place: the same length, so the file's offsets stay right.
fn set_dates(bytes: &mut [u8], date: Option<&str>) {
    let digits: Vec<u8> =
        format!("{}000000", date.unwrap_or("1970-01-01").replace('-', "")).into_bytes();
    if digits.len() != 14 {
        return;
    }
    for key in [&b"/CreationDate (D:"[..], &b"/ModDate (D:"[..]] {
        let mut from = 0;
        while let Some(i) = find(&bytes[from..], key) {
            let at = from + i + key.len();
            if bytes.len() >= at + 14 && bytes[at..at + 14].iter().all(u8::is_ascii_digit) {
                bytes[at..at + 14].copy_from_slice(&digits);
            }
            from = at;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_dates_and_whole_files() {
        assert_eq!(
            file_url(Path::new("/r/municipalities/Rødovre kommune.html")),
            "file:///r/municipalities/R%C3%B8dovre%20kommune.html"
        );
        let mut b = b"%PDF-1.4 /CreationDate (D:20261206054648+00'00') /ModDate (D:20261206054648+00'00') %%EOF\n".to_vec();
        let len = b.len();
        set_dates(&mut b, Some("2026-05-12"));
        assert_eq!(b.len(), len);
        let s = String::from_utf8(b.clone()).unwrap();
        assert_eq!(s.matches("(D:20260512000000+00'00')").count(), 2, "{s}");
        set_dates(&mut b, None);
        assert!(String::from_utf8(b.clone())
            .unwrap()
            .contains("(D:19700101000000"));
        assert!(is_whole_pdf(&b));
        assert!(!is_whole_pdf(b"%PDF-1.4 half"));
        assert!(!is_whole_pdf(b""));
    }
}
