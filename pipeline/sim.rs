//! `relcap simulate`: writes a synthetic study in the canonical long form of the input tables
//! (below), with its true effects, so every stage and model can be checked against known values. The same seed
//! gives the same bytes whatever the number of threads: every part draws from its own ChaCha8
//! stream (per municipality), nothing iterates a hash map, and municipalities are written in run
//! order with fixed writer settings.
//!
//! # The latent model
//!
//! Municipality m has units u of 8..=20 positions; each unit belongs to one work group g (every
//! group has at least one unit per municipality), has a manager with true SRM S_u and a unit
//! effect b_u, and is in the intervention arm or the control arm (`after_wave` = 1 by default).
//! A position is held by one employee at a time; between waves the holder leaves with
//! probability `attrition` and a new hire (new `respondent_id`) takes over. Each wave an
//! employee answers with probability `response_rate`. The latent respondent RCap is
//!
//! ```text
//! R_it = mu + a_m + b_u + c_i + w_t + h3 post_t I_u + h2 (S_u − srm_mean) + e_it
//!        [+ arm_baseline I_u + g_ut]
//! ```
//!
//! The bracketed terms are zero unless `--arm-baseline` (a baseline difference of the
//! intervention arm in every wave) or `--sd-unit-wave` (a unit × wave effect g_ut ~ N(0, sd²),
//! drawn on a stream of its own) is set; with both zero nothing more is drawn or written, so
//! default runs keep their bytes.
//!
//! Each respondent-wave rates 3..=6 partner groups (drawn by relevance; with probability 0.3 one
//! of them is the own group, a within-group tie) on the seven RC dimensions and `relevance`.
//! Every item answer is `round(R_it + r_it + d(g→h, m) + nu + offset_k + eta)`, where
//! `round(x) = floor(clamp(x, 1, 5) + U)` is stochastic rounding (E[answer] = x inside the
//! scale, so the effects hold on the observed scale in expectation) and d(g→h, m) is an
//! asymmetric dyad effect (rows centred, two designed blind-spot pairs). `frequent` is written as
//! the form code whose score (config value map 1→1, 2→3, 3→5, 4→4, 5→2) is the answer. SRM items
//! are `round(S_u + q_i + r_it + noise)`: q_i is the rater's stable view, r_it a same-source
//! (common-method) effect with SD 0.35 (variance 0.1225) that also enters all of i's RC answers
//! in that wave, so a model on the respondent's own SRM rating is biased (slope about 0.35 for a
//! true 0.25 at the default sizes; `expected.h2_own_rating_slope_approx`) while the others'
//! (leave-one-out) rating is not. Answers are empty with probability 0.03 and "don't know" (9) with 0.02.
//!
//! Citizens: `citizens_per_municipality` new cases per municipality and wave, one citizen each;
//! a case involves 1..=4 units of distinct work groups, the first drawn is the `lead`. Citizen
//! quality is `quality_mean + h1 × case RCap + v_c`, where case RCap is the mean over ordered
//! pairs of distinct involved groups of the true dyad score τ(g→h, m, t) − mu (τ = the expected
//! mean tie score of g's employees about h). Citizens answer `cq_1..cq_5` with probability 0.85.
//! Every constant is in `params::Model` and written to `truth.json` with the formulas, the
//! variance components, the expected ICC(1) of respondent RCap by unit (about 0.12) and the
//! facts that decide the attenuation of H1 and H2.
//!
//! # Output (folder `--out`)
//!
//! The five canonical tables as `.csv` or `.parquet` (`--format`; csv for the demo preset,
//! parquet for the national one). Types are those of the Parquet files (str = String, int =
//! Int64, bool = Boolean); in CSV missing values are empty fields and booleans `true`/`false`.
//!
//! | table | column | type | meaning |
//! | --- | --- | --- | --- |
//! | units | municipality | str | municipality name (Danish letters intact) |
//! | | unit_id | str | `HED-U001` (municipality code, serial in work-group order) |
//! | | work_group | str | profession of the unit |
//! | | manager_id | str | raw manager id `M0010001` |
//! | | headcount | int | positions in the unit |
//! | intervention | unit_id | str | every unit |
//! | | arm | str | `intervention` or `control` |
//! | | after_wave | int | the intervention happens after this wave |
//! | employee_responses | wave | int | 1..waves |
//! | | respondent_id | str | raw employee id `E0010001`, stable across waves |
//! | | municipality | str | the unit's municipality |
//! | | unit_id | str | the respondent's unit |
//! | | target_group | str, null | partner work group; null for person items |
//! | | item | str | RC dimension, `relevance`, `srm_1..6`, `wellbeing`, `manager_satisfaction` |
//! | | value | int, null | 1..5 (`frequent`: form code), 9 = don't know, null = no answer |
//! | citizen_responses | wave | int | |
//! | | citizen_id | str | raw citizen id `B00110001` (municipality, wave, serial) |
//! | | municipality | str | the lead unit's municipality |
//! | | case_id | str | `S00110001` |
//! | | item | str | `cq_1..cq_5` |
//! | | value | int, null | as above |
//! | case_involvement | wave | int | |
//! | | case_id | str | |
//! | | unit_id | str | involved unit (distinct work groups) |
//! | | lead | bool | true for the unit that holds the case (exactly one per case) |
//!
//! Rows come municipality by municipality in run order, then wave, unit, position; a respondent's
//! ties in work-group order, each with the seven dimensions then relevance, then the person items.
//!
//! Beside them: `truth.json` (everything above, numerically), `truth_units.csv` (municipality,
//! unit_id, work_group, manager_id, headcount, arm, unit_effect = b_u, manager_srm = S_u) and
//! `truth_dyads.csv` (municipality, from_group, to_group, within_group, wave, dyad_effect =
//! d(g→h, m), true_dyad_score = τ(g→h, m, t), relevance = the population relevance of h to g).
//!
//! A national run (98 municipalities, about 22 million rows) is generated and written
//! municipality by municipality: one thread generates while the other writes, and at most three
//! municipalities' rows exist at a time (being generated, waiting, being written).

