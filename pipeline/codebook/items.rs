//! Item statistics that catch a mis-coded item: per scale and wave, each item's corrected
//! item-total correlation (its correlation with the sum of the scale's other items, on the
//! records that answered every item: [`relcap_stats::reliability::corrected_item_total`]),
//! computed on clean's answers (after value maps and reverse coding, as the scores use them).
//!
//! Scales: `rc`, the tie dimensions, one record per respondent and partner group; `srm`, one
//! per respondent; `citizen`, one per citizen. An item is flagged `negative` when its
//! correlation is below 0 (probably reverse-coded, or scored through the wrong value map), and
//! `far_below` when it is more than [`FAR_BELOW`] below the median of the scale's other items
//! (probably mis-mapped). A scale-wave with fewer than [`MIN_RECORDS`] complete records gets no
//! statistics.

use std::collections::HashMap;

use anyhow::Result;
use polars::prelude::*;

use crate::config::InstrumentSection;

/// How far below the median of the other items' correlations an item is flagged.
pub const FAR_BELOW: f64 = 0.3;
/// Complete records a scale needs in a wave for its item statistics.
pub const MIN_RECORDS: usize = 10;

/// One item of one scale in one wave.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemStat {
    pub scale: &'static str,
    pub wave: i64,
    pub item: String,
    /// Complete records (every item of the scale answered).
    pub n: usize,
    pub r_drop: Option<f64>,
    /// `negative` or `far_below`; None when the item looks like the others.
    pub flag: Option<&'static str>,
}

/// Records of one scale: (wave, person, partner group) -> one value per item.
type Records<'a> = HashMap<(i64, &'a str, Option<&'a str>), Vec<Option<f64>>>;

/// Gathers the values of `items` from a clean responses table into records keyed by wave,
/// `person` column and (for `by_target`) partner group.
fn records<'a>(
    df: &'a DataFrame,
    person: &str,
    items: &[String],
    by_target: bool,
) -> Result<Records<'a>> {
    let mut out: Records = HashMap::new();
    if df.height() == 0 {
        return Ok(out);
    }
    let wave = df.column("wave")?.i64()?;
    let who = df.column(person)?.str()?;
    let item = df.column("item")?.str()?;
    let value = df.column("value")?.f64()?;
    let target = match by_target {
        true => Some(df.column("target_group")?.str()?),
        false => None,
    };
    let index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    for i in 0..df.height() {
        let (Some(w), Some(p), Some(it)) = (wave.get(i), who.get(i), item.get(i)) else {
            continue;
        };
        let Some(&j) = index.get(it) else { continue };
        let t = target.and_then(|t| t.get(i));
        let rec = out
            .entry((w, p, t))
            .or_insert_with(|| vec![None; items.len()]);
        rec[j] = value.get(i);
    }
    Ok(out)
}

/// The statistics of one scale's records, per wave, in wave and item order.
fn scale_stats(scale: &'static str, items: &[String], recs: Records) -> Vec<ItemStat> {
    let mut by_wave: std::collections::BTreeMap<i64, Vec<Vec<Option<f64>>>> = Default::default();
    for ((w, _, _), v) in recs {
        by_wave.entry(w).or_default().push(v);
    }
    let mut out = vec![];
    for (wave, rows) in by_wave {
        let Ok(it) = relcap_stats::reliability::corrected_item_total(&rows) else {
            continue;
        };
        if it.n_complete < MIN_RECORDS {
            continue;
        }
        for (j, item) in items.iter().enumerate() {
            let r = it.r_drop[j];
            let mut others: Vec<f64> = it
                .r_drop
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != j)
                .filter_map(|(_, r)| *r)
                .collect();
            others.sort_by(f64::total_cmp);
            let median = match others.len() {
                0 => None,
                m if m % 2 == 1 => Some(others[m / 2]),
                m => Some((others[m / 2 - 1] + others[m / 2]) / 2.0),
            };
            let flag = match (r, median) {
                (Some(r), _) if r < 0.0 => Some("negative"),
                (Some(r), Some(m)) if r < m - FAR_BELOW => Some("far_below"),
                _ => None,
            };
            out.push(ItemStat {
                scale,
                wave,
                item: item.clone(),
                n: it.n_complete,
                r_drop: r,
                flag,
            });
        }
    }
    out
}

