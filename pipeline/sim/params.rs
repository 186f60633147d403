//! The simulator's settings: the resolved sizes and effects of one run (`Params`, from a preset
//! and the command line) and the fixed constants of the latent model (`Model`), both written
//! whole into `truth.json`. Names of municipalities and work groups live here too.

use serde::{Deserialize, Serialize};

use crate::config::choice;

/// The five municipalities of the study, in the study's order.
pub const DEMO_MUNICIPALITIES: [&str; 5] =
    ["Hedensted", "Haderslev", "Randers", "Rødovre", "Stevns"];

/// Short ASCII codes for the five, used in unit ids.
const DEMO_CODES: [&str; 5] = ["HED", "HAD", "RAN", "ROD", "STE"];

/// Work groups in the order they are used: `--work-groups N` takes the first N (generated names
/// `work_group_13`, ... beyond these).
pub const WORK_GROUPS: [&str; 12] = [
    "caseworkers",
    "job_consultants",
    "family_therapists",
    "health_visitors",
    "psychologists",
    "benefits_office",
    "psychiatry",
    "social_educators",
    "home_care",
    "youth_counsellors",
    "addiction_services",
    "occupational_therapists",
];

choice! {
    /// Output format of the five tables.
    pub enum Format {
        Csv = "csv",
        Parquet = "parquet",
    }
}

impl Format {
    /// The file extension, which is also the format's name.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

choice! {
    /// The named size presets.
    pub enum Preset {
        /// The five study municipalities at a size that keeps the committed CSV demo small.
        Demo = "demo",
        /// 98 municipalities with generated names, about a thousand employees each.
        National = "national",
    }
}

/// One municipality: its name (Danish letters intact) and the ASCII code used in unit ids.
#[derive(Debug, Clone, Serialize)]
pub struct Municipality {
    pub name: String,
    pub code: String,
}

/// Everything that sizes and drives one run. Effects are in observed-scale units (answer points
/// per point of the predictor).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub seed: u64,
    pub preset: Preset,
    pub format: Format,
    pub municipalities: Vec<Municipality>,
    pub work_groups: Vec<String>,
    /// Target number of positions per municipality; units of 8..=20 are added until it is reached.
    pub employees_per_municipality: u32,
    pub waves: u32,
    /// Citizens (= cases) per municipality per wave; new cases every wave.
    pub citizens_per_municipality: u32,
    /// The intervention happens between this wave and the next.
    pub after_wave: u32,
    /// Share of units (per municipality, rounded) in the intervention arm; 1 when `no_control`.
    pub intervention_share: f64,
    pub no_control: bool,
    pub effect_h1: f64,
    pub effect_h2: f64,
    pub effect_h3: f64,
    /// H3's cluster-level departures (zero by default: not written to truth.json then).
    #[serde(flatten)]
    pub cluster: ClusterEffects,
    /// Between-municipality heterogeneity of the effects (absent from truth.json when zero).
    #[serde(skip_serializing_if = "EffectSd::is_zero")]
    pub effect_sd: EffectSd,
    /// Each municipality's own (h1, h2, h3), in run order; empty when `effect_sd` is zero (every
    /// municipality then has the mean effects).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub municipality_effects: Vec<MunicipalityEffects>,
}

// ----- between-municipality heterogeneity of the effects -----
//
// With `effect_sd` non-zero, municipality m's effects are h_k + sd_k · z_km, z_km standard
// normal drawn from the municipality's own stream (`streams::EFFECTS` in `sim.rs`), so the
// effects above are the means of the municipalities' effects, the target of a random-effects
// meta-analysis. With the default zero nothing is drawn and nothing changes: the same seed
// gives the same bytes as before the setting existed.

/// SD of the municipalities' effects around the mean effect, per hypothesis (answer points).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct EffectSd {
    pub h1: f64,
    pub h2: f64,
    pub h3: f64,
}

impl EffectSd {
    pub fn is_zero(&self) -> bool {
        self.h1 == 0.0 && self.h2 == 0.0 && self.h3 == 0.0
    }
}

/// One municipality's own effects (written to truth.json when they differ).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MunicipalityEffects {
    pub municipality: String,
    pub h1: f64,
    pub h2: f64,
    pub h3: f64,
}

