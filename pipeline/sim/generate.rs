//! The answers of one municipality: employees (positions, attrition, survey response, ties and
//! person items) on the municipality's employee stream, then citizens and their cases on its
//! citizen stream. Rows are kept compact (indices, not strings) and turned into columns only
//! when written, so a run holds one municipality's answers at a time.

use rand::Rng;

use super::design::{draw_partners, partner_weights, Design, MuniDesign};
use super::latent::{
    categorical, frequent_form_code, normal, respond, stochastic_round, stream_rng, weighted_sample,
};
use super::params::{Model, Params};
use super::streams;

/// Employee items in the order they are written; indices 0..7 are the seven RC dimensions.
pub const EMPLOYEE_ITEMS: [&str; 16] = [
    "frequent",
    "timely",
    "accurate",
    "problem_solving",
    "shared_goals",
    "shared_knowledge",
    "mutual_respect",
    "relevance",
    "srm_1",
    "srm_2",
    "srm_3",
    "srm_4",
    "srm_5",
    "srm_6",
    "wellbeing",
    "manager_satisfaction",
];
const RELEVANCE: u8 = 7;
const SRM_FIRST: u8 = 8;
const N_SRM: u8 = 6;
const WELLBEING: u8 = 14;
const SATISFACTION: u8 = 15;

/// Citizen items in the order they are written.
pub const CITIZEN_ITEMS: [&str; 5] = ["cq_1", "cq_2", "cq_3", "cq_4", "cq_5"];

/// `target` of a person-level item (no partner group).
pub const NO_TARGET: u8 = u8::MAX;

/// One employee answer. `value` 0 is an empty cell, 9 "don't know", else 1..5 (for `frequent`
/// the form code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmployeeRow {
    pub wave: u8,
    /// Index into `MuniOutput::respondent_ids`.
    pub respondent: u32,
    /// Index into the municipality's units.
    pub unit: u32,
    /// Work group index, or `NO_TARGET`.
    pub target: u8,
    /// Index into `EMPLOYEE_ITEMS`.
    pub item: u8,
    pub value: u8,
}

/// One citizen answer (`value` as for employees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CitizenRow {
    pub wave: u8,
    /// Index into `MuniOutput::case_ids` / `citizen_ids` (one citizen per case).
    pub case: u32,
    pub item: u8,
    pub value: u8,
}

/// One unit involved in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseRow {
    pub wave: u8,
    pub case: u32,
    pub unit: u32,
    pub lead: bool,
}

/// Counts kept while generating, summed over municipalities into `truth.json`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// Distinct employees ever employed (positions at wave 1 plus replacements).
    pub employees: u64,
    /// Employees who answered in at least one wave.
    pub respondents: u64,
    /// Employee-waves in post (whether or not they answered).
    pub employee_waves: u64,
    /// Employee-waves that answered.
    pub respondent_waves: u64,
    /// Replacements after attrition.
    pub replacements: u64,
    pub ties_between: u64,
    pub ties_within: u64,
    pub employee_answers: u64,
    pub employee_empty: u64,
    pub employee_dont_know: u64,
    /// Item latents clamped to [1, 5] before rounding, by family.
    pub clamped_tie_items: u64,
    pub clamped_relevance: u64,
    pub clamped_srm: u64,
    pub clamped_person_items: u64,
    pub clamped_citizen_items: u64,
    pub tie_item_latents: u64,
    pub srm_latents: u64,
    pub cases: u64,
    /// Cases with one work group only: no case RCap (their quality has no H1 term).
    pub cases_single_group: u64,
    pub case_units: u64,
    pub citizens_responding: u64,
    pub citizen_answers: u64,
    pub citizen_empty: u64,
    pub citizen_dont_know: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            employees,
            respondents,
            employee_waves,
            respondent_waves,
            replacements,
            ties_between,
            ties_within,
            employee_answers,
            employee_empty,
            employee_dont_know,
            clamped_tie_items,
            clamped_relevance,
            clamped_srm,
            clamped_person_items,
            clamped_citizen_items,
            tie_item_latents,
            srm_latents,
            cases,
            cases_single_group,
            case_units,
            citizens_responding,
            citizen_answers,
            citizen_empty,
            citizen_dont_know
        );
    }
}

