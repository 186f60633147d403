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

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
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

/// The answers of one scale gathered into records, one record per person (and partner group)
/// and wave. Records are numbered by the caller: [`ScaleRecords::finish`] takes them in the
/// order of their numbers, so that the statistics do not depend on the order rows were fed.
/// `relcap check` numbers them in clean's key order while clean checks each answer table
/// (`stages::clean`); [`item_statistics`] in the order of clean's output, which is the same.
pub struct ScaleRecords {
    scale: &'static str,
    items: Vec<String>,
    index: HashMap<String, usize>,
    /// Per record number, its slot in `values` (`u32::MAX`: no answer to the scale yet).
    slot: Vec<u32>,
    /// Per slot: the record number and one value per item.
    values: Vec<(u32, Vec<Option<f64>>)>,
}

impl ScaleRecords {
    pub fn new(scale: &'static str, items: &[String]) -> Self {
        let index = items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        ScaleRecords {
            scale,
            items: items.to_vec(),
            index,
            slot: vec![],
            values: vec![],
        }
    }

    /// The item's column in this scale's records, None when the item is not the scale's.
    pub fn item_index(&self, item: &str) -> Option<usize> {
        self.index.get(item).copied()
    }

    /// Sets the answer to the scale's `j`-th item of record `record`.
    pub fn set(&mut self, record: u32, j: usize, value: Option<f64>) {
        let r = record as usize;
        if r >= self.slot.len() {
            self.slot.resize(r + 1, u32::MAX);
        }
        if self.slot[r] == u32::MAX {
            self.slot[r] = self.values.len() as u32;
            self.values.push((record, vec![None; self.items.len()]));
        }
        self.values[self.slot[r] as usize].1[j] = value;
    }

    /// The statistics of the scale, `wave[r]` the wave of record number `r` (a record
    /// without one counts in none).
    pub fn finish(mut self, wave: &[Option<i64>]) -> Vec<ItemStat> {
        self.values.sort_unstable_by_key(|(r, _)| *r);
        let mut by_wave: BTreeMap<i64, Vec<Vec<Option<f64>>>> = BTreeMap::new();
        for (r, v) in self.values {
            if let Some(&Some(w)) = wave.get(r as usize) {
                by_wave.entry(w).or_default().push(v);
            }
        }
        scale_stats(self.scale, &self.items, by_wave)
    }
}

/// The scales of the employee answers (`rc`, and `srm` with two items or more) and of the
/// citizen answers (`citizen`, with two items or more).
pub fn scales_of(ins: &InstrumentSection, citizens: bool) -> Vec<ScaleRecords> {
    if citizens {
        let cq = &ins.citizen_items;
        return match cq.len() >= 2 {
            true => vec![ScaleRecords::new("citizen", cq)],
            false => vec![],
        };
    }
    let mut out = vec![ScaleRecords::new("rc", &ins.dimensions())];
    if ins.srm_items.len() >= 2 {
        out.push(ScaleRecords::new("srm", &ins.srm_items));
    }
    out
}

/// Feeds a clean responses table into `scales`: one record per wave, `person` and (for the
/// employee answers) partner group, numbered in order of first appearance. Returns each
/// record's wave.
fn feed(
    df: &DataFrame,
    person: &str,
    by_target: bool,
    scales: &mut [ScaleRecords],
) -> Result<Vec<Option<i64>>> {
    if df.height() == 0 {
        return Ok(vec![]);
    }
    let wave = df.column("wave")?.i64()?;
    let who = df.column(person)?.str()?;
    let item = df.column("item")?.str()?;
    let value = df.column("value")?.f64()?;
    let target = match by_target {
        true => Some(df.column("target_group")?.str()?),
        false => None,
    };
    let mut number: PlHashMap<(i64, &str, Option<&str>), u32> = PlHashMap::new();
    let mut waves: Vec<Option<i64>> = vec![];
    for i in 0..df.height() {
        let (Some(w), Some(p), Some(it)) = (wave.get(i), who.get(i), item.get(i)) else {
            continue;
        };
        let t = target.and_then(|t| t.get(i));
        let r = *number.entry((w, p, t)).or_insert_with(|| {
            waves.push(Some(w));
            waves.len() as u32 - 1
        });
        for s in scales.iter_mut() {
            if let Some(j) = s.item_index(it) {
                s.set(r, j, value.get(i));
            }
        }
    }
    Ok(waves)
}

