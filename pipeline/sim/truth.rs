//! `truth.json` and the truth tables: the parameters, true effects and variance components of a
//! simulated study, the quantities a recovery check needs to compute its expected estimands
//! (expected ICC(1), reliability of unit SRM, same-source bias), the realised counts, and the
//! row count of every table. `truth_units.csv` and `truth_dyads.csv` hold the per-unit and
//! per-dyad true values (schemas in `sim.rs`).

use std::collections::BTreeMap;

use rand::Rng;
use serde::Serialize;

use super::design::{draw_partners, partner_weights, Design};
use super::generate::Counts;
use super::latent::stream_rng;
use super::params::{Model, Params};
use super::streams;

/// Variance of a stochastically rounded answer around its latent, f(1 − f) for fractional part
/// f, averaged over a uniform f: 1/6.
pub const ROUNDING_VARIANCE: f64 = 1.0 / 6.0;

/// Partner draws per municipality and group in the Monte-Carlo part of the expected ICC.
const MC_DRAWS: usize = 2000;

#[derive(Debug, Serialize)]
pub struct Truth {
    pub generator: &'static str,
    pub version: &'static str,
    /// The command line that reproduces the files (same seed → same bytes).
    pub command: String,
    pub params: Params,
    pub model: Model,
    pub latent_model: Vec<&'static str>,
    pub effects: Effects,
    pub variance_components: BTreeMap<&'static str, f64>,
    pub expected: Expected,
    pub municipalities: Vec<MuniTruth>,
    pub work_groups: Vec<String>,
    pub blind_spot_pairs: Vec<[String; 2]>,
    pub hub_groups: Vec<String>,
    /// Population dyad effect D(g→h) by [from][to] in `work_groups` order, before the municipal
    /// deviation and the row centring (the per-municipality d(g→h, m) is in truth_dyads.csv).
    pub population_dyad: Vec<Vec<f64>>,
    pub counts: Counts,
    /// Share of item latents clamped to [1, 5] before rounding, by family: where E[answer]
    /// departs from the latent, and roughly by how much the effects are attenuated.
    pub clamped_share: BTreeMap<&'static str, f64>,
    pub row_counts: BTreeMap<String, u64>,
    pub files: BTreeMap<&'static str, &'static str>,
    /// The mark that lets the public demo key pseudonymise this study (`sim_mark`).
    pub simulated_tables: crate::sim_mark::Mark,
}

