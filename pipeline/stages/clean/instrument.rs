//! The instrument applied to answers: missing codes, value maps, the scale check and reverse
//! coding, in one pass over the `item` and `value` columns.
//!
//! For each answer, in this order: an empty value is missing with reason `empty`; a value equal
//! to a missing code is missing with that code's reason; an item with a value map takes the
//! score of its code (codes compared as numbers), and a code outside the map is out of range;
//! any other value must be on the scale (and a whole number on an integer scale, one whose ends
//! are whole numbers), else it is out of range; finally reverse-coded items become
//! scale_min + scale_max − score. An out-of-range answer has no value and no missing reason.
//!
//! This is a per-row loop rather than polars expressions: the expression form needed one
//! string comparison of the whole `item` column per value-map code and per reverse-coded item,
//! and was the slowest step of the stage on 20 million answers. Here each row costs one hash
//! lookup of its item (none when the item repeats the previous row's) and no allocation.

use polars::prelude::*;

use crate::config::InstrumentSection;

/// What the instrument says about one item.
#[derive(Debug, Clone, Default)]
struct ItemRule {
    /// (code, score) pairs when the item has a value map.
    map: Option<Vec<(f64, f64)>>,
    reverse: bool,
}

/// The three columns the instrument adds.
pub struct Scored {
    /// `__value`: the score, null when missing or out of range.
    pub value: Float64Chunked,
    /// `__missing_reason`: null when answered or out of range.
    pub missing_reason: StringChunked,
    /// `__out_of_range`.
    pub out_of_range: BooleanChunked,
}

