//! A small CSV reader for the canonical tables that keeps every cell as text and knows the
//! physical line each record starts on.
//!
//! Why not polars' reader: ingest must name the line of every bad cell, and a quoted field may
//! contain line breaks, so "record number + 1" is not the line a user sees in an editor. This
//! reader follows RFC 4180 (fields separated by one byte, optionally quoted with `"`, a `""`
//! inside quotes is one quote, records end at `\n` or `\r\n` outside quotes) and counts `\n`
//! bytes as it goes, including those inside quoted fields. Text after a closing quote is kept
//! as written (`"ab"c` reads as `abc`, as Python's csv module does); a quote inside an unquoted
//! field is an ordinary character.
//!
//! Encodings: [`decode`] turns the bytes into text. With `auto`, a file that is valid UTF-8 is
//! UTF-8 (a leading byte-order mark is removed); a file that is not, and has no valid non-ASCII
//! UTF-8 sequence either, is Windows-1252 (the usual Excel "CSV (semicolon)" export); a file
//! that mixes valid UTF-8 letters with invalid bytes is UTF-8 with damaged lines. Bytes that the
//! chosen (or forced) encoding cannot decode (invalid UTF-8; 0x81 0x8D 0x8F 0x90 0x9D in
//! Windows-1252) mark their line as bad, and the record on that line is rejected with reason
//! `encoding` rather than read with a replacement character; a bad header is an error.
//!
//! Limits, all deliberate: blank lines (empty or only whitespace) are not records and are
//! skipped; a record with more or fewer fields than the header is returned as a [`Rejected`]
//! record (`ragged_row`) for the caller to quarantine rather than guessed at; a quote that is
//! never closed is an error naming the line where the field began. Only the columns the caller
//! asks for are kept, so a wide file costs memory only for the columns it uses.

use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use crate::schema::Reason;

/// A record that is not read: its fields do not match the header (`ragged_row`), or its
/// bytes cannot be decoded (`encoding`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based physical line where the record starts (the header is line 1).
    pub line: i64,
    /// `ragged_row` or `encoding`.
    pub reason: Reason,
    /// What to show in the quarantine's `value` column.
    pub detail: String,
}

/// The parsed file: the header, the wanted columns as text, and where each record starts.
#[derive(Debug)]
pub struct TextTable {
    /// Header names as written, surrounding whitespace removed.
    pub header: Vec<String>,
    /// One text column per wanted header index, in the order asked for.
    pub columns: Vec<StringChunked>,
    /// Physical start line of each well-formed record (same length as the columns).
    pub lines: Vec<i64>,
    /// Records not read (not in `columns`), in file order.
    pub rejected: Vec<Rejected>,
    /// Blank lines skipped.
    pub blank_lines: u64,
}

/// Text decoded from a file's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// `utf-8` or `windows-1252`.
    pub encoding: &'static str,
    /// 1-based lines holding bytes the encoding cannot decode, ascending.
    pub bad_lines: Vec<i64>,
}

/// Bytes that Windows-1252 leaves undefined.
const CP1252_UNDEFINED: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];