/// The item statistics of clean's employee and citizen answers.
pub fn item_statistics(
    ins: &InstrumentSection,
    employees: &DataFrame,
    citizens: &DataFrame,
) -> Result<Vec<ItemStat>> {
    let dims = ins.dimensions();
    let mut out = scale_stats(
        "rc",
        &dims,
        records(employees, "respondent_id", &dims, true)?,
    );
    let srm = &ins.srm_items;
    if srm.len() >= 2 {
        let recs = records(employees, "respondent_id", srm, false)?;
        out.extend(scale_stats("srm", srm, recs));
    }
    let cq = &ins.citizen_items;
    if cq.len() >= 2 {
        let recs = records(citizens, "citizen_id", cq, false)?;
        out.extend(scale_stats("citizen", cq, recs));
    }
    Ok(out)
}

/// The statistics as text for `relcap check`: a line per scale and wave, the flagged items
/// with a word on what they probably mean.
pub fn to_text(stats: &[ItemStat]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if stats.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "item statistics (corrected item-total correlation per scale and wave):"
    );
    let mut i = 0;
    while i < stats.len() {
        let (scale, wave) = (stats[i].scale, stats[i].wave);
        let group: Vec<&ItemStat> = stats[i..]
            .iter()
            .take_while(|x| x.scale == scale && x.wave == wave)
            .collect();
        i += group.len();
        let cells: Vec<String> = group
            .iter()
            .map(|x| match x.r_drop {
                Some(r) => format!("{} {r:.2}", x.item),
                None => format!("{} -", x.item),
            })
            .collect();
        let n = group.first().map_or(0, |x| x.n);
        let _ = writeln!(s, "  {scale} wave {wave} (n {n}): {}", cells.join(", "));
        for x in group.iter().filter(|x| x.flag.is_some()) {
            let why = match x.flag {
                Some("negative") => {
                    "negative: probably reverse-coded or scored through the wrong value map"
                }
                _ => "far below the other items: probably mis-coded or mis-mapped",
            };
            let _ = writeln!(s, "    FLAG {} ({why})", x.item);
        }
    }
    s
}

/// The flagged items as one line each (`rc wave 1 frequent: negative (r = -0.12)`).
pub fn flagged(stats: &[ItemStat]) -> Vec<String> {
    stats
        .iter()
        .filter_map(|x| {
            let f = x.flag?;
            let r = x.r_drop.map_or("-".to_string(), |r| format!("{r:.2}"));
            Some(format!(
                "{} wave {} {}: {f} (r = {r})",
                x.scale, x.wave, x.item
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn employees(rows: &[(i64, &str, Option<&str>, &str, f64)]) -> DataFrame {
        df!(
            "wave" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "respondent_id" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "target_group" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "item" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn a_reversed_item_is_flagged_negative() {
        let ins = InstrumentSection {
            communication_items: vec!["a".into(), "b".into(), "c".into()],
            relationship_items: vec!["d".into()],
            srm_items: vec![],
            citizen_items: vec![],
            ..InstrumentSection::default()
        };
        let mut rows = vec![];
        let ids: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let level = (i % 5) as f64 + 1.0;
            let noise = ((i * 7) % 3) as f64 - 1.0;
            for (it, v) in [
                ("a", level),
                ("b", (level + noise).clamp(1.0, 5.0)),
                ("c", (level - noise).clamp(1.0, 5.0)),
                ("d", 6.0 - level),
            ] {
                rows.push((1, id.as_str(), Some("g"), it, v));
            }
        }
        let citizens = df!("wave" => Vec::<i64>::new()).unwrap();
        let s = item_statistics(&ins, &employees(&rows), &citizens).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[3].item, "d");
        assert_eq!(s[3].flag, Some("negative"));
        assert!(s[..3].iter().all(|x| x.flag.is_none()), "{s:?}");
        assert_eq!(s[0].n, 30);
        assert!(to_text(&s).contains("FLAG d"));
        assert_eq!(flagged(&s).len(), 1);
    }
}