/// One municipality's generated rows and ids.
#[derive(Debug, Clone, Default)]
pub struct MuniOutput {
    pub respondent_ids: Vec<String>,
    pub case_ids: Vec<String>,
    pub citizen_ids: Vec<String>,
    pub employees: Vec<EmployeeRow>,
    pub citizens: Vec<CitizenRow>,
    pub cases: Vec<CaseRow>,
    pub counts: Counts,
}

/// The wave effect w_t.
pub fn wave_effect(m: &Model, wave: u32) -> f64 {
    m.wave_trend * f64::from(wave - 1)
}

/// Whether wave `t` is after the intervention.
pub fn is_post(p: &Params, wave: u32) -> bool {
    wave > p.after_wave
}

/// The unit-level part of the latent RCap in wave t: b_u + h2 (S_u − srm_mean) + h3 post I_u
/// (+ arm_baseline I_u + g_ut when those are set).
pub fn unit_component(p: &Params, m: &Model, u: &super::design::Unit, wave: u32) -> f64 {
    let post = if is_post(p, wave) && u.intervention {
        1.0
    } else {
        0.0
    };
    let mut x = u.effect + p.effect_h2 * (u.srm - m.srm_mean) + p.effect_h3 * post;
    // Only added when set, so that default runs compute the same bits as before.
    if u.intervention && p.cluster.arm_baseline != 0.0 {
        x += p.cluster.arm_baseline;
    }
    if let Some(g) = u.wave_effects.get(wave as usize - 1) {
        x += g;
    }
    x
}

/// The true (expected) dyad score τ(g→h, m, t): what the mean tie score of g's respondents about
/// h estimates. τ = mu + a_m + w_t + ū(g, m, t) + d(g→h, m), with ū the headcount-weighted mean
/// unit component of g's units. Indexed `[wave - 1][g][h]`.
pub fn true_dyads(p: &Params, m: &Model, md: &MuniDesign) -> Vec<Vec<Vec<f64>>> {
    let p = &*p.in_municipality(md.index);
    let g = md.dyad.len();
    (1..=p.waves)
        .map(|t| {
            let base: Vec<f64> = (0..g)
                .map(|a| {
                    let (mut num, mut den) = (0.0, 0.0);
                    for &j in &md.units_by_group[a] {
                        let u = &md.units[j];
                        num += f64::from(u.headcount) * unit_component(p, m, u, t);
                        den += f64::from(u.headcount);
                    }
                    let ubar = if den > 0.0 { num / den } else { 0.0 };
                    m.mu + md.effect + wave_effect(m, t) + ubar
                })
                .collect();
            (0..g)
                .map(|a| (0..g).map(|b| base[a] + md.dyad[a][b]).collect())
                .collect()
        })
        .collect()
}

struct Employee {
    id: u32,
    stable: f64,
    rater: f64,
}

/// Generates every row of municipality `md`.
pub fn municipality(
    p: &Params,
    m: &Model,
    design: &Design,
    md: &MuniDesign,
    id_width: usize,
) -> MuniOutput {
    let mut out = MuniOutput::default();
    let p = &*p.in_municipality(md.index);
    employees(p, m, design, md, id_width, &mut out);
    citizens(p, m, design, md, &mut out);
    out
}

