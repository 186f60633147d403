//! Number formatting for every report, in one place so a figure reads the same everywhere and
//! two runs give the same text. ASCII minus, a point as the decimal mark.

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

#[cfg(test)]
mod tests {
    use super::*;

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