/// Decodes `bytes` as `encoding` (`auto`, `utf-8` or `windows-1252`); see the module doc.
pub fn decode(bytes: &[u8], encoding: &str) -> Decoded {
    let (bytes, bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let utf8 = match encoding {
        "utf-8" => true,
        "windows-1252" => false,
        _ => {
            bom || std::str::from_utf8(bytes).is_ok() || {
                // Invalid somewhere: UTF-8 with damage if it has any valid non-ASCII letter.
                bytes.utf8_chunks().any(|c| !c.valid().is_ascii())
            }
        }
    };
    if utf8 {
        let mut text = String::with_capacity(bytes.len());
        let mut bad_lines = Vec::new();
        let mut line = 1i64;
        for chunk in bytes.utf8_chunks() {
            let valid = chunk.valid();
            line += valid.bytes().filter(|&b| b == b'\n').count() as i64;
            text.push_str(valid);
            if !chunk.invalid().is_empty() {
                text.push(char::REPLACEMENT_CHARACTER);
                if bad_lines.last() != Some(&line) {
                    bad_lines.push(line);
                }
            }
        }
        Decoded {
            text,
            encoding: "utf-8",
            bad_lines,
        }
    } else {
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
        let mut bad_lines = Vec::new();
        let mut line = 1i64;
        for &b in bytes {
            if b == b'\n' {
                line += 1;
            } else if CP1252_UNDEFINED.contains(&b) && bad_lines.last() != Some(&line) {
                bad_lines.push(line);
            }
        }
        Decoded {
            text: text.into_owned(),
            encoding: "windows-1252",
            bad_lines,
        }
    }
}

/// Reads the header line only (after the byte-order mark), split on `separator`.
pub fn read_header(text: &str, separator: u8) -> Result<Vec<String>> {
    let mut p = Parser::new(text, separator);
    match p.next_record()? {
        Some(rec) => Ok(rec
            .iter()
            .map(|f| f.text(text).trim().to_string())
            .collect()),
        None => Ok(vec![]),
    }
}

/// Loads and decodes a file (see [`decode`]). Undecodable bytes on the header line are an
/// error naming the file.
pub fn load_text(path: &Path, encoding: &str) -> Result<Decoded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let d = decode(&bytes, encoding);
    if d.bad_lines.first() == Some(&1) {
        bail!(
            "{}, line 1: the header has bytes that are not valid {} (config key csv.encoding)",
            path.display(),
            d.encoding
        );
    }
    Ok(d)
}

/// The separator to use: the configured one, or for "auto" the most frequent of `;` `,` tab
/// on the header line (ties go to `,`).
pub fn separator(configured: &str, text: &str) -> u8 {
    match configured {
        ";" => b';',
        "," => b',',
        "\t" => b'\t',
        "|" => b'|',
        _ => {
            let header = text.lines().next().unwrap_or("").as_bytes();
            let count = |c: u8| header.iter().filter(|&&b| b == c).count();
            [b',', b';', b'\t']
                .into_iter()
                .max_by_key(|&c| (count(c), c == b','))
                .unwrap_or(b',')
        }
    }
}

/// Parses `text` (the whole file, BOM removed) keeping the columns at header positions
/// `wanted`. `file` names the file in error messages. Records touching a line in `bad_lines`
/// (ascending) are rejected as `encoding`.
pub fn parse(
    text: &str,
    separator: u8,
    wanted: &[usize],
    file: &str,
    bad_lines: &[i64],
) -> Result<TextTable> {
    let mut p = Parser::new(text, separator);
    let header: Vec<String> = match p.next_record().with_context(|| file.to_string())? {
        Some(rec) => rec
            .iter()
            .map(|f| f.text(text).trim().to_string())
            .collect(),
        None => vec![],
    };
    // A rough row estimate keeps the builders from regrowing on big files.
    let estimate = text.len() / (header.len().max(1) * 8 + 2);
    let mut builders: Vec<StringChunkedBuilder> = wanted
        .iter()
        .map(|&i| {
            let name = header.get(i).map(String::as_str).unwrap_or("");
            StringChunkedBuilder::new(PlSmallStr::from_str(name), estimate)
        })
        .collect();
    let mut lines = Vec::with_capacity(estimate);
    let mut rejected = Vec::new();
    let mut blank_lines = 0u64;
    let mut scratch = String::new();
    let mut bad = bad_lines.iter().copied().peekable();
    loop {
        let start_line = p.line;
        match p.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(e.context(file.to_string())),
        }
        // The record spans lines start_line..=end_line.
        let end_line = if p.pos >= p.bytes.len() && p.bytes.last() != Some(&b'\n') {
            p.line
        } else {
            p.line - 1
        };
        while bad.next_if(|&l| l < start_line).is_some() {}
        if bad.peek().is_some_and(|&l| l <= end_line) {
            rejected.push(Rejected {
                line: start_line,
                reason: Reason::Encoding,
                detail: "bytes that are not valid in the file's encoding".to_string(),
            });
            continue;
        }
        let rec = &p.fields;
        if rec.len() == 1 && rec[0].text(text).trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        if rec.len() != header.len() {
            rejected.push(Rejected {
                line: start_line,
                reason: Reason::RaggedRow,
                detail: format!("{} fields; the header has {}", rec.len(), header.len()),
            });
            continue;
        }
        for (b, &i) in builders.iter_mut().zip(wanted) {
            let f = &rec[i];
            if f.escaped {
                f.unescape_into(text, &mut scratch);
                b.append_value(scratch.as_str());
            } else {
                b.append_value(f.text(text));
            }
        }
        lines.push(start_line);
    }
    Ok(TextTable {
        header,
        columns: builders.into_iter().map(|b| b.finish()).collect(),
        lines,
        rejected,
        blank_lines,
    })
}