mod design;
mod generate;
mod latent;
mod params;
mod truth;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::schema;
use anyhow::{bail, Context, Result};
use serde::Serialize;

pub use params::{ClusterEffects, EffectSd, Format, Preset};

use design::{Design, MuniDesign};
use generate::{
    CaseRow, CitizenRow, EmployeeRow, MuniOutput, CITIZEN_ITEMS, EMPLOYEE_ITEMS, NO_TARGET,
};
use params::Model;
use write::{ColData, Kind, TableWriter};

/// Random streams: each part of the simulation draws from its own ChaCha8 stream of the seed.
mod streams {
    /// Work groups, population dyads, relevance, blind spots, hubs, case weights.
    pub const GLOBAL: u64 = 0;
    /// + municipality index: its effect, units, arms, dyad effects.
    pub const MUNICIPALITY_DESIGN: u64 = 1 << 32;
    /// + municipality index: employees and their answers.
    pub const EMPLOYEES: u64 = 2 << 32;
    /// + municipality index: cases, citizens and their answers.
    pub const CITIZENS: u64 = 3 << 32;
    /// + municipality index: the Monte-Carlo part of the expected ICC (never touches the data).
    pub const EXPECTATION: u64 = 4 << 32;
    /// + municipality index: the unit × wave effects (only drawn when their SD is not 0).
    pub const UNIT_WAVE: u64 = 8 << 32;
    /// + municipality index: the municipality's own effects (only with `effect_sd` non-zero).
    pub const EFFECTS: u64 = 5 << 32;
}

/// A simulated study's sizes (None: the preset's) and effects (answer points per point of the
/// predictor): what `relcap simulate`, `relcap power` and `relcap validate` set beyond a preset.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StudyDesign {
    pub municipalities: Option<u32>,
    /// Target positions per municipality; units of 8-20 are added until it is reached.
    pub employees_per_municipality: Option<u32>,
    pub waves: Option<u32>,
    pub work_groups: Option<u32>,
    /// New citizens (one case each) per municipality and wave.
    pub citizens_per_municipality: Option<u32>,
    pub effect_h1: f64,
    pub effect_h2: f64,
    pub effect_h3: f64,
    /// Only intervention units (the design without controls).
    pub no_control: bool,
    /// H3's unit × wave SD and baseline arm difference (zero by default).
    pub cluster: params::ClusterEffects,
    /// SD of the municipalities' effects around the effects above (zero: all equal).
    pub effect_sd: params::EffectSd,
}