fn employees(
    p: &Params,
    m: &Model,
    design: &Design,
    md: &MuniDesign,
    id_width: usize,
    out: &mut MuniOutput,
) {
    let mut rng = stream_rng(p.seed, streams::EMPLOYEES + md.index as u64);
    let n_groups = design.groups.len();
    let weights: Vec<Vec<f64>> = (0..n_groups)
        .map(|g| partner_weights(design, m, g))
        .collect();
    let muni_no = md.index + 1;
    let hire = |rng: &mut rand_chacha::ChaCha8Rng, out: &mut MuniOutput| -> Employee {
        let serial = out.respondent_ids.len() + 1;
        out.respondent_ids
            .push(format!("E{muni_no:03}{serial:0id_width$}"));
        out.counts.employees += 1;
        Employee {
            id: (serial - 1) as u32,
            stable: normal(rng, m.sd_respondent),
            rater: normal(rng, m.sd_srm_rater),
        }
    };
    // Positions in unit order; each holds one employee at a time.
    let mut positions: Vec<(usize, Employee)> = Vec::new();
    for (j, u) in md.units.iter().enumerate() {
        for _ in 0..u.headcount {
            let e = hire(&mut rng, out);
            positions.push((j, e));
        }
    }
    let mut answered = vec![false; 0];
    for wave in 1..=p.waves {
        if wave > 1 {
            for pos in positions.iter_mut() {
                let leaves = rng.gen::<f64>() < m.attrition;
                if leaves {
                    pos.1 = hire(&mut rng, out);
                    out.counts.replacements += 1;
                }
            }
        }
        answered.resize(out.respondent_ids.len(), false);
        let w_t = wave_effect(m, wave);
        let wave_u8 = wave as u8;
        for (j, emp) in positions.iter() {
            let u = &md.units[*j];
            let g = u.group;
            out.counts.employee_waves += 1;
            if rng.gen::<f64>() >= m.response_rate {
                continue;
            }
            out.counts.respondent_waves += 1;
            answered[emp.id as usize] = true;
            let e = normal(&mut rng, m.sd_occasion);
            let r = normal(&mut rng, m.sd_common_method);
            let rcap = m.mu + md.effect + emp.stable + w_t + unit_component(p, m, u, wave) + e;
            let push = |out: &mut MuniOutput, target: u8, item: u8, value: u8| {
                let c = &mut out.counts;
                tally(
                    value,
                    [
                        &mut c.employee_answers,
                        &mut c.employee_empty,
                        &mut c.employee_dont_know,
                    ],
                );
                out.employees.push(EmployeeRow {
                    wave: wave_u8,
                    respondent: emp.id,
                    unit: *j as u32,
                    target,
                    item,
                    value,
                });
            };

            // Ties.
            let k = rng.gen_range(m.partners_min..=m.partners_max) as usize;
            let within = rng.gen::<f64>() < m.p_within_tie;
            let partners = draw_partners(&mut rng, &weights[g], g, k, within);
            for h in partners {
                if h == g {
                    out.counts.ties_within += 1;
                } else {
                    out.counts.ties_between += 1;
                }
                let tie = rcap + r + md.dyad[g][h] + normal(&mut rng, m.sd_tie);
                for (d, offset) in m.dimension_offsets.iter().enumerate() {
                    let x = tie + offset + normal(&mut rng, m.sd_item);
                    let (v, clamped) = stochastic_round(&mut rng, x);
                    out.counts.tie_item_latents += 1;
                    out.counts.clamped_tie_items += u64::from(clamped);
                    let mut v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
                    if d == 0 {
                        v = frequent_form_code(v);
                    }
                    push(out, h as u8, d as u8, v);
                }
                let x = design.relevance[g][h] + normal(&mut rng, m.sd_relevance);
                let (v, clamped) = stochastic_round(&mut rng, x);
                out.counts.clamped_relevance += u64::from(clamped);
                let v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
                push(out, h as u8, RELEVANCE, v);
            }

            // Person items: SRM, wellbeing, manager satisfaction.
            for k in 0..N_SRM {
                let x = u.srm + emp.rater + r + normal(&mut rng, m.sd_srm_item);
                let (v, clamped) = stochastic_round(&mut rng, x);
                out.counts.srm_latents += 1;
                out.counts.clamped_srm += u64::from(clamped);
                let v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
                push(out, NO_TARGET, SRM_FIRST + k, v);
            }
            let x = m.wellbeing_mean
                + m.wellbeing_slope * (rcap - m.mu)
                + r
                + normal(&mut rng, m.sd_wellbeing);
            let (v, clamped) = stochastic_round(&mut rng, x);
            out.counts.clamped_person_items += u64::from(clamped);
            let v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
            push(out, NO_TARGET, WELLBEING, v);
            let x = m.satisfaction_mean
                + m.satisfaction_slope * (u.srm - m.srm_mean)
                + emp.rater
                + r
                + normal(&mut rng, m.sd_satisfaction);
            let (v, clamped) = stochastic_round(&mut rng, x);
            out.counts.clamped_person_items += u64::from(clamped);
            let v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
            push(out, NO_TARGET, SATISFACTION, v);
        }
    }
    out.counts.respondents = answered.iter().filter(|&&a| a).count() as u64;
}

