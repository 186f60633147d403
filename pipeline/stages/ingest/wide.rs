//! The wide-layout mapping: which columns of a wide export carry which item and partner group.
//!
//! A wide export has one row per respondent and a column per item (person items) or per item and
//! partner group (tie items). A column is mapped by the explicit `wide.columns` table first, then
//! by the first of `wide.patterns` it matches. A pattern has `{item}` and optionally `{target}`
//! with literal text around and between them (`{item}__{target}`, `Q_{item}`); a header matches
//! when the literal parts line up and the `{item}` part, after `wide.item_names`, is one of
//! `wide.items` (or a key of `item_names`). When the text between the two parts also occurs
//! inside an item name (`problem_solving` with `_`), every split is tried and the one whose item
//! is known wins. The `{target}` part goes through `wide.target_names`. Columns that match
//! nothing are left to the caller (ignored with a warning).

use crate::config::WideSpec;

/// One mapped column of a wide file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The header as written.
    pub column: String,
    pub item: String,
    pub target: Option<String>,
}

/// The mapped columns of `header` in header order, skipping the `reserved` ones (id, unit,
/// municipality, wave columns).
pub fn map_columns(header: &[String], wide: &WideSpec, reserved: &[String]) -> Vec<Mapped> {
    let mut out = Vec::new();
    for h in header {
        if reserved.contains(h) {
            continue;
        }
        if let Some(c) = wide.columns.get(h) {
            out.push(Mapped {
                column: h.clone(),
                item: c.item.clone(),
                target: c.target.clone(),
            });
            continue;
        }
        for p in &wide.patterns {
            if let Some((item, target)) = match_pattern(p, h, wide) {
                out.push(Mapped {
                    column: h.clone(),
                    item,
                    target,
                });
                break;
            }
        }
    }
    out
}

/// The canonical item and target of header `h` under pattern `p`, if it matches.
fn match_pattern(p: &str, h: &str, wide: &WideSpec) -> Option<(String, Option<String>)> {
    let known = |raw: &str| -> Option<String> {
        match wide.item_names.get(raw) {
            Some(c) => Some(c.clone()),
            None if wide.items.iter().any(|i| i == raw) => Some(raw.to_string()),
            None => None,
        }
    };
    let target = |raw: &str| -> String {
        wide.target_names
            .get(raw)
            .cloned()
            .unwrap_or_else(|| raw.to_string())
    };
    let ip = p.find("{item}")?;
    let Some(tp) = p.find("{target}") else {
        let raw = h.strip_prefix(&p[..ip])?.strip_suffix(&p[ip + 6..])?;
        return known(raw).map(|i| (i, None));
    };
    // Two placeholders: lit0 A lit1 B lit2.
    let item_first = ip < tp;
    let (a_end, b_start, b_len) = if item_first { (ip, tp, 8) } else { (tp, ip, 6) };
    let a_len = if item_first { 6 } else { 8 };
    let lit0 = &p[..a_end];
    let lit1 = &p[a_end + a_len..b_start];
    let lit2 = &p[b_start + b_len..];
    let mid = h.strip_prefix(lit0)?.strip_suffix(lit2)?;
    if lit1.is_empty() {
        return None;
    }
    for (idx, _) in mid.match_indices(lit1) {
        let (a, b) = (&mid[..idx], &mid[idx + lit1.len()..]);
        let (item_raw, target_raw) = if item_first { (a, b) } else { (b, a) };
        if item_raw.is_empty() || target_raw.is_empty() {
            continue;
        }
        if let Some(i) = known(item_raw) {
            return Some((i, Some(target(target_raw))));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WideColumn;

    fn spec(patterns: &[&str], items: &[&str]) -> WideSpec {
        WideSpec {
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            items: items.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn h(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_split_on_the_known_item() {
        let w = spec(
            &["{item}_{target}", "{item}"],
            &["problem_solving", "timely", "srm_1"],
        );
        let m = map_columns(
            &h(&[
                "id",
                "problem_solving_job_consultants",
                "timely_x",
                "srm_1",
                "other",
            ]),
            &w,
            &h(&["id"]),
        );
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.column.as_str(), m.item.as_str(), m.target.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "problem_solving_job_consultants",
                    "problem_solving",
                    Some("job_consultants")
                ),
                ("timely_x", "timely", Some("x")),
                ("srm_1", "srm_1", None),
            ]
        );
    }

    #[test]
    fn renames_target_first_patterns_and_explicit_columns() {
        let mut w = spec(&["Q[{target}] {item}"], &[]);
        w.item_names.insert("tid".into(), "timely".into());
        w.target_names
            .insert("Sagsbehandlere".into(), "caseworkers".into());
        w.columns.insert(
            "RC1".into(),
            WideColumn {
                item: "frequent".into(),
                target: Some("gp".into()),
            },
        );
        let m = map_columns(
            &h(&["Q[Sagsbehandlere] tid", "Q[x] unknown", "RC1"]),
            &w,
            &[],
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].item.as_str(), m[0].target.as_deref()),
            ("timely", Some("caseworkers"))
        );
        assert_eq!(
            (m[1].item.as_str(), m[1].target.as_deref()),
            ("frequent", Some("gp"))
        );
    }
}