/// What `relcap simulate` is asked to write.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Output folder (created if missing).
    pub out: PathBuf,
    pub seed: u64,
    pub preset: Preset,
    pub design: StudyDesign,
    /// The intervention happens after this wave (below the number of waves).
    pub after_wave: u32,
    /// Share of units per municipality in the intervention arm.
    pub intervention_share: f64,
    /// None: the preset's format.
    pub format: Option<Format>,
    /// No summary on stderr.
    pub quiet: bool,
}

impl SimulateOptions {
    /// Resolves the preset and the overrides into checked parameters.
    pub fn params(&self) -> Result<params::Params> {
        let sizes = self.preset.sizes();
        let d = &self.design;
        let waves = d.waves.unwrap_or(sizes.waves);
        if self.after_wave < 1 || self.after_wave >= waves {
            bail!(
                "--after-wave {} must be at least 1 and below the number of waves ({waves})",
                self.after_wave
            );
        }
        if !(0.0..=1.0).contains(&self.intervention_share) {
            bail!(
                "--intervention-share {} must be between 0 and 1",
                self.intervention_share
            );
        }
        for (name, v) in [
            ("--effect-h1", d.effect_h1),
            ("--effect-h2", d.effect_h2),
            ("--effect-h3", d.effect_h3),
        ] {
            if !v.is_finite() || v.abs() > 5.0 {
                bail!("{name} {v} must be a finite number of answer points (at most 5 in size)");
            }
        }
        d.cluster.check().map_err(|e| anyhow::anyhow!(e))?;
        let sd = d.effect_sd;
        for (name, v) in [
            ("--effect-sd-h1", sd.h1),
            ("--effect-sd-h2", sd.h2),
            ("--effect-sd-h3", sd.h3),
        ] {
            if !(v.is_finite() && (0.0..=2.0).contains(&v)) {
                bail!("{name} {v} must be between 0 and 2 answer points");
            }
        }
        let n_muni = d.municipalities.unwrap_or(sizes.municipalities);
        let municipalities = params::municipalities(self.preset, n_muni);
        let municipality_effects = municipality_effects(self.seed, &municipalities, d, sd);
        Ok(params::Params {
            seed: self.seed,
            preset: self.preset,
            format: self.format.unwrap_or(sizes.format),
            municipalities,
            work_groups: params::work_groups(d.work_groups.unwrap_or(sizes.work_groups)),
            employees_per_municipality: d
                .employees_per_municipality
                .unwrap_or(sizes.employees_per_municipality),
            waves,
            citizens_per_municipality: d
                .citizens_per_municipality
                .unwrap_or(sizes.citizens_per_municipality),
            after_wave: self.after_wave,
            intervention_share: if d.no_control {
                1.0
            } else {
                self.intervention_share
            },
            no_control: d.no_control,
            effect_h1: d.effect_h1,
            effect_h2: d.effect_h2,
            effect_h3: d.effect_h3,
            cluster: d.cluster,
            effect_sd: sd,
            municipality_effects,
        })
    }
}

/// Each municipality's own effects when `sd` is not zero (none otherwise): the mean effects of
/// `d` plus sd × a standard normal from the municipality's `EFFECTS` stream (h1, h2, h3 in that
/// order, always three draws).
fn municipality_effects(
    seed: u64,
    municipalities: &[params::Municipality],
    d: &StudyDesign,
    sd: params::EffectSd,
) -> Vec<params::MunicipalityEffects> {
    if sd.is_zero() {
        return vec![];
    }
    municipalities
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut rng = latent::stream_rng(seed, streams::EFFECTS + i as u64);
            let mut draw = |mean: f64, s: f64| mean + latent::normal(&mut rng, s);
            params::MunicipalityEffects {
                municipality: m.name.clone(),
                h1: draw(d.effect_h1, sd.h1),
                h2: draw(d.effect_h2, sd.h2),
                h3: draw(d.effect_h3, sd.h3),
            }
        })
        .collect()
}

