//! Just enough of a PDF reader to check the PDFs Chromium prints (no pdftotext needed): the
//! pages in order, each with its media box and its text. Objects are read from the file as
//! Chromium (Skia) writes them (no object streams), streams inflated, and text decoded through
//! each font's ToUnicode map, following form XObjects drawn on the page (rotated headings).

use std::collections::HashMap;
use std::io::Read as _;

/// One object: its dictionary as text and its stream's raw bytes.
struct Obj {
    dict: String,
    stream: Option<Vec<u8>>,
}

pub struct Page {
    pub media_box: Vec<f64>,
    pub text: String,
}

pub struct Pdf {
    objects: HashMap<u32, Obj>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The integer after `key` in `dict` (`/Length 123`), when it is a direct number.
fn direct_int(dict: &str, key: &str) -> Option<usize> {
    let rest = &dict[dict.find(key)? + key.len()..];
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    let digits: String = first.chars().take_while(char::is_ascii_digit).collect();
    let n: usize = digits.parse().ok()?;
    // `12 0 R` is a reference, not a number (`300>>` is a number).
    let after: Vec<&str> = words.take(2).collect();
    if digits.len() == first.len() && after.len() == 2 && after[1].starts_with('R') {
        return None;
    }
    Some(n)
}

/// `/Name N 0 R` pairs of the dictionary after `key` (`/Font << ... >>`).
fn name_refs(dict: &str, key: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let Some(start) = dict.find(&format!("{key} <<")) else {
        return out;
    };
    let body = &dict[start + key.len() + 3..];
    let body = &body[..body.find(">>").unwrap_or(body.len())];
    let words: Vec<&str> = body.split_whitespace().collect();
    for w in words.windows(4) {
        if w[0].starts_with('/') && w[3] == "R" {
            if let Ok(n) = w[1].parse() {
                out.insert(w[0][1..].to_string(), n);
            }
        }
    }
    out
}

/// The object numbers referred to after `key` (`/Kids [2 0 R 5 0 R]`, `/Contents 7 0 R`).
fn refs_after(dict: &str, key: &str) -> Vec<u32> {
    let Some(start) = dict.find(key) else {
        return vec![];
    };
    let rest = &dict[start + key.len()..];
    let rest = rest.trim_start();
    let body = if let Some(r) = rest.strip_prefix('[') {
        &r[..r.find(']').unwrap_or(r.len())]
    } else {
        &rest[..rest.find('R').map_or(0, |i| i + 1)]
    };
    let words: Vec<&str> = body.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[2] == "R")
        .filter_map(|w| w[0].parse().ok())
        .collect()
}

fn hex_bytes(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|c| {
            let s = std::str::from_utf8(c).unwrap();
            u8::from_str_radix(&format!("{s:0<2}"), 16).unwrap()
        })
        .collect()
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// A font's ToUnicode map: code → text (2-byte codes, as Chromium's Identity-H fonts use).
fn to_unicode(cmap: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    let hexes = |line: &str| -> Vec<Vec<u8>> {
        line.split('<')
            .skip(1)
            .map(|p| hex_bytes(&p[..p.find('>').unwrap_or(p.len())]))
            .collect()
    };
    let code = |b: &[u8]| b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
    for section in cmap.split("beginbfchar").skip(1) {
        for line in section[..section.find("endbfchar").unwrap_or(0)].lines() {
            if let [src, dst] = hexes(line).as_slice() {
                map.insert(code(src), utf16(dst));
            }
        }
    }
    for section in cmap.split("beginbfrange").skip(1) {
        for line in section[..section.find("endbfrange").unwrap_or(0)].lines() {
            let h = hexes(line);
            if h.len() < 3 {
                continue;
            }
            let (lo, hi) = (code(&h[0]), code(&h[1]));
            if line.contains('[') {
                for (k, dst) in h[2..].iter().enumerate() {
                    map.insert(lo + k as u32, utf16(dst));
                }
            } else {
                let base = h[2].clone();
                for c in lo..=hi {
                    let mut d = base.clone();
                    let last = d.len() - 1;
                    d[last] = d[last].wrapping_add((c - lo) as u8);
                    map.insert(c, utf16(&d));
                }
            }
        }
    }
    map
}