#[derive(Debug, Serialize)]
pub struct Effects {
    /// Answer points of citizen quality per point of true case RCap (the mean true dyad score
    /// over ordered pairs of distinct involved groups, centred at mu).
    pub h1: f64,
    /// Answer points of respondent RCap per point of the unit manager's true SRM (centred at
    /// srm_mean).
    pub h2: f64,
    /// Answer points of respondent RCap added in intervention units in waves after after_wave
    /// (the difference-in-differences estimand).
    pub h3: f64,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Expected {
    /// ICC(1) of the latent respondent RCap R_it by unit, per wave, from the population variances.
    pub icc1_latent_by_wave: Vec<f64>,
    /// ICC(1) of the observed respondent RCap (scored from the answers) by unit, per wave, from
    /// the population variances plus the measurement terms (approximation, see notes).
    pub icc1_observed_by_wave: Vec<f64>,
    /// The same with the realised municipality, unit and manager values of this run in place of
    /// the population variances (headcount-weighted variance over units).
    pub icc1_observed_given_design_by_wave: Vec<f64>,
    /// Between-unit and within-unit variance of the observed respondent RCap behind
    /// `icc1_observed_by_wave`.
    pub rcap_between_unit_variance_by_wave: Vec<f64>,
    pub rcap_within_unit_variance: f64,
    /// Expected number of SRM raters per unit and wave (mean headcount × response rate).
    pub srm_raters_per_unit: f64,
    /// Variance of one respondent's SRM score around the manager's true SRM: rater effect +
    /// common method + (item noise + rounding) / 6.
    pub srm_rater_variance: f64,
    /// Variance of the managers' true SRM.
    pub srm_true_variance: f64,
    /// Reliability of a unit's mean SRM with `srm_raters_per_unit` raters.
    pub unit_srm_reliability: f64,
    /// Approximate slope of respondent RCap on the unit-mean SRM (the hybrid model's
    /// SRM_between): (h2 var_S + var_r / n) / (var_S + rater_var / n). Same-source bias enters
    /// through the respondent's own rating inside the unit mean (1/n of var_r).
    pub h2_between_slope_approx: f64,
    /// Approximate slope of respondent RCap on the respondent's own SRM rating (the naive model):
    /// (h2 var_S + var_r) / (var_S + rater_var). Biased by the common-method variance.
    pub h2_own_rating_slope_approx: f64,
    /// Probability that an employee leaves between two waves (realised: counts.replacements).
    pub attrition: f64,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct MuniTruth {
    pub name: String,
    pub code: String,
    /// Municipality effect a_m.
    pub effect: f64,
    pub units: usize,
    pub intervention_units: usize,
    pub positions: u32,
}

/// The model's formulas, as written into truth.json.
pub const LATENT_MODEL: [&str; 12] = [
    "R_it = mu + a_m + b_u + c_i + w_t + h3 * post_t * intervention_u + h2 * (S_u - srm_mean) + e_it   (latent respondent RCap; w_t = wave_trend * (t - 1); post_t = t > after_wave)",
    "tie item answer k of i about group h = round(R_it + r_it + d(g->h, m) + nu_ith + offset_k + eta_ithk)   (g = i's work group; the seven RC dimensions)",
    "d(g->h, m) = D(g->h) + municipal deviation, centred per row over h != g; d(g->g, m) = within_group_bonus + noise; D = symmetric + asymmetric part + designed blind spots",
    "relevance answer of i about h = round(relevance(g, h) + noise)   (partner groups are drawn with weight relevance - relevance_floor)",
    "SRM item answer = round(S_u + q_i + r_it + noise)   (S_u manager's true SRM; q_i rater effect, stable; r_it common method, shared with i's RC answers)",
    "wellbeing = round(wellbeing_mean + wellbeing_slope * (R_it - mu) + r_it + noise); manager_satisfaction = round(satisfaction_mean + satisfaction_slope * (S_u - srm_mean) + q_i + r_it + noise)",
    "true dyad score tau(g->h, m, t) = mu + a_m + w_t + ubar(g, m, t) + d(g->h, m), ubar = headcount-weighted mean over g's units of b_u + h2 (S_u - srm_mean) + h3 post_t intervention_u",
    "case RCap true (centred) = mean over ordered pairs (g, h) of distinct involved groups of tau(g->h, m, t) - mu; undefined (0 in Q) for one-group cases",
    "citizen quality Q_c = quality_mean + h1 * case_rcap_true + v_c; answer k = round(Q_c + offset_k + noise)",
    "round(x) = floor(clamp(x, 1, 5) + U), U ~ U(0, 1): E[answer] = clamp(x, 1, 5); frequent is written as the form code whose score is the answer (scores 1..5 -> codes 1, 5, 2, 4, 3)",
    "non-response: each answer is empty with p_empty and 9 (don't know) with p_dont_know; an employee answers a wave with response_rate, a citizen with citizen_response_rate",
    "employees: each position is held by one employee; between waves the holder leaves with probability attrition and a new hire (new respondent_id, new c_i, q_i) takes the position",
];

pub fn variance_components(p: &Params, m: &Model) -> BTreeMap<&'static str, f64> {
    let sq = |x: f64| x * x;
    let sds = [
        ("municipality", m.sd_municipality),
        ("unit", m.sd_unit),
        ("manager_srm", m.sd_srm),
        ("respondent", m.sd_respondent),
        ("occasion", m.sd_occasion),
        ("common_method", m.sd_common_method),
        ("srm_rater", m.sd_srm_rater),
        ("srm_item", m.sd_srm_item),
        ("dyad_symmetric", m.sd_dyad_symmetric),
        ("dyad_asymmetric", m.sd_dyad_asymmetric),
        ("dyad_municipal", m.sd_dyad_municipal),
        ("tie", m.sd_tie),
        ("tie_item", m.sd_item),
        ("relevance_item", m.sd_relevance),
        ("citizen", m.sd_citizen),
        ("citizen_item", m.sd_citizen_item),
    ];
    let mut v: BTreeMap<&'static str, f64> = sds.into_iter().map(|(k, sd)| (k, sq(sd))).collect();
    v.insert("srm_term_in_rcap", sq(p.effect_h2) * sq(m.sd_srm));
    v.insert("rounding_mean", ROUNDING_VARIANCE);
    // H3's unit × wave effect, only when set (default runs keep their truth.json).
    if p.cluster.sd_unit_wave > 0.0 {
        v.insert("unit_wave", sq(p.cluster.sd_unit_wave));
    }
    v
}

/// Per municipality and group: E[mean d over between partners], Var[that mean], E[1/#between].
struct PartnerMoments {
    mean: Vec<Vec<f64>>,
    var: Vec<Vec<f64>>,
    inv_k: Vec<Vec<f64>>,
}

/// Monte-Carlo moments of the partner mean of d, on a stream of its own (no effect on the data).
fn partner_moments(p: &Params, m: &Model, design: &Design) -> PartnerMoments {
    let g = design.groups.len();
    let mut out = PartnerMoments {
        mean: Vec::new(),
        var: Vec::new(),
        inv_k: Vec::new(),
    };
    for md in &design.munis {
        let mut rng = stream_rng(p.seed, streams::EXPECTATION + md.index as u64);
        let (mut mean_row, mut var_row, mut inv_row) = (vec![0.0; g], vec![0.0; g], vec![0.0; g]);
        for a in 0..g {
            let w = partner_weights(design, m, a);
            let (mut s, mut s2, mut si, mut n) = (0.0, 0.0, 0.0, 0usize);
            for _ in 0..MC_DRAWS {
                let k = rng.gen_range(m.partners_min..=m.partners_max) as usize;
                let within = rng.gen::<f64>() < m.p_within_tie;
                let between: Vec<usize> = draw_partners(&mut rng, &w, a, k, within)
                    .into_iter()
                    .filter(|&h| h != a)
                    .collect();
                if between.is_empty() {
                    continue;
                }
                let x = between.iter().map(|&h| md.dyad[a][h]).sum::<f64>() / between.len() as f64;
                s += x;
                s2 += x * x;
                si += 1.0 / between.len() as f64;
                n += 1;
            }
            if n > 0 {
                let nf = n as f64;
                mean_row[a] = s / nf;
                var_row[a] = (s2 / nf - (s / nf) * (s / nf)).max(0.0);
                inv_row[a] = si / nf;
            }
        }
        out.mean.push(mean_row);
        out.var.push(var_row);
        out.inv_k.push(inv_row);
    }
    out
}

/// Headcount-weighted mean and variance.
fn weighted_moments(values: &[(f64, f64)]) -> (f64, f64) {
    let w: f64 = values.iter().map(|(_, w)| w).sum();
    if w <= 0.0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().map(|(x, w)| x * w).sum::<f64>() / w;
    let var = values
        .iter()
        .map(|(x, w)| w * (x - mean) * (x - mean))
        .sum::<f64>()
        / w;
    (mean, var)
}

pub fn expected(p: &Params, m: &Model, design: &Design) -> Expected {
    let sq = |x: f64| x * x;
    let pm = partner_moments(p, m, design);
    let share = if p.no_control {
        1.0
    } else {
        let (n, k) = design.munis.iter().fold((0usize, 0usize), |(n, k), md| {
            (
                n + md.units.len(),
                k + md.units.iter().filter(|u| u.intervention).count(),
            )
        });
        if n == 0 {
            0.0
        } else {
            k as f64 / n as f64
        }
    };

    // Measurement terms, averaged over units with headcount weights.
    let mut partner_mean = Vec::new();
    let mut partner_var = Vec::new();
    let mut inv_k = Vec::new();
    for (mi, md) in design.munis.iter().enumerate() {
        for u in &md.units {
            let w = f64::from(u.headcount);
            partner_mean.push((pm.mean[mi][u.group], w));
            partner_var.push((pm.var[mi][u.group], w));
            inv_k.push((pm.inv_k[mi][u.group], w));
        }
    }
    let (_, between_partner) = weighted_moments(&partner_mean);
    let (within_partner, _) = weighted_moments(&partner_var);
    let (mean_inv_k, _) = weighted_moments(&inv_k);
    let tie_noise = sq(m.sd_tie) + (sq(m.sd_item) + ROUNDING_VARIANCE) / 7.0;
    let within_latent = sq(m.sd_respondent) + sq(m.sd_occasion);
    let within_obs =
        within_latent + sq(m.sd_common_method) + within_partner + mean_inv_k * tie_noise;

    let mut icc_latent = Vec::new();
    let mut icc_obs = Vec::new();
    let mut icc_design = Vec::new();
    let mut between_by_wave = Vec::new();
    for t in 1..=p.waves {
        let post = if t > p.after_wave { 1.0 } else { 0.0 };
        let between_latent = sq(m.sd_municipality)
            + sq(m.sd_unit)
            + sq(p.effect_h2) * sq(m.sd_srm)
            + sq(p.effect_h3) * share * (1.0 - share) * post;
        icc_latent.push(between_latent / (between_latent + within_latent));
        let between_obs = between_latent + between_partner;
        between_by_wave.push(between_obs);
        icc_obs.push(between_obs / (between_obs + within_obs));
        // Realised unit-level values of this run.
        let mut vals = Vec::new();
        for (mi, md) in design.munis.iter().enumerate() {
            let pi = p.in_municipality(mi);
            for u in &md.units {
                let x = md.effect
                    + super::generate::unit_component(&pi, m, u, t)
                    + pm.mean[mi][u.group];
                vals.push((x, f64::from(u.headcount)));
            }
        }
        let (_, between_design) = weighted_moments(&vals);
        icc_design.push(between_design / (between_design + within_obs));
    }

    let positions: u32 = design.munis.iter().map(|d| d.positions()).sum();
    let n_units: usize = design.munis.iter().map(|d| d.units.len()).sum();
    let n = if n_units == 0 {
        0.0
    } else {
        f64::from(positions) / n_units as f64 * m.response_rate
    };
    let var_s = sq(m.sd_srm);
    let var_r = sq(m.sd_common_method);
    let rater_var = sq(m.sd_srm_rater) + var_r + (sq(m.sd_srm_item) + ROUNDING_VARIANCE) / 6.0;
    let (rel, between_slope) = if n > 0.0 {
        (
            var_s / (var_s + rater_var / n),
            (p.effect_h2 * var_s + var_r / n) / (var_s + rater_var / n),
        )
    } else {
        (0.0, 0.0)
    };
    Expected {
        icc1_latent_by_wave: icc_latent,
        icc1_observed_by_wave: icc_obs,
        icc1_observed_given_design_by_wave: icc_design,
        rcap_between_unit_variance_by_wave: between_by_wave,
        rcap_within_unit_variance: within_obs,
        srm_raters_per_unit: n,
        srm_rater_variance: rater_var,
        srm_true_variance: var_s,
        unit_srm_reliability: rel,
        h2_between_slope_approx: between_slope,
        h2_own_rating_slope_approx: (p.effect_h2 * var_s + var_r) / (var_s + rater_var),
        attrition: m.attrition,
        notes: vec![
            "ICC(1) is per wave over all municipalities, by unit, as the score stage computes it; the municipality effect counts as between-unit variance.",
            "Observed respondent RCap = R_it + r_it + mean over between-group partners of (d(g->h, m) + tie noise + item noise): within-unit variance adds var_r, the variance of the partner mean of d (Monte Carlo over the partner draw on a stream of its own) and E[1/#partners] (var_tie + (var_item + 1/6) / 7); between-unit variance adds the variance of the expected partner mean of d over units.",
            "Approximations: item non-response, the 5-of-7 rule, clamping at the scale ends and the exact rounding variance (1/6 assumes uniform fractional parts) are ignored.",
            "Intervention share in the between-unit variance is the realised share of units; with no controls the arm adds no variance.",
            "h2 slopes are unit-level approximations; the hybrid LMM weights units by size and shrinks, so treat them as the centre of the expected estimate, not its exact value.",
        ],
    }
}

pub fn effects(p: &Params) -> Effects {
    Effects {
        h1: p.effect_h1,
        h2: p.effect_h2,
        h3: p.effect_h3,
        notes: vec![
            "All effects are on the observed 1..5 scale in expectation: stochastic rounding keeps E[answer] = latent (up to clamping, counted in counts.clamped_*).",
            "h3 is unbiased for a difference-in-differences of respondent RCap between after_wave and after_wave + 1 (measurement error is in the outcome only); with no controls the pre/post difference also contains the wave trend.",
            "h2 is the slope on the manager's true SRM; estimates on observed unit SRM are attenuated by unit_srm_reliability and pushed up by same-source variance (see expected.h2_*_approx).",
            "h1 is the slope on the true case RCap (from tau); the pipeline's case RCap uses observed dyad scores, whose sampling error attenuates the estimate.",
        ],
    }
}

pub fn clamped_share(c: &Counts) -> BTreeMap<&'static str, f64> {
    let share = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let ties = c.ties_between + c.ties_within;
    let mut m = BTreeMap::new();
    m.insert("tie_items", share(c.clamped_tie_items, c.tie_item_latents));
    m.insert("relevance", share(c.clamped_relevance, ties));
    m.insert("srm_items", share(c.clamped_srm, c.srm_latents));
    m.insert(
        "wellbeing_and_satisfaction",
        share(c.clamped_person_items, 2 * c.respondent_waves),
    );
    m.insert(
        "citizen_items",
        share(c.clamped_citizen_items, 5 * c.citizens_responding),
    );
    m
}