/// The command line that reproduces a run (all resolved sizes spelled out).
fn command(p: &params::Params) -> String {
    let mut c = format!(
        "relcap simulate --preset {} --seed {} --municipalities {} \
         --employees-per-municipality {} --waves {} --work-groups {} \
         --citizens-per-municipality {} --effect-h1 {} --effect-h2 {} --effect-h3 {} \
         --after-wave {} --format {}",
        p.preset,
        p.seed,
        p.municipalities.len(),
        p.employees_per_municipality,
        p.waves,
        p.work_groups.len(),
        p.citizens_per_municipality,
        p.effect_h1,
        p.effect_h2,
        p.effect_h3,
        p.after_wave,
        p.format.extension()
    );
    let sd = p.effect_sd;
    if !sd.is_zero() {
        c.push_str(&format!(
            " --effect-sd-h1 {} --effect-sd-h2 {} --effect-sd-h3 {}",
            sd.h1, sd.h2, sd.h3
        ));
    }
    if p.no_control {
        c.push_str(" --no-control");
    } else {
        c.push_str(&format!(" --intervention-share {}", p.intervention_share));
    }
    if p.cluster.sd_unit_wave != 0.0 {
        c.push_str(&format!(" --sd-unit-wave {}", p.cluster.sd_unit_wave));
    }
    if p.cluster.arm_baseline != 0.0 {
        c.push_str(&format!(" --arm-baseline {}", p.cluster.arm_baseline));
    }
    c
}

pub fn main(opts: &SimulateOptions) -> Result<()> {
    let p = opts.params()?;
    let start = Instant::now();
    let truth = simulate(&p, &opts.out, command(&p))?;
    if !opts.quiet {
        let rows: Vec<String> = truth
            .row_counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        crate::say!(
            "[relcap] simulated {} municipalities, {} waves (seed {}) in {:.1} s: {}",
            p.municipalities.len(),
            p.waves,
            p.seed,
            start.elapsed().as_secs_f64(),
            rows.join(", ")
        );
        crate::say!("[relcap] written to {}", opts.out.display());
    }
    Ok(())
}

const UNITS: write::Schema = &write::input_table::<5>(&schema::UNITS);
const INTERVENTION: write::Schema = &write::input_table::<3>(&schema::INTERVENTION);
const EMPLOYEE_RESPONSES: write::Schema = &write::input_table::<7>(&schema::EMPLOYEE_RESPONSES);
const CITIZEN_RESPONSES: write::Schema = &write::input_table::<6>(&schema::CITIZEN_RESPONSES);
const CASE_INVOLVEMENT: write::Schema = &write::input_table::<4>(&schema::CASE_INVOLVEMENT);
const TRUTH_UNITS: write::Schema = &[
    ("municipality", Kind::Str),
    ("unit_id", Kind::Str),
    ("work_group", Kind::Str),
    ("manager_id", Kind::Str),
    ("headcount", Kind::Int),
    ("arm", Kind::Str),
    ("unit_effect", Kind::Float),
    ("manager_srm", Kind::Float),
];
const TRUTH_DYADS: write::Schema = &[
    ("municipality", Kind::Str),
    ("from_group", Kind::Str),
    ("to_group", Kind::Str),
    ("within_group", Kind::Bool),
    ("wave", Kind::Int),
    ("dyad_effect", Kind::Float),
    ("true_dyad_score", Kind::Float),
    ("relevance", Kind::Float),
];

/// The canonical tables, in the order they are read.
pub use crate::schema::TABLES;

fn value(v: u8) -> Option<i64> {
    (v != 0).then_some(i64::from(v))
}

fn arm(intervention: bool) -> &'static str {
    if intervention {
        "intervention"
    } else {
        "control"
    }
}

/// A text column: `Plain` when the caller has checked every backing string with `is_plain`.
fn text(values: Vec<Option<&str>>, plain: bool) -> ColData<'_> {
    if plain {
        ColData::Plain(values)
    } else {
        ColData::Str(values)
    }
}