impl Pdf {
    pub fn parse(bytes: &[u8]) -> Pdf {
        let mut objects = HashMap::new();
        let mut at = 0;
        while let Some(i) = find(bytes, b" 0 obj", at) {
            let start = bytes[..i]
                .iter()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |p| p + 1);
            let num: Option<u32> = std::str::from_utf8(&bytes[start..i])
                .ok()
                .and_then(|s| s.parse().ok());
            let body_start = i + b" 0 obj".len();
            let stream_kw = find(bytes, b"stream", body_start);
            let end_obj = find(bytes, b"endobj", body_start).unwrap_or(bytes.len());
            let (dict_end, stream) = match stream_kw {
                Some(s) if s < end_obj => {
                    let dict = String::from_utf8_lossy(&bytes[body_start..s]).into_owned();
                    let mut data = s + b"stream".len();
                    if bytes.get(data) == Some(&b'\r') {
                        data += 1;
                    }
                    if bytes.get(data) == Some(&b'\n') {
                        data += 1;
                    }
                    let end = match direct_int(&dict, "/Length") {
                        Some(n) if data + n <= bytes.len() => data + n,
                        _ => find(bytes, b"endstream", data).unwrap_or(bytes.len()),
                    };
                    (s, Some(bytes[data..end].to_vec()))
                }
                _ => (end_obj, None),
            };
            if let Some(n) = num {
                let dict = String::from_utf8_lossy(&bytes[body_start..dict_end]).into_owned();
                objects.insert(n, Obj { dict, stream });
            }
            at = find(bytes, b"endobj", dict_end).unwrap_or(bytes.len());
        }
        Pdf { objects }
    }

    fn stream(&self, n: u32) -> Vec<u8> {
        let Some(o) = self.objects.get(&n) else {
            return vec![];
        };
        let raw = o.stream.clone().unwrap_or_default();
        if o.dict.contains("/FlateDecode") {
            let mut out = vec![];
            flate2::read::ZlibDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .expect("a Flate stream inflates");
            out
        } else {
            raw
        }
    }

    /// The pages in document order.
    pub fn pages(&self) -> Vec<Page> {
        let root = self
            .objects
            .iter()
            .filter(|(_, o)| o.dict.contains("/Type /Pages") && !o.dict.contains("/Parent"))
            .map(|(n, _)| *n)
            .min()
            .expect("a page tree");
        let mut order = vec![];
        self.collect_pages(root, &mut order);
        order.into_iter().map(|n| self.page(n)).collect()
    }

    fn collect_pages(&self, n: u32, out: &mut Vec<u32>) {
        let dict = &self.objects[&n].dict;
        if dict.contains("/Type /Pages") {
            for k in refs_after(dict, "/Kids") {
                self.collect_pages(k, out);
            }
        } else {
            out.push(n);
        }
    }

    fn page(&self, n: u32) -> Page {
        let dict = &self.objects[&n].dict;
        let media_box = dict
            .find("/MediaBox [")
            .map(|i| {
                let r = &dict[i + 11..];
                r[..r.find(']').unwrap()]
                    .split_whitespace()
                    .map(|x| x.parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let mut text = String::new();
        for c in refs_after(dict, "/Contents") {
            self.show(dict, &self.stream(c), &mut text, 0);
        }
        Page { media_box, text }
    }

    /// Appends the text that `content` (drawn with the resources in `dict`) shows.
    fn show(&self, dict: &str, content: &[u8], text: &mut String, depth: usize) {
        let fonts: HashMap<String, HashMap<u32, String>> = name_refs(dict, "/Font")
            .into_iter()
            .map(|(name, n)| {
                let cmap = refs_after(&self.objects[&n].dict, "/ToUnicode")
                    .first()
                    .map(|&c| to_unicode(&String::from_utf8_lossy(&self.stream(c))))
                    .unwrap_or_default();
                (name, cmap)
            })
            .collect();
        let xobjects = name_refs(dict, "/XObject");
        let content = String::from_utf8_lossy(content);
        let mut font: Option<&HashMap<u32, String>> = None;
        let mut operands: Vec<String> = vec![];
        let mut tokens = Tokens(content.chars().peekable());
        while let Some(tok) = tokens.next_token() {
            match tok.as_str() {
                "Tf" => font = operands.first().and_then(|f| fonts.get(&f[1..])),
                "Tj" | "TJ" | "'" | "\"" => {
                    for o in operands.iter().filter(|o| o.starts_with('<')) {
                        let b = hex_bytes(o);
                        for c in b.chunks(2) {
                            let code = c.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
                            if let Some(s) = font.and_then(|f| f.get(&code)) {
                                text.push_str(s);
                            }
                        }
                    }
                    text.push(' ');
                }
                "Do" if depth < 4 => {
                    if let Some(&x) = operands.first().and_then(|x| xobjects.get(&x[1..])) {
                        let xd = &self.objects[&x].dict;
                        if xd.contains("/Subtype /Form") {
                            self.show(xd, &self.stream(x), text, depth + 1);
                        }
                    }
                }
                _ => {}
            }
            let is_operator = tok
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '\'' || c == '"');
            if is_operator {
                operands.clear();
            } else {
                operands.push(tok);
            }
        }
    }
}

/// The tokens of a content stream; an array's hex strings come out as separate operands, so a
/// `TJ` sees them all.
struct Tokens<'a>(std::iter::Peekable<std::str::Chars<'a>>);

impl Tokens<'_> {
    fn next_token(&mut self) -> Option<String> {
        loop {
            let c = *self.0.peek()?;
            if c.is_whitespace() || c == '[' || c == ']' {
                self.0.next();
                continue;
            }
            if c == '%' {
                for x in self.0.by_ref() {
                    if x == '\n' || x == '\r' {
                        break;
                    }
                }
                continue;
            }
            break;
        }
        let c = self.0.next()?;
        let mut tok = String::from(c);
        match c {
            '<' if self.0.peek() == Some(&'<') => {
                self.0.next();
                tok.push('<');
            }
            '<' => {
                for x in self.0.by_ref() {
                    tok.push(x);
                    if x == '>' {
                        break;
                    }
                }
            }
            '>' if self.0.peek() == Some(&'>') => {
                self.0.next();
                tok.push('>');
            }
            '(' => {
                let mut level = 1;
                while let Some(x) = self.0.next() {
                    tok.push(x);
                    match x {
                        '\\' => {
                            if let Some(y) = self.0.next() {
                                tok.push(y);
                            }
                        }
                        '(' => level += 1,
                        ')' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                while let Some(&x) = self.0.peek() {
                    if x.is_whitespace() || "[]<>()/%".contains(x) {
                        break;
                    }
                    tok.push(x);
                    self.0.next();
                }
            }
        }
        Some(tok)
    }
}
