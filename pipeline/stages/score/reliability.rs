//! Reliability and agreement of the scores: Cronbach's alpha of each scale per wave and scope,
//! ICC(1)/ICC(2) of respondent scores by unit, rwg(j) of SRM by unit and of the RC dimensions
//! by dyad, as rows of `reliability.parquet` (see the stage's module comment).

use super::*;

/// One row of `reliability.parquet`.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub(super) struct RelRow {
    pub(super) measure: &'static str,
    pub(super) scale: &'static str,
    pub(super) scope: String,
    pub(super) wave: i64,
    pub(super) unit_id: Option<String>,
    pub(super) work_group: Option<String>,
    pub(super) target_group: Option<String>,
    pub(super) value: Option<f64>,
    pub(super) n: usize,
    pub(super) n_groups: Option<usize>,
    pub(super) k: Option<usize>,
}

pub(super) fn rel_row(
    measure: &'static str,
    scale: &'static str,
    scope: &str,
    wave: i64,
    value: Option<f64>,
    n: usize,
) -> RelRow {
    RelRow {
        measure,
        scale,
        scope: scope.to_string(),
        wave,
        unit_id: None,
        work_group: None,
        target_group: None,
        value,
        n,
        n_groups: None,
        k: None,
    }
}

/// Alpha rows (raw and standardized) of one scale in one scope and wave, on its complete cases
/// (`complete`: the scope's rows with every item of the scale answered) of `k` items.
pub(super) fn push_alpha(
    out: &mut Vec<RelRow>,
    scale: &'static str,
    scope: &str,
    wave: i64,
    complete: &[Vec<Option<f64>>],
    k: usize,
) {
    let (raw, std) = match cronbach_alpha(complete) {
        Ok(a) => (Some(a.raw_alpha), Some(a.std_alpha)),
        Err(_) => (None, None),
    };
    for (measure, value) in [("alpha_raw", raw), ("alpha_std", std)] {
        let mut r = rel_row(measure, scale, scope, wave, value, complete.len());
        r.k = Some(k);
        out.push(r);
    }
}

/// (wave, municipality, item values) of one tie, respondent or citizen.
pub(super) type ItemRow<'a> = (i64, &'a str, &'a [Option<f64>]);