/// Whether every string a municipality's rows are made of needs no CSV quoting (checked once per
/// municipality rather than once per row).
fn muni_plain(o: &MuniOutput, md: &MuniDesign, groups: &[String]) -> bool {
    let ids = o
        .respondent_ids
        .iter()
        .chain(&o.case_ids)
        .chain(&o.citizen_ids)
        .map(String::as_str);
    let names = md
        .units
        .iter()
        .map(|u| u.id.as_str())
        .chain(groups.iter().map(String::as_str));
    let items = EMPLOYEE_ITEMS.iter().chain(CITIZEN_ITEMS.iter()).copied();
    write::is_plain(&md.name) && ids.chain(names).chain(items).all(write::is_plain)
}

fn employee_columns<'a>(
    o: &'a MuniOutput,
    md: &'a MuniDesign,
    groups: &'a [String],
    plain: bool,
) -> Vec<ColData<'a>> {
    let rows = &o.employees;
    let respondent = |r: &EmployeeRow| Some(o.respondent_ids[r.respondent as usize].as_str());
    let unit = |r: &EmployeeRow| Some(md.units[r.unit as usize].id.as_str());
    let target =
        |r: &EmployeeRow| (r.target != NO_TARGET).then(|| groups[usize::from(r.target)].as_str());
    let item = |r: &EmployeeRow| Some(EMPLOYEE_ITEMS[usize::from(r.item)]);
    vec![
        ColData::Int(rows.iter().map(|r| Some(i64::from(r.wave))).collect()),
        text(rows.iter().map(respondent).collect(), plain),
        text(rows.iter().map(|_| Some(md.name.as_str())).collect(), plain),
        text(rows.iter().map(unit).collect(), plain),
        text(rows.iter().map(target).collect(), plain),
        text(rows.iter().map(item).collect(), plain),
        ColData::Int(rows.iter().map(|r| value(r.value)).collect()),
    ]
}

fn citizen_columns<'a>(o: &'a MuniOutput, md: &'a MuniDesign, plain: bool) -> Vec<ColData<'a>> {
    let rows = &o.citizens;
    let citizen = |r: &CitizenRow| Some(o.citizen_ids[r.case as usize].as_str());
    let case = |r: &CitizenRow| Some(o.case_ids[r.case as usize].as_str());
    let item = |r: &CitizenRow| Some(CITIZEN_ITEMS[usize::from(r.item)]);
    vec![
        ColData::Int(rows.iter().map(|r| Some(i64::from(r.wave))).collect()),
        text(rows.iter().map(citizen).collect(), plain),
        text(rows.iter().map(|_| Some(md.name.as_str())).collect(), plain),
        text(rows.iter().map(case).collect(), plain),
        text(rows.iter().map(item).collect(), plain),
        ColData::Int(rows.iter().map(|r| value(r.value)).collect()),
    ]
}

fn case_columns<'a>(o: &'a MuniOutput, md: &'a MuniDesign, plain: bool) -> Vec<ColData<'a>> {
    let rows = &o.cases;
    let case = |r: &CaseRow| Some(o.case_ids[r.case as usize].as_str());
    let unit = |r: &CaseRow| Some(md.units[r.unit as usize].id.as_str());
    vec![
        ColData::Int(rows.iter().map(|r| Some(i64::from(r.wave))).collect()),
        text(rows.iter().map(case).collect(), plain),
        text(rows.iter().map(unit).collect(), plain),
        ColData::Bool(rows.iter().map(|r| r.lead).collect()),
    ]
}

/// Generates the study described by `p` into `out` and returns its truth (also written there).
/// Every table is written to a temporary file first and put in place only when all are complete.
pub fn simulate(p: &params::Params, out: &Path, command: String) -> Result<truth::Truth> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    let model = Model::default();
    let design = Design::build(p, &model);
    let meta = vec![("relcap.seed".to_string(), p.seed.to_string())];
    let create = |name, fmt, schema| TableWriter::create(out, name, fmt, schema, &meta);

    let mut writers = design_tables(p, &design, &create)?;
    let (responses, counts) = response_tables(p, &model, &design, &create)?;
    writers.extend(responses);
    writers.extend(truth_tables(p, &model, &design, &create)?);

    let mut row_counts = BTreeMap::new();
    let mut finished = Vec::new();
    for (name, w) in writers {
        let f = w.finish()?;
        row_counts.insert(name.to_string(), f.rows);
        finished.push(f);
    }
    let mut truth = truth_of(p, model, &design, command, counts, row_counts);
    for f in finished {
        f.commit()?;
    }
    truth.simulated_tables = crate::sim_mark::tables_written(out, p.format.extension())?;
    let truth_path = out.join("truth.json");
    crate::io::write_json(&truth, &truth_path)?;
    write::make_readable(&truth_path)?;
    remove_twins(out, p.format)?;
    Ok(truth)
}