pub fn apply(ins: &InstrumentSection, item: &StringChunked, value: &Float64Chunked) -> Scored {
    let mut rules: PlHashMap<&str, ItemRule> = PlHashMap::new();
    for (name, map) in &ins.value_maps {
        // Config validation guarantees every code parses as a number.
        let pairs = map
            .iter()
            .filter_map(|(code, score)| code.trim().parse::<f64>().ok().map(|c| (c, *score)))
            .collect();
        rules.entry(name.as_str()).or_default().map = Some(pairs);
    }
    for name in &ins.reverse_coded {
        rules.entry(name.as_str()).or_default().reverse = true;
    }
    let plain = ItemRule::default();
    let (lo, hi) = (ins.scale_min, ins.scale_max);
    let integer_scale = lo.fract() == 0.0 && hi.fract() == 0.0;
    let n = item.len();
    let mut out_value: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut reason = StringChunkedBuilder::new("__missing_reason".into(), n);
    let mut oor: Vec<bool> = Vec::with_capacity(n);
    let mut last: Option<(&str, &ItemRule)> = None;
    for (it, v) in item.iter().zip(value.iter()) {
        let rule = match (it, last) {
            (Some(i), Some((p, r))) if p == i => r,
            (Some(i), _) => {
                let r = rules.get(i).unwrap_or(&plain);
                last = Some((i, r));
                r
            }
            (None, _) => &plain,
        };
        let Some(v) = v else {
            out_value.push(None);
            reason.append_value("empty");
            oor.push(false);
            continue;
        };
        if let Some(mc) = ins.missing_codes.iter().find(|mc| mc.code == v) {
            out_value.push(None);
            reason.append_value(mc.reason.as_str());
            oor.push(false);
            continue;
        }
        let score = match &rule.map {
            Some(pairs) => pairs.iter().find(|(c, _)| *c == v).map(|(_, s)| *s),
            None => {
                let on_scale = v >= lo && v <= hi && (!integer_scale || v.fract() == 0.0);
                on_scale.then_some(v)
            }
        };
        reason.append_null();
        match score {
            Some(s) => {
                out_value.push(Some(if rule.reverse { lo + hi - s } else { s }));
                oor.push(false);
            }
            None => {
                out_value.push(None);
                oor.push(true);
            }
        }
    }
    Scored {
        value: Float64Chunked::from_iter_options("__value".into(), out_value.into_iter()),
        missing_reason: reason.finish(),
        out_of_range: BooleanChunked::from_iter_values("__out_of_range".into(), oor.into_iter()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MissingCode;

    fn run(
        ins: &InstrumentSection,
        rows: &[(&str, Option<f64>)],
    ) -> Vec<(Option<f64>, Option<String>, bool)> {
        let item = StringChunked::from_iter_values("item".into(), rows.iter().map(|r| r.0));
        let value = Float64Chunked::from_iter_options("value".into(), rows.iter().map(|r| r.1));
        let s = apply(ins, &item, &value);
        (0..rows.len())
            .map(|i| {
                (
                    s.value.get(i),
                    s.missing_reason.get(i).map(str::to_string),
                    s.out_of_range.get(i) == Some(true),
                )
            })
            .collect()
    }

    fn ok(v: f64) -> (Option<f64>, Option<String>, bool) {
        (Some(v), None, false)
    }

    fn missing(r: &str) -> (Option<f64>, Option<String>, bool) {
        (None, Some(r.to_string()), false)
    }

    const OOR: (Option<f64>, Option<String>, bool) = (None, None, true);

    #[test]
    fn default_instrument() {
        // frequent: 1..5 score 1, 3, 5, 4, 2; 9 = dont_know; scale 1..5.
        let ins = InstrumentSection::default();
        let got = run(
            &ins,
            &[
                ("frequent", Some(1.0)),
                ("frequent", Some(2.0)),
                ("frequent", Some(3.0)),
                ("frequent", Some(4.0)),
                ("frequent", Some(5.0)),
                ("frequent", Some(9.0)),
                ("frequent", Some(6.0)),
                ("frequent", Some(2.5)),
                ("timely", Some(2.0)),
                ("timely", None),
                ("timely", Some(0.0)),
                ("timely", Some(5.5)),
                ("timely", Some(3.5)),
                ("cq_1", Some(5.0)),
            ],
        );
        assert_eq!(
            got,
            vec![
                ok(1.0),
                ok(3.0),
                ok(5.0),
                ok(4.0),
                ok(2.0),
                missing("dont_know"),
                OOR,
                OOR,
                ok(2.0),
                missing("empty"),
                OOR,
                OOR,
                OOR,
                ok(5.0),
            ]
        );
    }

    #[test]
    fn reverse_coding_after_the_value_map_and_other_codes() {
        let mut ins = InstrumentSection {
            reverse_coded: vec!["frequent".into(), "srm_2".into()],
            ..InstrumentSection::default()
        };
        ins.missing_codes.push(MissingCode {
            code: -1.0,
            reason: "refused".into(),
        });
        let got = run(
            &ins,
            &[
                ("frequent", Some(2.0)),
                ("srm_2", Some(1.0)),
                ("srm_2", Some(-1.0)),
                ("srm_1", Some(1.0)),
            ],
        );
        // frequent 2 -> 3 -> 6 - 3 = 3; srm_2 1 -> 5.
        assert_eq!(got, vec![ok(3.0), ok(5.0), missing("refused"), ok(1.0)]);
    }

    #[test]
    fn a_scale_with_fractional_ends_accepts_fractions() {
        let ins = InstrumentSection {
            scale_min: 0.5,
            scale_max: 5.5,
            ..InstrumentSection::default()
        };
        let got = run(&ins, &[("timely", Some(2.25)), ("timely", Some(0.25))]);
        assert_eq!(got, vec![ok(2.25), OOR]);
    }

    #[test]
    fn codes_are_compared_as_numbers() {
        let mut ins = InstrumentSection::default();
        let mut map = std::collections::BTreeMap::new();
        map.insert(" 1.0".to_string(), 2.0);
        map.insert("02".to_string(), 4.0);
        ins.value_maps.insert("timely".into(), map);
        let got = run(
            &ins,
            &[
                ("timely", Some(1.0)),
                ("timely", Some(2.0)),
                ("timely", Some(3.0)),
            ],
        );
        assert_eq!(got, vec![ok(2.0), ok(4.0), OOR]);
    }
}