/// One field of a record, as byte positions in the file text.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    /// Quoted with `""` inside, or text after the closing quote: needs [`Field::unescape_into`].
    escaped: bool,
    /// For escaped fields: where the quoted part ends (the closing quote's position).
    quote_end: usize,
}

impl Field {
    fn text<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }

    /// The field's value when it had `""` escapes or text after its closing quote.
    fn unescape_into(&self, text: &str, out: &mut String) {
        out.clear();
        let quoted = &text[self.start..self.quote_end];
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '"' && chars.peek() == Some(&'"') {
                chars.next();
            }
        }
        // `quote_end` is the closing quote; anything after it up to `end` is kept as written.
        if self.quote_end < self.end {
            out.push_str(&text[self.quote_end + 1..self.end]);
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    sep: u8,
    pos: usize,
    /// 1-based physical line of `pos`.
    line: i64,
    fields: Vec<Field>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, sep: u8) -> Self {
        Parser {
            bytes: text.as_bytes(),
            sep,
            pos: 0,
            line: 1,
            fields: Vec::with_capacity(16),
        }
    }

    /// The next record's fields, or None at the end of the text.
    fn next_record(&mut self) -> Result<Option<&[Field]>> {
        let b = self.bytes;
        let n = b.len();
        if self.pos >= n {
            return Ok(None);
        }
        self.fields.clear();
        loop {
            // Here `pos < n`: at the start, or after a separator that is not the last byte.
            let field = if b[self.pos] == b'"' {
                self.quoted_field()?
            } else {
                self.unquoted_field()
            };
            self.fields.push(field);
            if self.pos >= n {
                break;
            }
            match b[self.pos] {
                c if c == self.sep => {
                    self.pos += 1;
                    if self.pos >= n {
                        // A trailing separator at the end of the file: one last empty field.
                        self.fields.push(Field {
                            start: n,
                            end: n,
                            escaped: false,
                            quote_end: n,
                        });
                        break;
                    }
                }
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    break;
                }
                // The field scanners stop only at a separator, a newline or the end.
                _ => break,
            }
        }
        Ok(Some(&self.fields))
    }

    /// An unquoted field: up to the separator or the end of the line (a `\r` before `\n` is
    /// not part of it).
    fn unquoted_field(&mut self) -> Field {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        while i < b.len() && b[i] != self.sep && b[i] != b'\n' {
            i += 1;
        }
        self.pos = i;
        let mut end = i;
        if end > start && b[end - 1] == b'\r' && (i == b.len() || b[i] == b'\n') {
            end -= 1;
        }
        Field {
            start,
            end,
            escaped: false,
            quote_end: end,
        }
    }

    /// A quoted field starting at `self.pos` (on the opening quote).
    fn quoted_field(&mut self) -> Result<Field> {
        let b = self.bytes;
        let open_line = self.line;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            if i >= b.len() {
                bail!("line {open_line}: a quoted field starts here and is never closed");
            }
            match b[i] {
                b'"' if i + 1 < b.len() && b[i + 1] == b'"' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let quote_end = i;
        // Anything between the closing quote and the separator / end of line is kept.
        let mut j = i + 1;
        while j < b.len() && b[j] != self.sep && b[j] != b'\n' {
            j += 1;
        }
        self.pos = j;
        let mut end = j;
        if end > quote_end + 1 && b[end - 1] == b'\r' && (j == b.len() || b[j] == b'\n') {
            end -= 1;
        }
        if end > quote_end + 1 {
            escaped = true;
        }
        Ok(Field {
            start,
            end: if escaped { end } else { quote_end },
            escaped,
            quote_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &TextTable, i: usize) -> Vec<Option<String>> {
        t.columns[i].iter().map(|v| v.map(str::to_string)).collect()
    }

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some(x.to_string())).collect()
    }

    #[test]
    fn plain_records_with_crlf_and_lines() {
        let t = parse("a,b\r\n1,x\r\n2,y\r\n", b',', &[0, 1], "f.csv", &[]).unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        assert_eq!(col(&t, 0), s(&["1", "2"]));
        assert_eq!(col(&t, 1), s(&["x", "y"]));
        assert_eq!(t.lines, vec![2, 3]);
    }

    #[test]
    fn embedded_newline_moves_the_line_of_later_records() {
        let text = "a;b\n1;\"two\nlines\"\n2;\"say \"\"hi\"\"\"\n3;z";
        let t = parse(text, b';', &[0, 1], "f.csv", &[]).unwrap();
        assert_eq!(col(&t, 1), s(&["two\nlines", "say \"hi\"", "z"]));
        assert_eq!(t.lines, vec![2, 4, 5]);
    }

    #[test]
    fn blank_lines_are_skipped_and_counted() {
        let t = parse("a,b\n\n1,2\n   \n3,4\n", b',', &[1], "f.csv", &[]).unwrap();
        assert_eq!(col(&t, 0), s(&["2", "4"]));
        assert_eq!(t.lines, vec![3, 5]);
        assert_eq!(t.blank_lines, 2);
    }

    #[test]
    fn ragged_records_are_returned_with_their_line() {
        let t = parse("a,b\n1,2,3\n4\n5,6\n", b',', &[0], "f.csv", &[]).unwrap();
        assert_eq!(col(&t, 0), s(&["5"]));
        let r: Vec<_> = t
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str(), r.detail.as_str()))
            .collect();
        assert_eq!(
            r,
            vec![
                (2, "ragged_row", "3 fields; the header has 2"),
                (3, "ragged_row", "1 fields; the header has 2")
            ]
        );
    }

    #[test]
    fn empty_fields_and_trailing_separator() {
        let t = parse("a,b,c\n,,\n1,,3", b',', &[0, 1, 2], "f.csv", &[]).unwrap();
        assert_eq!(col(&t, 0), s(&["", "1"]));
        assert_eq!(col(&t, 1), s(&["", ""]));
        assert_eq!(col(&t, 2), s(&["", "3"]));
    }

    #[test]
    fn text_after_closing_quote_is_kept_and_stray_quotes_are_text() {
        let t = parse("a,b\n\"ab\"c,x\"y\n", b',', &[0, 1], "f.csv", &[]).unwrap();
        assert_eq!(col(&t, 0), s(&["abc"]));
        assert_eq!(col(&t, 1), s(&["x\"y"]));
    }

    #[test]
    fn unclosed_quote_names_file_and_line() {
        let e = parse("a,b\n1,2\n3,\"open\n4,5\n", b',', &[0], "f.csv", &[]).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("f.csv") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn header_only_and_empty_text() {
        let t = parse("a,b\n", b',', &[0], "f.csv", &[]).unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        assert_eq!(t.lines.len(), 0);
        let t = parse("", b',', &[], "f.csv", &[]).unwrap();
        assert!(t.header.is_empty());
    }

    #[test]
    fn separator_detection_prefers_the_most_frequent() {
        assert_eq!(separator("auto", "a;b;c\n1,5;2;3"), b';');
        assert_eq!(separator("auto", "a\tb\n"), b'\t');
        assert_eq!(separator("auto", "a,b\n"), b',');
        assert_eq!(separator("auto", "a\n"), b',');
        assert_eq!(separator(";", "a,b\n"), b';');
    }

    #[test]
    fn invalid_header_bytes_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.csv");
        std::fs::write(&p, b"a;b\xFF\n1;2\n").unwrap();
        let msg = format!("{:#}", load_text(&p, "utf-8").unwrap_err());
        assert!(msg.contains("w.csv, line 1"), "{msg}");
        std::fs::write(&p, "\u{feff}a;b\n1;Rødovre\n").unwrap();
        assert_eq!(load_text(&p, "auto").unwrap().text, "a;b\n1;Rødovre\n");
    }

    #[test]
    fn windows_1252_is_detected_and_decoded() {
        // "Rødovre;Måløv;Æble" in Windows-1252: ø = F8, å = E5, Æ = C6.
        let bytes = b"a;b;c\nR\xF8dovre;M\xE5l\xF8v;\xC6ble\n";
        let d = decode(bytes, "auto");
        assert_eq!(d.encoding, "windows-1252");
        assert_eq!(d.text, "a;b;c\nRødovre;Måløv;Æble\n");
        assert!(d.bad_lines.is_empty());
        // The euro sign is 0x80 in Windows-1252.
        assert_eq!(decode(b"\x80", "windows-1252").text, "€");
    }

    #[test]
    fn utf8_with_and_without_bom_and_forced_encodings() {
        let s = "a\nRødovre\n";
        for bytes in [
            s.as_bytes().to_vec(),
            [b"\xEF\xBB\xBF", s.as_bytes()].concat(),
        ] {
            let d = decode(&bytes, "auto");
            assert_eq!((d.text.as_str(), d.encoding), (s, "utf-8"));
        }
        // Forcing Windows-1252 on UTF-8 bytes gives the classic mojibake: the setting is obeyed.
        assert_eq!(decode(s.as_bytes(), "windows-1252").text, "a\nRÃ¸dovre\n");
    }

    #[test]
    fn undecodable_bytes_mark_their_lines_and_reject_the_records() {
        // Valid UTF-8 letters plus one stray byte on line 3: UTF-8 with a damaged line.
        let bytes = "h1,h2\nRødovre,1\nx,\u{0}\n".as_bytes().to_vec();
        let mut bytes = bytes;
        let n = bytes.len();
        bytes[n - 2] = 0xFF;
        let d = decode(&bytes, "auto");
        assert_eq!(d.encoding, "utf-8");
        assert_eq!(d.bad_lines, vec![3]);
        let t = parse(&d.text, b',', &[0], "f.csv", &d.bad_lines).unwrap();
        assert_eq!(col(&t, 0), s(&["Rødovre"]));
        assert_eq!(t.rejected.len(), 1);
        assert_eq!(
            (t.rejected[0].line, t.rejected[0].reason),
            (3, Reason::Encoding)
        );
        // Windows-1252's undefined bytes; a quoted record over lines 2-3 is rejected whole.
        let d = decode(b"a,b\n1,\"x\ny\x81\"\n2,z\n", "windows-1252");
        assert_eq!(d.bad_lines, vec![3]);
        let t = parse(&d.text, b',', &[0, 1], "f.csv", &d.bad_lines).unwrap();
        assert_eq!(col(&t, 1), s(&["z"]));
        assert_eq!(t.lines, vec![4]);
        assert_eq!(
            (t.rejected[0].line, t.rejected[0].reason),
            (2, Reason::Encoding)
        );
    }
}