/// Creates a table writer: (file stem, format, schema).
type Create<'a> = dyn Fn(&'static str, Format, write::Schema) -> Result<TableWriter> + 'a;

/// The unit and intervention tables, written whole (they are small).
fn design_tables(
    p: &params::Params,
    design: &Design,
    create: &Create,
) -> Result<Vec<(&'static str, TableWriter)>> {
    let mut units_w = create("units", p.format, UNITS)?;
    let mut arms_w = create("intervention", p.format, INTERVENTION)?;
    for md in &design.munis {
        let us = &md.units;
        units_w.write(vec![
            ColData::Str(us.iter().map(|_| Some(md.name.as_str())).collect()),
            ColData::Str(us.iter().map(|u| Some(u.id.as_str())).collect()),
            ColData::Str(
                us.iter()
                    .map(|u| Some(design.groups[u.group].as_str()))
                    .collect(),
            ),
            ColData::Str(us.iter().map(|u| Some(u.manager_id.as_str())).collect()),
            ColData::Int(us.iter().map(|u| Some(i64::from(u.headcount))).collect()),
        ])?;
        arms_w.write(vec![
            ColData::Str(us.iter().map(|u| Some(u.id.as_str())).collect()),
            ColData::Str(us.iter().map(|u| Some(arm(u.intervention))).collect()),
            ColData::Int(us.iter().map(|_| Some(i64::from(p.after_wave))).collect()),
        ])?;
    }
    Ok(vec![("units", units_w), ("intervention", arms_w)])
}

/// The three response tables, generated municipality by municipality, with the counts of what
/// was generated.
fn response_tables(
    p: &params::Params,
    model: &Model,
    design: &Design,
    create: &Create,
) -> Result<(Vec<(&'static str, TableWriter)>, generate::Counts)> {
    let id_width = design.employee_id_width(p.waves);
    let mut emp_w = create("employee_responses", p.format, EMPLOYEE_RESPONSES)?;
    let mut cit_w = create("citizen_responses", p.format, CITIZEN_RESPONSES)?;
    let mut case_w = create("case_involvement", p.format, CASE_INVOLVEMENT)?;
    // One thread generates municipality after municipality while this one writes: each
    // municipality draws from its own streams, and the channel keeps the run order, so the bytes
    // do not depend on the timing. At most three municipalities' rows exist at once (being
    // generated, waiting, being written).
    let mut counts = generate::Counts::default();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<MuniOutput>(1);
        scope.spawn(move || {
            for md in &design.munis {
                let o = generate::municipality(p, model, design, md, id_width);
                if tx.send(o).is_err() {
                    // The writer stopped (an error it will report): nothing more to do.
                    break;
                }
            }
        });
        for md in &design.munis {
            let o = rx
                .recv()
                .context("the generator thread stopped before the last municipality")?;
            let plain = muni_plain(&o, md, &design.groups);
            emp_w.write(employee_columns(&o, md, &design.groups, plain))?;
            cit_w.write(citizen_columns(&o, md, plain))?;
            case_w.write(case_columns(&o, md, plain))?;
            counts.add(&o.counts);
        }
        Ok(())
    })?;
    let writers = vec![
        ("employee_responses", emp_w),
        ("citizen_responses", cit_w),
        ("case_involvement", case_w),
    ];
    Ok((writers, counts))
}