impl Params {
    /// The parameters as municipality `index` sees them: its own effects when they vary
    /// between municipalities, otherwise these parameters unchanged (borrowed).
    pub fn in_municipality(&self, index: usize) -> std::borrow::Cow<'_, Params> {
        match self.municipality_effects.get(index) {
            None => std::borrow::Cow::Borrowed(self),
            Some(e) => {
                let mut p = self.clone();
                p.effect_h1 = e.h1;
                p.effect_h2 = e.h2;
                p.effect_h3 = e.h3;
                std::borrow::Cow::Owned(p)
            }
        }
    }
}

// ----- H3: unit x wave variation and a baseline arm difference -----

/// Cluster-level terms of the latent RCap that threaten H3's analysis (both zero by default, so
/// that a default run draws nothing more and writes the same bytes as before they existed):
///
/// - `sd_unit_wave`: SD of a unit × wave effect g_ut ~ N(0, sd²), drawn independently per unit
///   and wave from a stream of its own (`streams::UNIT_WAVE`). Every respondent of a unit shares
///   it in a wave, so a unit's pre–post change varies between units beyond the respondents'
///   noise: the variation the unit × period random intercept of H3's primary model is for.
/// - `arm_baseline`: added to the latent RCap of every respondent of an intervention unit in every
///   wave (a baseline difference between the arms, as chance or selection gives): the arm main
///   effect of H3's primary model absorbs it; a model without one leaks part of it into the
///   difference in differences.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterEffects {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sd_unit_wave: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arm_baseline: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl ClusterEffects {
    /// A usable setting: finite, the SD not negative, both at most 5 answer points.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("--sd-unit-wave", self.sd_unit_wave),
            ("--arm-baseline", self.arm_baseline),
        ] {
            if !v.is_finite() || v.abs() > 5.0 {
                return Err(format!(
                    "{name} {v} must be a finite number of answer points (at most 5 in size)"
                ));
            }
        }
        if self.sd_unit_wave < 0.0 {
            return Err(format!(
                "--sd-unit-wave {} must not be negative",
                self.sd_unit_wave
            ));
        }
        Ok(())
    }
}

// ----- end of H3's block -----

/// Preset defaults before command-line overrides.
pub struct PresetSizes {
    pub municipalities: u32,
    pub employees_per_municipality: u32,
    pub waves: u32,
    pub work_groups: u32,
    pub citizens_per_municipality: u32,
    pub format: Format,
}

impl Preset {
    pub fn sizes(self) -> PresetSizes {
        match self {
            Preset::Demo => PresetSizes {
                municipalities: 5,
                employees_per_municipality: 140,
                waves: 3,
                work_groups: 8,
                citizens_per_municipality: 200,
                format: Format::Csv,
            },
            Preset::National => PresetSizes {
                municipalities: 98,
                employees_per_municipality: 1000,
                waves: 4,
                work_groups: 12,
                citizens_per_municipality: 3000,
                format: Format::Parquet,
            },
        }
    }
}

/// `n` municipalities for `preset`: the demo preset starts with the five study municipalities,
/// the national preset (and the demo preset beyond five) uses generated Danish-sounding names
/// (14 × 7 = 98 distinct ones, then numbered).
pub fn municipalities(preset: Preset, n: u32) -> Vec<Municipality> {
    let n = n as usize;
    let mut out = Vec::with_capacity(n);
    if preset == Preset::Demo {
        for (name, code) in DEMO_MUNICIPALITIES.iter().zip(DEMO_CODES).take(n) {
            out.push(Municipality {
                name: name.to_string(),
                code: code.to_string(),
            });
        }
    }
    let mut k = 0usize;
    while out.len() < n {
        out.push(Municipality {
            name: generated_name(k),
            code: format!("K{:03}", k + 1),
        });
        k += 1;
    }
    out
}

/// The `k`-th generated municipality name.
pub fn generated_name(k: usize) -> String {
    const PREFIX: [&str; 14] = [
        "Ask", "Birke", "Bøge", "Dals", "Egå", "Fjord", "Hvid", "Kirke", "Lyng", "Mølle", "Nørre",
        "Rø", "Sønder", "Vester",
    ];
    const SUFFIX: [&str; 7] = ["by", "bæk", "holm", "lund", "sted", "strup", "købing"];
    let base = format!(
        "{}{}",
        PREFIX[k % PREFIX.len()],
        SUFFIX[(k / PREFIX.len()) % SUFFIX.len()]
    );
    let round = k / (PREFIX.len() * SUFFIX.len());
    if round == 0 {
        base
    } else {
        format!("{base} {}", round + 1)
    }
}