/// Alpha of each scale (of at least 2 items) per wave, pooled (`all`) and per municipality.
/// `rows` must be sorted by (wave, municipality), so every scope is a contiguous run. The
/// complete cases of a wave are copied once per scale; each municipality's are a contiguous
/// part of them.
pub(super) fn alpha_by_scope(
    out: &mut Vec<RelRow>,
    rows: &[ItemRow],
    scales: &[(&'static str, Range<usize>)],
) {
    let mut i = 0;
    while i < rows.len() {
        let wave = rows[i].0;
        let j = i + rows[i..].iter().take_while(|r| r.0 == wave).count();
        let wave_rows = &rows[i..j];
        for (scale, cols) in scales {
            let k = cols.len();
            if k < 2 {
                continue;
            }
            // The complete cases of the wave, and the run of wave rows each comes from.
            let mut complete: Vec<Vec<Option<f64>>> = Vec::new();
            let mut run_of: Vec<usize> = Vec::new();
            let mut runs: Vec<(usize, &str)> = Vec::new();
            for (a, r) in wave_rows.iter().enumerate() {
                if a == 0 || r.1 != wave_rows[a - 1].1 {
                    runs.push((a, r.1));
                }
                let v = &r.2[cols.clone()];
                if v.iter().all(Option::is_some) {
                    complete.push(v.to_vec());
                    run_of.push(runs.len() - 1);
                }
            }
            push_alpha(out, scale, "all", wave, &complete, k);
            let mut c = 0;
            for (run, &(_, muni)) in runs.iter().enumerate() {
                let start = c;
                while c < run_of.len() && run_of[c] == run {
                    c += 1;
                }
                push_alpha(out, scale, muni, wave, &complete[start..c], k);
            }
        }
        i = j;
    }
}

pub(super) fn reliability_alpha_employees(
    ties: &[Tie],
    resp: &BTreeMap<RespKey, Respondent>,
    items: &Items,
    out: &mut Vec<RelRow>,
) {
    let k = items.dims.len();
    let nc = items.n_communication.min(k);
    // Ties are sorted by (wave, municipality, ...), and so are respondents (a BTreeMap).
    let rows: Vec<ItemRow> = ties
        .iter()
        .map(|t| (t.wave, &*t.municipality, t.dims.as_slice()))
        .collect();
    alpha_by_scope(
        out,
        &rows,
        &[
            ("rc", 0..k),
            ("rc_communication", 0..nc),
            ("rc_relationship", nc..k),
        ],
    );
    let k = items.srm.len();
    let rows: Vec<ItemRow> = resp
        .iter()
        .map(|(key, r)| (key.0, &*key.1, &r.person[..k]))
        .collect();
    alpha_by_scope(out, &rows, &[("srm", 0..k)]);
}

pub(super) fn reliability_icc(resp: &BTreeMap<RespKey, Respondent>, out: &mut Vec<RelRow>) {
    type Scores = BTreeMap<i64, (Vec<f64>, Vec<u32>)>;
    let mut rcap: Scores = BTreeMap::new();
    let mut srm: Scores = BTreeMap::new();
    let mut unit_ids: BTreeMap<(Rc<str>, Rc<str>), u32> = BTreeMap::new();
    for key in resp.keys() {
        let next = unit_ids.len() as u32;
        unit_ids
            .entry((key.1.clone(), key.2.clone()))
            .or_insert(next);
    }
    for (key, r) in resp {
        let unit = unit_ids
            .get(&(key.1.clone(), key.2.clone()))
            .copied()
            .unwrap_or(u32::MAX);
        if let Some(v) = compute::mean(&r.between_rc) {
            let e = rcap.entry(key.0).or_default();
            e.0.push(v);
            e.1.push(unit);
        }
        if let Some(v) = r.srm.value {
            let e = srm.entry(key.0).or_default();
            e.0.push(v);
            e.1.push(unit);
        }
    }
    for (scale, scores) in [("rcap", &rcap), ("srm", &srm)] {
        for (wave, (values, groups)) in scores {
            let n_groups = groups
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let icc = icc_oneway(values, groups).ok();
            for (measure, value) in [
                ("icc1", icc.as_ref().map(|i| i.icc1)),
                ("icc2", icc.as_ref().map(|i| i.icc2)),
                ("icc_k0", icc.as_ref().map(|i| i.k0)),
            ] {
                let mut r = rel_row(measure, scale, "all", *wave, value, values.len());
                r.n_groups = Some(n_groups);
                out.push(r);
            }
        }
    }
}

pub(super) fn reliability_rwg(
    resp: &BTreeMap<RespKey, Respondent>,
    dyads: &BTreeMap<DyadKey, Dyad>,
    items: &Items,
    config: &Config,
    out: &mut Vec<RelRow>,
) {
    let k = items.srm.len();
    if k > 0 {
        let mut by_unit: BTreeMap<UnitKey, Vec<Vec<Option<f64>>>> = BTreeMap::new();
        for (key, r) in resp {
            if r.srm.value.is_some() {
                by_unit
                    .entry((key.0, key.1.clone(), key.2.clone()))
                    .or_default()
                    .push(r.person[..k].to_vec());
            }
        }
        for ((wave, muni, unit), rows) in by_unit {
            let mut r = rel_row(
                "rwg_j",
                "srm",
                &muni,
                wave,
                rwg_j(&rows, config.scoring.rwg_null_variance),
                rows.len(),
            );
            r.unit_id = Some(unit.to_string());
            r.k = Some(k);
            out.push(r);
        }
    }
    for ((wave, muni, g, h), d) in dyads {
        if d.summary.n == 0 {
            continue;
        }
        let mut r = rel_row("rwg_j", "rc", muni, *wave, d.rwg, d.summary.n);
        r.work_group = Some(g.to_string());
        r.target_group = Some(h.to_string());
        r.k = Some(items.dims.len());
        out.push(r);
    }
}

pub(super) fn reliability_frame(rows: &[RelRow]) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.str("measure", rows.iter().map(|r| r.measure))
        .str("scale", rows.iter().map(|r| r.scale))
        .str("scope", rows.iter().map(|r| &r.scope))
        .i64("wave", rows.iter().map(|r| r.wave))
        .opt_str("unit_id", rows.iter().map(|r| r.unit_id.as_ref()))
        .opt_str("work_group", rows.iter().map(|r| r.work_group.as_ref()))
        .opt_str("target_group", rows.iter().map(|r| r.target_group.as_ref()))
        .f64("value", rows.iter().map(|r| r.value))
        .i64("n", rows.iter().map(|r| n(r.n)))
        .opt_i64("n_groups", rows.iter().map(|r| r.n_groups.map(n)))
        .opt_i64("k", rows.iter().map(|r| r.k.map(n)));
    b.finish()
}