/// The truth tables (always CSV: small, and meant to be read by people too).
fn truth_tables(
    p: &params::Params,
    model: &Model,
    design: &Design,
    create: &Create,
) -> Result<Vec<(&'static str, TableWriter)>> {
    let mut tu_w = create("truth_units", Format::Csv, TRUTH_UNITS)?;
    let mut td_w = create("truth_dyads", Format::Csv, TRUTH_DYADS)?;
    let g = design.groups.len();
    for md in &design.munis {
        let us = &md.units;
        tu_w.write(vec![
            ColData::Str(us.iter().map(|_| Some(md.name.as_str())).collect()),
            ColData::Str(us.iter().map(|u| Some(u.id.as_str())).collect()),
            ColData::Str(
                us.iter()
                    .map(|u| Some(design.groups[u.group].as_str()))
                    .collect(),
            ),
            ColData::Str(us.iter().map(|u| Some(u.manager_id.as_str())).collect()),
            ColData::Int(us.iter().map(|u| Some(i64::from(u.headcount))).collect()),
            ColData::Str(us.iter().map(|u| Some(arm(u.intervention))).collect()),
            ColData::Float(us.iter().map(|u| u.effect).collect()),
            ColData::Float(us.iter().map(|u| u.srm).collect()),
        ])?;
        let tau = generate::true_dyads(p, model, md);
        let mut keys = Vec::with_capacity(g * g * p.waves as usize);
        for a in 0..g {
            for b in 0..g {
                for t in 1..=p.waves {
                    keys.push((a, b, t));
                }
            }
        }
        let group = |i: usize| Some(design.groups[i].as_str());
        td_w.write(vec![
            ColData::Str(keys.iter().map(|_| Some(md.name.as_str())).collect()),
            ColData::Str(keys.iter().map(|&(a, _, _)| group(a)).collect()),
            ColData::Str(keys.iter().map(|&(_, b, _)| group(b)).collect()),
            ColData::Bool(keys.iter().map(|&(a, b, _)| a == b).collect()),
            ColData::Int(keys.iter().map(|&(_, _, t)| Some(i64::from(t))).collect()),
            ColData::Float(keys.iter().map(|&(a, b, _)| md.dyad[a][b]).collect()),
            ColData::Float(
                keys.iter()
                    .map(|&(a, b, t)| tau[(t - 1) as usize][a][b])
                    .collect(),
            ),
            ColData::Float(
                keys.iter()
                    .map(|&(a, b, _)| design.relevance[a][b])
                    .collect(),
            ),
        ])?;
    }
    Ok(vec![("truth_units", tu_w), ("truth_dyads", td_w)])
}

/// The run's truth.json: the parameters, the model, what follows from them, and the counts.
fn truth_of(
    p: &params::Params,
    model: Model,
    design: &Design,
    command: String,
    counts: generate::Counts,
    row_counts: BTreeMap<String, u64>,
) -> truth::Truth {
    let mut files = BTreeMap::new();
    files.insert("truth_units", "truth_units.csv");
    files.insert("truth_dyads", "truth_dyads.csv");
    truth::Truth {
        generator: "relcap simulate",
        version: env!("CARGO_PKG_VERSION"),
        command,
        params: p.clone(),
        latent_model: truth::LATENT_MODEL.to_vec(),
        effects: truth::effects(p),
        variance_components: truth::variance_components(p, &model),
        expected: truth::expected(p, &model, design),
        model,
        municipalities: truth::municipalities(design),
        work_groups: design.groups.clone(),
        blind_spot_pairs: design
            .blind_spots
            .iter()
            .map(|&(a, b)| [design.groups[a].clone(), design.groups[b].clone()])
            .collect(),
        hub_groups: design
            .hubs
            .iter()
            .map(|&h| design.groups[h].clone())
            .collect(),
        population_dyad: design.population_dyad.clone(),
        clamped_share: truth::clamped_share(&counts),
        counts,
        row_counts,
        files,
        simulated_tables: Default::default(),
    }
}

/// Removes a table left in the other format by an earlier run: it would shadow this run's
/// (`find_table` prefers .parquet).
fn remove_twins(out: &Path, format: Format) -> Result<()> {
    for table in TABLES {
        for fmt_other in [Format::Csv, Format::Parquet] {
            if fmt_other == format {
                continue;
            }
            let stale = out.join(format!("{table}.{}", fmt_other.extension()));
            if stale.is_file() {
                std::fs::remove_file(&stale)
                    .with_context(|| format!("cannot remove the stale {}", stale.display()))?;
                crate::say!(
                    "[relcap] removed {} (left from an earlier run in the other format)",
                    stale.display()
                );
            }
        }
    }
    Ok(())
}