/// The first `n` work group names.
pub fn work_groups(n: u32) -> Vec<String> {
    (0..n as usize)
        .map(|i| match WORK_GROUPS.get(i) {
            Some(name) => name.to_string(),
            None => format!("work_group_{}", i + 1),
        })
        .collect()
}

/// The fixed constants of the latent model (standard deviations on the 1..5 answer scale). They
/// are not command-line options: a study is simulated with these, and `truth.json` records them.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    /// Grand mean of the latent respondent RCap (and of every tie item latent).
    pub mu: f64,
    /// SD of the municipality effect a_m.
    pub sd_municipality: f64,
    /// SD of the unit effect b_u.
    pub sd_unit: f64,
    /// Mean of the managers' true SRM S_u (the centre of the H2 term).
    pub srm_mean: f64,
    /// SD of the managers' true SRM S_u.
    pub sd_srm: f64,
    /// SD of the respondent's stable effect c_i (kept across waves while employed).
    pub sd_respondent: f64,
    /// SD of the respondent-wave effect e_it.
    pub sd_occasion: f64,
    /// SD of the same-source (common-method) effect r_it, added to all of respondent i's answers
    /// in wave t: every RC item, relevance excepted, every SRM item, wellbeing and manager
    /// satisfaction.
    pub sd_common_method: f64,
    /// SD of the rater effect q_i on the SRM items (i's stable view of their manager).
    pub sd_srm_rater: f64,
    /// SD of the item noise of each SRM answer.
    pub sd_srm_item: f64,
    /// SD of the symmetric part of the population dyad effect D(g, h) = D(h, g).
    pub sd_dyad_symmetric: f64,
    /// SD of the asymmetric part of the population dyad effect.
    pub sd_dyad_asymmetric: f64,
    /// SD of the municipality-specific deviation of a dyad effect.
    pub sd_dyad_municipal: f64,
    /// Number of designed blind-spot pairs (g rates h well, h rates g poorly).
    pub blind_spots: usize,
    /// Added to D(g→h) of a blind-spot pair.
    pub blind_spot_high: f64,
    /// Added to D(h→g) of a blind-spot pair.
    pub blind_spot_low: f64,
    /// Mean of the within-group dyad effect d(g→g, m) (people rate their own group higher).
    pub within_group_bonus: f64,
    /// SD of the within-group dyad effect.
    pub sd_within_group: f64,
    /// SD of the tie effect nu_ith (shared by the seven items of one tie).
    pub sd_tie: f64,
    /// SD of the item noise of each tie item answer.
    pub sd_item: f64,
    /// Offsets of the seven dimensions (sum zero, so a fully answered tie has no offset).
    pub dimension_offsets: [f64; 7],
    /// Wave effect w_t = wave_trend × (t − 1): a secular drift shared by both arms.
    pub wave_trend: f64,
    /// Range of the population relevance of partner group h to group g (uniform).
    pub relevance_low: f64,
    pub relevance_high: f64,
    /// Number of hub groups and how much more relevant they are to everyone.
    pub hubs: usize,
    pub hub_boost: f64,
    /// SD of the noise of a relevance answer.
    pub sd_relevance: f64,
    /// Partner choice weight is (relevance − relevance_floor) (never negative).
    pub relevance_floor: f64,
    /// Partner groups rated per respondent-wave: uniform in min..=max (capped by the groups).
    pub partners_min: u32,
    pub partners_max: u32,
    /// Probability that one of the rated groups is the respondent's own group.
    pub p_within_tie: f64,
    /// Unit sizes (positions): uniform in min..=max.
    pub unit_size_min: u32,
    pub unit_size_max: u32,
    /// Probability that an employee leaves between two waves (replaced by a new hire).
    pub attrition: f64,
    /// Probability that an employee answers the survey in a wave.
    pub response_rate: f64,
    /// Probability of an empty answer (item non-response) and of "don't know" (code 9).
    pub p_empty: f64,
    pub p_dont_know: f64,
    /// Wellbeing latent = wellbeing_mean + wellbeing_slope × (R_it − mu) + r_it + noise.
    pub wellbeing_mean: f64,
    pub wellbeing_slope: f64,
    pub sd_wellbeing: f64,
    /// Manager satisfaction = satisfaction_mean + satisfaction_slope × (S_u − srm_mean) + q_i
    /// + r_it + noise.
    pub satisfaction_mean: f64,
    pub satisfaction_slope: f64,
    pub sd_satisfaction: f64,
    /// Probabilities that a case involves 1, 2, 3, 4 units (of distinct work groups).
    pub case_size_probs: [f64; 4],
    /// Range of the weight with which a work group is involved in cases (uniform); the lead is
    /// the first group drawn.
    pub case_weight_low: f64,
    pub case_weight_high: f64,
    /// Citizen quality latent Q_c = quality_mean + effect_h1 × case_rcap_true + v_c.
    pub quality_mean: f64,
    pub sd_citizen: f64,
    /// SD of the item noise of each citizen answer.
    pub sd_citizen_item: f64,
    /// Offsets of cq_1..cq_5 (sum zero).
    pub citizen_offsets: [f64; 5],
    /// Probability that a citizen answers at all.
    pub citizen_response_rate: f64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            mu: 3.2,
            sd_municipality: 0.10,
            sd_unit: 0.17,
            srm_mean: 3.3,
            sd_srm: 0.45,
            sd_respondent: 0.50,
            sd_occasion: 0.20,
            sd_common_method: 0.35,
            sd_srm_rater: 0.35,
            sd_srm_item: 0.35,
            sd_dyad_symmetric: 0.20,
            sd_dyad_asymmetric: 0.20,
            sd_dyad_municipal: 0.10,
            blind_spots: 2,
            blind_spot_high: 1.0,
            blind_spot_low: -0.8,
            within_group_bonus: 0.30,
            sd_within_group: 0.10,
            sd_tie: 0.25,
            sd_item: 0.30,
            dimension_offsets: [0.0, -0.15, 0.05, -0.10, 0.05, -0.05, 0.20],
            wave_trend: 0.05,
            relevance_low: 2.0,
            relevance_high: 4.3,
            hubs: 2,
            hub_boost: 0.6,
            sd_relevance: 0.5,
            relevance_floor: 1.5,
            partners_min: 3,
            partners_max: 6,
            p_within_tie: 0.3,
            unit_size_min: 8,
            unit_size_max: 20,
            attrition: 0.15,
            response_rate: 0.80,
            p_empty: 0.03,
            p_dont_know: 0.02,
            wellbeing_mean: 3.6,
            wellbeing_slope: 0.4,
            sd_wellbeing: 0.6,
            satisfaction_mean: 3.5,
            satisfaction_slope: 0.7,
            sd_satisfaction: 0.5,
            case_size_probs: [0.15, 0.35, 0.30, 0.20],
            case_weight_low: 0.5,
            case_weight_high: 1.5,
            quality_mean: 3.4,
            sd_citizen: 0.5,
            sd_citizen_item: 0.4,
            citizen_offsets: [0.10, -0.10, -0.15, 0.20, -0.05],
            citizen_response_rate: 0.85,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_distinct_and_keep_danish_letters() {
        let names: Vec<String> = (0..200).map(generated_name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names[..98].iter().any(|n| n.contains('ø')));
        assert!(!names
            .iter()
            .any(|n| DEMO_MUNICIPALITIES.contains(&n.as_str())));
        assert_eq!(generated_name(98), "Askby 2");
    }

    #[test]
    fn demo_municipalities_come_first() {
        let m = municipalities(Preset::Demo, 7);
        let names: Vec<&str> = m.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(&names[..5], &DEMO_MUNICIPALITIES[..]);
        assert_eq!(m[3].code, "ROD");
        assert_eq!(m[5].code, "K001");
        assert_eq!(municipalities(Preset::National, 98).len(), 98);
    }

    #[test]
    fn offsets_sum_to_zero() {
        let m = Model::default();
        assert!(m.dimension_offsets.iter().sum::<f64>().abs() < 1e-12);
        assert!(m.citizen_offsets.iter().sum::<f64>().abs() < 1e-12);
        assert!((m.case_size_probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn work_group_names_extend_past_the_list() {
        let g = work_groups(14);
        assert_eq!(g[0], "caseworkers");
        assert_eq!(g[13], "work_group_14");
    }
}