fn citizens(p: &Params, m: &Model, design: &Design, md: &MuniDesign, out: &mut MuniOutput) {
    let mut rng = stream_rng(p.seed, streams::CITIZENS + md.index as u64);
    let tau = true_dyads(p, m, md);
    let n_groups = design.groups.len();
    let width = super::design::digits(u64::from(p.citizens_per_municipality)).max(4);
    let muni_no = md.index + 1;
    for wave in 1..=p.waves {
        let wave_u8 = wave as u8;
        let tau_t = &tau[(wave - 1) as usize];
        for serial in 1..=p.citizens_per_municipality {
            let case = out.case_ids.len() as u32;
            out.case_ids
                .push(format!("S{muni_no:03}{wave}{serial:0width$}"));
            out.citizen_ids
                .push(format!("B{muni_no:03}{wave}{serial:0width$}"));
            out.counts.cases += 1;
            let size = (categorical(&mut rng, &m.case_size_probs) + 1).min(n_groups);
            let groups = weighted_sample(&mut rng, &design.case_weights, size);
            for (i, &g) in groups.iter().enumerate() {
                let choices = &md.units_by_group[g];
                let j = choices[rng.gen_range(0..choices.len())];
                out.cases.push(CaseRow {
                    wave: wave_u8,
                    case,
                    unit: j as u32,
                    lead: i == 0,
                });
                out.counts.case_units += 1;
            }
            let case_rcap = case_rcap_true(tau_t, &groups, m.mu);
            if case_rcap.is_none() {
                out.counts.cases_single_group += 1;
            }
            let responds = rng.gen::<f64>() < m.citizen_response_rate;
            let q = m.quality_mean
                + p.effect_h1 * case_rcap.unwrap_or(0.0)
                + normal(&mut rng, m.sd_citizen);
            if !responds {
                continue;
            }
            out.counts.citizens_responding += 1;
            for (k, offset) in m.citizen_offsets.iter().enumerate() {
                let x = q + offset + normal(&mut rng, m.sd_citizen_item);
                let (v, clamped) = stochastic_round(&mut rng, x);
                out.counts.clamped_citizen_items += u64::from(clamped);
                let v = respond(&mut rng, v, m.p_empty, m.p_dont_know);
                let c = &mut out.counts;
                tally(
                    v,
                    [
                        &mut c.citizen_answers,
                        &mut c.citizen_empty,
                        &mut c.citizen_dont_know,
                    ],
                );
                out.citizens.push(CitizenRow {
                    wave: wave_u8,
                    case,
                    item: k as u8,
                    value: v,
                });
            }
        }
    }
}

/// Counts answer `value` (0: empty) in [answers, empty, don't know].
fn tally(value: u8, [answers, empty, dont_know]: [&mut u64; 3]) {
    *answers += 1;
    match value {
        0 => *empty += 1,
        super::latent::DONT_KNOW => *dont_know += 1,
        _ => {}
    }
}

/// The case's true RCap, centred: the mean of τ(g→h) − mu over ordered pairs of distinct
/// involved groups; None with fewer than two groups.
pub fn case_rcap_true(tau_t: &[Vec<f64>], groups: &[usize], mu: f64) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for &a in groups {
        for &b in groups {
            if a != b {
                sum += tau_t[a][b] - mu;
                n += 1;
            }
        }
    }
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_rcap_averages_ordered_pairs() {
        let tau = vec![
            vec![9.0, 3.5, 4.0],
            vec![3.0, 9.0, 2.5],
            vec![4.5, 3.25, 9.0],
        ];
        // Pairs (0,1)=3.5, (1,0)=3.0: mean 3.25, minus mu 3 = 0.25.
        assert_eq!(case_rcap_true(&tau, &[0, 1], 3.0), Some(0.25));
        // All six off-diagonal cells: (3.5+4+3+2.5+4.5+3.25)/6 = 20.75/6.
        let v = case_rcap_true(&tau, &[2, 0, 1], 0.0).unwrap();
        assert!((v - 20.75 / 6.0).abs() < 1e-12);
        assert_eq!(case_rcap_true(&tau, &[1], 3.0), None);
    }

    #[test]
    fn item_tables_match_the_default_instrument() {
        let inst = crate::config::InstrumentSection::default();
        let mut expected = inst.dimensions();
        expected.push(inst.relevance_item.clone());
        expected.extend(inst.srm_items.iter().cloned());
        expected.extend(inst.person_items.iter().cloned());
        assert_eq!(EMPLOYEE_ITEMS.to_vec(), expected);
        assert_eq!(CITIZEN_ITEMS.to_vec(), inst.citizen_items);
        assert_eq!(
            inst.dimensions().len(),
            Model::default().dimension_offsets.len()
        );
    }
}