/// Realised facts per municipality.
pub fn municipalities(design: &Design) -> Vec<MuniTruth> {
    design
        .munis
        .iter()
        .map(|md| MuniTruth {
            name: md.name.clone(),
            code: md.code.clone(),
            effect: md.effect,
            units: md.units.len(),
            intervention_units: md.units.iter().filter(|u| u.intervention).count(),
            positions: md.positions(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::params::{municipalities as munis, work_groups, Format, Preset};
    use super::*;

    fn params() -> Params {
        Params {
            seed: 20261123,
            preset: Preset::Demo,
            format: Format::Csv,
            municipalities: munis(Preset::Demo, 5),
            work_groups: work_groups(8),
            employees_per_municipality: 160,
            waves: 3,
            citizens_per_municipality: 10,
            after_wave: 1,
            intervention_share: 0.5,
            no_control: false,
            effect_h1: 0.5,
            effect_h2: 0.25,
            effect_h3: 0.2,
            cluster: Default::default(),
            effect_sd: super::super::params::EffectSd::default(),
            municipality_effects: vec![],
        }
    }

    #[test]
    fn expected_icc_is_in_the_target_band_and_matches_a_hand_computation() {
        let p = params();
        let m = Model::default();
        let d = Design::build(&p, &m);
        let e = expected(&p, &m, &d);
        // Latent ICC before the intervention by hand: between = 0.1² + 0.17² + 0.25² 0.45²
        // = 0.01 + 0.0289 + 0.01265625 = 0.05155625; within = 0.5² + 0.2² = 0.29.
        let b = 0.01 + 0.0289 + 0.012_656_25;
        assert!((e.icc1_latent_by_wave[0] - b / (b + 0.29)).abs() < 1e-12);
        // After it, the arm adds 0.2² p (1 − p), p the realised share of intervention units.
        let n: usize = d.munis.iter().map(|x| x.units.len()).sum();
        let k: usize = d
            .munis
            .iter()
            .map(|x| x.units.iter().filter(|u| u.intervention).count())
            .sum();
        let share = k as f64 / n as f64;
        let b2 = b + 0.04 * share * (1.0 - share);
        assert!((e.icc1_latent_by_wave[1] - b2 / (b2 + 0.29)).abs() < 1e-12);
        for w in [
            &e.icc1_observed_by_wave,
            &e.icc1_observed_given_design_by_wave,
        ] {
            for &icc in w.iter() {
                assert!((0.05..=0.20).contains(&icc), "{icc}");
            }
        }
        assert!(e.icc1_observed_by_wave[1] > e.icc1_observed_by_wave[0]);
        // Rater variance by hand: 0.35² + 0.35² + (0.35² + 1/6) / 6.
        let rv = 0.1225 + 0.1225 + (0.1225 + 1.0 / 6.0) / 6.0;
        assert!((e.srm_rater_variance - rv).abs() < 1e-12);
        assert!(e.h2_own_rating_slope_approx > p.effect_h2 + 0.05);
    }

    #[test]
    fn weighted_moments_by_hand() {
        // Values 1 (weight 1) and 4 (weight 2): mean 3, variance (4 + 2) / 3 = 2.
        let (m, v) = weighted_moments(&[(1.0, 1.0), (4.0, 2.0)]);
        assert!((m - 3.0).abs() < 1e-12);
        assert!((v - 2.0).abs() < 1e-12);
    }
}
