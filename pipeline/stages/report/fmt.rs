//! Number formatting for every report, in one place so a figure reads the same everywhere and
//! two runs give the same text. Figures are formatted here in the publication format (ASCII
//! minus, a point as the decimal mark, no thousands separator), which the tables in `tables/`
//! keep; a page in another language rewrites them with its catalogue's [`NumberFormat`]
//! (`3.23` → `3,23`, `2111` → `2.111` in Danish).

/// Three decimals; a value that rounds to zero is written without a sign.
pub fn num(x: f64) -> String {
    fixed(x, 3)
}

/// `decimals` decimals, no negative zero; empty for NaN.
pub fn fixed(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return String::new();
    }
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// A p-value: `< 0.001` below 0.001, else three decimals.
pub fn p(x: f64) -> String {
    if !x.is_finite() {
        String::new()
    } else if x < 0.001 {
        "< 0.001".to_string()
    } else {
        fixed(x, 3)
    }
}

/// The shortest decimal that reads back as `x` (thresholds such as 0.05).
pub fn plain(x: f64) -> String {
    format!("{x}")
}

/// A work group name as people read it: `family_therapists` → `family therapists`.
pub fn group(name: &str) -> String {
    name.replace('_', " ")
}

/// A language's way of writing numbers and dates (the `format` section of its catalogue).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NumberFormat {
    /// The decimal mark.
    pub decimal: String,
    /// Between groups of three digits in numbers of four digits or more; empty: none.
    pub thousands: String,
    /// January to December.
    pub months: Vec<String>,
    /// A date with `{day}`, `{month}` (its name) and `{year}`.
    pub date: String,
}

impl NumberFormat {
    /// `text` with every number in it (a run of digits, with a point and more digits for its
    /// decimals) rewritten in this format; everything else unchanged. Digits right after a
    /// letter (`H1`, `ICC(1)` aside) belong to a word and are left alone.
    pub fn localize(&self, text: &str) -> String {
        if self.decimal == "." && self.thousands.is_empty() {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len() + 4);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let after_word = i > 0 && (chars[i - 1].is_alphabetic() || chars[i - 1] == '_');
            if !c.is_ascii_digit() || after_word {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let int: String = chars[start..i].iter().collect();
            out.push_str(&self.group_digits(&int));
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                out.push_str(&self.decimal);
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    out.push(chars[i]);
                    i += 1;
                }
            }
        }
        out
    }

    fn group_digits(&self, int: &str) -> String {
        if self.thousands.is_empty() || int.len() < 4 {
            return int.to_string();
        }
        let mut out = String::new();
        for (k, d) in int.chars().enumerate() {
            if k > 0 && (int.len() - k).is_multiple_of(3) {
                out.push_str(&self.thousands);
            }
            out.push(d);
        }
        out
    }

    /// An ISO date (`2026-05-12`) in this format (`12. maj 2026`); an error for anything else.
    pub fn date(&self, iso: &str) -> Result<String, String> {
        let bad = || format!("{iso:?} is not a date of the form 2026-05-12");
        let parts: Vec<&str> = iso.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(bad());
        };
        let (year, month, day): (u32, usize, u32) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if y.len() != 4 || m.len() != 2 || d.len() != 2 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        if day == 0 || day > days[month - 1] {
            return Err(bad());
        }
        let name = self.months.get(month - 1).cloned().unwrap_or_default();
        Ok(self
            .date
            .replace("{day}", &day.to_string())
            .replace("{month}", &name)
            .replace("{year}", &year.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn danish() -> NumberFormat {
        NumberFormat {
            decimal: ",".into(),
            thousands: ".".into(),
            months: [
                "januar",
                "februar",
                "marts",
                "april",
                "maj",
                "juni",
                "juli",
                "august",
                "september",
                "oktober",
                "november",
                "december",
            ]
            .map(String::from)
            .to_vec(),
            date: "{day}. {month} {year}".into(),
        }
    }

    #[test]
    fn danish_numbers_and_dates() {
        let da = danish();
        assert_eq!(da.localize("3.23"), "3,23");
        assert_eq!(da.localize("+0.80"), "+0,80");
        assert_eq!(da.localize("-0.53"), "-0,53");
        assert_eq!(da.localize("< 0.001"), "< 0,001");
        assert_eq!(da.localize("2111"), "2.111");
        assert_eq!(da.localize("1234567.5"), "1.234.567,5");
        assert_eq!(da.localize("812"), "812");
        assert_eq!(
            da.localize("H1 and 0.946 (50 units)."),
            "H1 and 0,946 (50 units)."
        );
        assert_eq!(da.localize("srm_1 ICC(1)"), "srm_1 ICC(1)");
        assert_eq!(da.date("2026-05-12").unwrap(), "12. maj 2026");
        assert_eq!(da.date("2024-02-29").unwrap(), "29. februar 2024");
        for bad in ["2026-02-29", "2026-13-01", "12-05-2026", "2026-5-12", "x"] {
            assert!(da.date(bad).is_err(), "{bad}");
        }
        let en = NumberFormat {
            decimal: ".".into(),
            ..Default::default()
        };
        assert_eq!(en.localize("2111 and 3.23"), "2111 and 3.23");
    }

    #[test]
    fn formats() {
        assert_eq!(num(0.311807), "0.312");
        assert_eq!(num(-0.0004), "0.000");
        assert_eq!(num(-0.0123), "-0.012");
        assert_eq!(num(f64::NAN), "");
        assert_eq!(p(0.00034), "< 0.001");
        assert_eq!(p(0.0076091), "0.008");
        assert_eq!(plain(0.05), "0.05");
        assert_eq!(fixed(12.34, 1), "12.3");
        assert_eq!(group("family_therapists"), "family therapists");
    }
}