/// The statistics of one scale's records, per wave (records in their order), in wave and
/// item order.
fn scale_stats(
    scale: &'static str,
    items: &[String],
    by_wave: BTreeMap<i64, Vec<Vec<Option<f64>>>>,
) -> Vec<ItemStat> {
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

/// The columns of clean's employee answers that [`item_statistics`] reads.
pub const EMPLOYEE_COLUMNS: &[&str] = &["wave", "respondent_id", "target_group", "item", "value"];
/// The columns of clean's citizen answers that [`item_statistics`] reads.
pub const CITIZEN_COLUMNS: &[&str] = &["wave", "citizen_id", "item", "value"];

/// The item statistics of clean's employee and citizen answers (at least the columns
/// [`EMPLOYEE_COLUMNS`] and [`CITIZEN_COLUMNS`]).
pub fn item_statistics(
    ins: &InstrumentSection,
    employees: &DataFrame,
    citizens: &DataFrame,
) -> Result<Vec<ItemStat>> {
    let mut out = vec![];
    for (df, person, citizen) in [
        (employees, "respondent_id", false),
        (citizens, "citizen_id", true),
    ] {
        let mut scales = scales_of(ins, citizen);
        let waves = feed(df, person, !citizen, &mut scales)?;
        out.extend(scales.into_iter().flat_map(|s| s.finish(&waves)));
    }
    Ok(out)
}

/// The scales in the order [`item_statistics`] gives them (`rc`, `srm`, `citizen`).
pub const SCALES: [&str; 3] = ["rc", "srm", "citizen"];

/// Puts statistics gathered table by table into [`SCALES`] order (stable within a scale).
pub fn in_scale_order(stats: &mut [ItemStat]) {
    stats.sort_by_key(|x| SCALES.iter().position(|s| *s == x.scale));
}

/// The statistics as a table (scale, wave, item, n, r_drop, flag): how a dry run's clean stage
/// hands them to `relcap check` through its store.
pub fn to_frame(stats: &[ItemStat]) -> Result<DataFrame> {
    Ok(df!(
        "scale" => stats.iter().map(|x| x.scale).collect::<Vec<_>>(),
        "wave" => stats.iter().map(|x| x.wave).collect::<Vec<_>>(),
        "item" => stats.iter().map(|x| x.item.as_str()).collect::<Vec<_>>(),
        "n" => stats.iter().map(|x| x.n as u64).collect::<Vec<_>>(),
        "r_drop" => stats.iter().map(|x| x.r_drop).collect::<Vec<_>>(),
        "flag" => stats.iter().map(|x| x.flag).collect::<Vec<_>>(),
    )?)
}

/// The statistics of a [`to_frame`] table.
pub fn from_frame(df: &DataFrame) -> Result<Vec<ItemStat>> {
    let known = |s: Option<&str>, names: &[&'static str]| -> Result<Option<&'static str>> {
        match s {
            None => Ok(None),
            Some(s) => match names.iter().find(|n| **n == s) {
                Some(n) => Ok(Some(*n)),
                None => anyhow::bail!("item statistics: unknown name {s:?}"),
            },
        }
    };
    let (scale, wave, item) = (
        df.column("scale")?.str()?,
        df.column("wave")?.i64()?,
        df.column("item")?.str()?,
    );
    let (n, r_drop, flag) = (
        df.column("n")?.u64()?,
        df.column("r_drop")?.f64()?,
        df.column("flag")?.str()?,
    );
    (0..df.height())
        .map(|i| {
            Ok(ItemStat {
                scale: known(scale.get(i), &SCALES)?
                    .context("item statistics: a row without a scale")?,
                wave: wave
                    .get(i)
                    .context("item statistics: a row without a wave")?,
                item: item.get(i).unwrap_or_default().to_string(),
                n: n.get(i).unwrap_or(0) as usize,
                r_drop: r_drop.get(i),
                flag: known(flag.get(i), &["negative", "far_below"])?,
            })
        })
        .collect()
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
