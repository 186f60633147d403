//! The output tables of the stage, one function per table: the columns and their order (see the
//! stage's module comment). With no rows and no items they give the fixed columns, which is
//! what item names are checked against.

use super::*;

pub(super) fn ties_frame(ties: &[Tie], items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", ties.iter().map(|t| t.wave))
        .str("municipality", ties.iter().map(|t| &*t.municipality))
        .str("unit_id", ties.iter().map(|t| &*t.unit_id))
        .str("work_group", ties.iter().map(|t| &*t.work_group))
        .str("respondent_id", ties.iter().map(|t| &*t.respondent_id))
        .str("target_group", ties.iter().map(|t| &*t.target_group))
        .bool("within_group", ties.iter().map(Tie::within))
        .i64("n_items", ties.iter().map(|t| n(t.score.rc.n)))
        .f64("rc", ties.iter().map(|t| t.score.rc.value))
        .f64(
            "rc_communication",
            ties.iter().map(|t| t.score.communication.value),
        )
        .i64(
            "rc_communication_n",
            ties.iter().map(|t| n(t.score.communication.n)),
        )
        .f64(
            "rc_relationship",
            ties.iter().map(|t| t.score.relationship.value),
        )
        .i64(
            "rc_relationship_n",
            ties.iter().map(|t| n(t.score.relationship.n)),
        )
        .f64("relevance", ties.iter().map(|t| t.relevance));
    for (j, d) in items.dims.iter().enumerate() {
        b.f64(d, ties.iter().map(|t| t.dims[j]));
    }
    b.finish()
}

pub(super) fn respondents_frame(
    resp: &BTreeMap<RespKey, Respondent>,
    items: &Items,
) -> Result<DataFrame> {
    // BTreeMap order is (wave, municipality, unit_id, work_group, respondent_id); within a unit
    // the work group is constant, so this is the documented sort order.
    let mut b = FrameBuilder::new();
    b.i64("wave", resp.keys().map(|k| k.0))
        .str("municipality", resp.keys().map(|k| &*k.1))
        .str("unit_id", resp.keys().map(|k| &*k.2))
        .str("work_group", resp.keys().map(|k| &*k.3))
        .str("respondent_id", resp.keys().map(|k| &*k.4))
        .f64("rcap", resp.values().map(|r| compute::mean(&r.between_rc)))
        .i64("n_ties", resp.values().map(|r| n(r.between_rc.len())))
        .i64("n_ties_within", resp.values().map(|r| n(r.n_within)))
        .i64("n_ties_unscored", resp.values().map(|r| n(r.n_unscored)))
        .f64("srm", resp.values().map(|r| r.srm.value))
        .i64("srm_n_items", resp.values().map(|r| n(r.srm.n)))
        .f64("srm_others", resp.values().map(|r| r.srm_others.value))
        .i64("srm_others_n", resp.values().map(|r| n(r.srm_others.n)));
    for (j, it) in items.person_items().iter().enumerate() {
        b.f64(it, resp.values().map(|r| r.person[j]));
    }
    b.finish()
}

pub(super) fn dyads_frame(dyads: &BTreeMap<DyadKey, Dyad>, items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", dyads.keys().map(|k| k.0))
        .str("municipality", dyads.keys().map(|k| &*k.1))
        .str("work_group", dyads.keys().map(|k| &*k.2))
        .str("target_group", dyads.keys().map(|k| &*k.3))
        .bool("within_group", dyads.keys().map(|k| k.2 == k.3))
        .i64("n_ties", dyads.values().map(|d| n(d.n_ties)))
        .i64("n_raters", dyads.values().map(|d| n(d.summary.n)))
        .f64("mean", dyads.values().map(|d| d.summary.mean))
        .f64("sd", dyads.values().map(|d| d.summary.sd))
        .f64("rwg_j", dyads.values().map(|d| d.rwg))
        .f64("relevance_mean", dyads.values().map(|d| d.relevance.value))
        .i64("relevance_n", dyads.values().map(|d| n(d.relevance.n)));
    for (j, it) in items.dims.iter().enumerate() {
        b.f64(
            &format!("mean_{it}"),
            dyads.values().map(|d| d.dims.get(j).and_then(|s| s.value)),
        );
        b.i64(
            &format!("n_{it}"),
            dyads.values().map(|d| n(d.dims.get(j).map_or(0, |s| s.n))),
        );
    }
    b.finish()
}

pub(super) fn units_frame(
    resp: &BTreeMap<RespKey, Respondent>,
    headcount: &BTreeMap<String, Option<i64>>,
) -> Result<DataFrame> {
    // Per unit: work group, respondents, respondent RCaps, respondent SRMs.
    type UnitAcc = (Rc<str>, usize, Vec<f64>, Vec<f64>);
    let mut units: BTreeMap<UnitKey, UnitAcc> = BTreeMap::new();
    for (key, r) in resp {
        let e = units
            .entry((key.0, key.1.clone(), key.2.clone()))
            .or_insert_with(|| (key.3.clone(), 0, vec![], vec![]));
        e.1 += 1;
        if let Some(v) = compute::mean(&r.between_rc) {
            e.2.push(v);
        }
        if let Some(v) = r.srm.value {
            e.3.push(v);
        }
    }
    let rcap: Vec<_> = units.values().map(|u| compute::summarize(&u.2)).collect();
    let srm: Vec<_> = units.values().map(|u| compute::summarize(&u.3)).collect();
    let mut b = FrameBuilder::new();
    b.i64("wave", units.keys().map(|k| k.0))
        .str("municipality", units.keys().map(|k| &*k.1))
        .str("unit_id", units.keys().map(|k| &*k.2))
        .str("work_group", units.values().map(|u| &*u.0))
        .opt_i64(
            "headcount",
            units
                .keys()
                .map(|k| headcount.get(&*k.2).copied().flatten()),
        )
        .i64("n_respondents", units.values().map(|u| n(u.1)))
        .f64("rcap", rcap.iter().map(|s| s.mean))
        .i64("n_rcap", rcap.iter().map(|s| n(s.n)))
        .f64("rcap_sd", rcap.iter().map(|s| s.sd))
        .f64("srm", srm.iter().map(|s| s.mean))
        .i64("n_srm", srm.iter().map(|s| n(s.n)))
        .f64("srm_sd", srm.iter().map(|s| s.sd));
    b.finish()
}

pub(super) fn citizens_frame(citizens: &[Citizen], items: &Items) -> Result<DataFrame> {
    let mut b = FrameBuilder::new();
    b.i64("wave", citizens.iter().map(|c| c.wave))
        .str("municipality", citizens.iter().map(|c| &c.municipality))
        .str("citizen_id", citizens.iter().map(|c| &c.citizen_id))
        .str("case_id", citizens.iter().map(|c| &c.case_id))
        .f64("quality", citizens.iter().map(|c| c.quality.value))
        .i64("n_items", citizens.iter().map(|c| n(c.quality.n)));
    for (j, it) in items.citizen.iter().enumerate() {
        b.f64(it, citizens.iter().map(|c| c.items[j]));
    }
    b.finish()
}
