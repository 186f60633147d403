//! `relcap simulate` end to end: determinism (same seed → same bytes, also across thread counts
//! and against the committed demo), the canonical columns, row counts against truth.json, the
//! structure of the tables, the ICC(1) of respondent RCap scored from the answers, and that the
//! true effects written in truth.json are what the answers carry (H1, H2, H3 checked on the
//! generated data with their own standard errors, by simple estimators written here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{instrument, read_json, relcap, repo, simulate, Csv};

const SMALL: &str = "--municipalities 2 --employees-per-municipality 40 --waves 2 \
                     --work-groups 4 --citizens-per-municipality 30";

/// The canonical columns of each input table, in order.
const TABLES: [(&str, &str); 5] = [
    (
        "units",
        "municipality unit_id work_group manager_id headcount",
    ),
    ("intervention", "unit_id arm after_wave"),
    (
        "employee_responses",
        "wave respondent_id municipality unit_id target_group item value",
    ),
    (
        "citizen_responses",
        "wave citizen_id municipality case_id item value",
    ),
    ("case_involvement", "wave case_id unit_id lead"),
];

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn truth(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("truth.json"))
}

#[test]
fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let a = simulate(&tmp.path().join("a"), &format!("{SMALL} --seed 7"));
    let b = simulate(&tmp.path().join("b"), &format!("{SMALL} --seed 7"));
    let c = simulate(&tmp.path().join("c"), &format!("{SMALL} --seed 8"));
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    let names: Vec<&String> = fa.keys().collect();
    assert_eq!(
        names,
        vec![
            "case_involvement.csv",
            "citizen_responses.csv",
            "employee_responses.csv",
            "intervention.csv",
            "truth.json",
            "truth_dyads.csv",
            "truth_units.csv",
            "units.csv"
        ],
        "exactly the five tables and the truth files, no temporary files"
    );
    assert_eq!(fa, fb, "same seed, same bytes");
    for t in [
        "employee_responses.csv",
        "citizen_responses.csv",
        "truth.json",
    ] {
        assert_ne!(fa[t], fc[t], "{t} should change with the seed");
    }
}

#[test]
fn parquet_is_the_same_across_thread_counts_and_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, threads: &str| {
        let dir = tmp.path().join(name);
        relcap()
            .env("POLARS_MAX_THREADS", threads)
            .env("RAYON_NUM_THREADS", threads)
            .args(["simulate", "-q", "--format", "parquet", "--seed", "3"])
            .args(SMALL.split_whitespace())
            .arg("--out")
            .arg(&dir)
            .assert()
            .success();
        dir
    };
    let one = run("one", "1");
    let two = run("two", "2");
    assert_eq!(files(&one), files(&two));
    let t = truth(&one);
    for (table, cols) in TABLES {
        let df = relcap::io::read_parquet(&one.join(format!("{table}.parquet"))).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, cols.split(' ').collect::<Vec<_>>(), "{table}");
        assert_eq!(
            df.height() as u64,
            t["row_counts"][table].as_u64().unwrap(),
            "{table}"
        );
    }
    let emp = relcap::io::read_parquet(&one.join("employee_responses.parquet")).unwrap();
    assert_eq!(emp.column("value").unwrap().dtype().to_string(), "i64");
    assert!(
        emp.column("value").unwrap().null_count() > 0,
        "empty answers are null"
    );
    assert!(emp.column("target_group").unwrap().null_count() > 0);
    // Switching format removes the stale twin that would shadow the new tables.
    relcap()
        .args(["simulate", "-q", "--format", "csv", "--seed", "3"])
        .args(SMALL.split_whitespace())
        .arg("--out")
        .arg(&one)
        .assert()
        .success();
    assert!(!one.join("units.parquet").exists());
    assert!(one.join("units.csv").exists());
}

#[test]
fn tables_have_the_canonical_columns_counts_and_structure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(&tmp.path().join("s"), &format!("{SMALL} --seed 11"));
    let t = truth(&dir);
    let mut csv = BTreeMap::new();
    for (table, cols) in TABLES {
        let c = Csv::read(&dir.join(format!("{table}.csv")));
        assert_eq!(
            c.header,
            cols.split(' ').collect::<Vec<_>>(),
            "{table}: canonical columns in order"
        );
        assert_eq!(
            c.rows.len() as u64,
            t["row_counts"][table].as_u64().unwrap(),
            "{table}: rows = truth.json row_counts"
        );
        csv.insert(table, c);
    }

    // Units: ids unique, each municipality has every work group, 8..=20 positions.
    let units = &csv["units"];
    let mut unit_muni = BTreeMap::new();
    let mut unit_group = BTreeMap::new();
    for r in &units.rows {
        assert!(unit_muni.insert(r[1].clone(), r[0].clone()).is_none());
        unit_group.insert(r[1].clone(), r[2].clone());
        let h: u32 = r[4].parse().unwrap();
        assert!((8..=20).contains(&h));
    }
    let groups: BTreeSet<&String> = unit_group.values().collect();
    assert_eq!(groups.len(), 4);
    for m in unit_muni.values().collect::<BTreeSet<_>>() {
        let g: BTreeSet<&String> = unit_group
            .iter()
            .filter(|(u, _)| &unit_muni[*u] == m)
            .map(|(_, g)| g)
            .collect();
        assert_eq!(g.len(), 4, "{m}: every work group has a unit");
    }
    // Intervention: every unit, both arms, after wave 1.
    let arms = &csv["intervention"];
    assert_eq!(arms.rows.len(), units.rows.len());
    let arm_set: BTreeSet<&str> = arms.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(arm_set, BTreeSet::from(["control", "intervention"]));
    assert!(arms.rows.iter().all(|r| r[2] == "1"));

    // Employee answers: values, target groups, municipality = the unit's, stable raw ids.
    let emp = &csv["employee_responses"];
    let ins = instrument();
    let person: BTreeSet<&str> = (ins.srm_items.iter().chain(&ins.person_items))
        .map(String::as_str)
        .collect();
    let (mut empty, mut dk) = (0usize, 0usize);
    let mut resp_unit: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for r in &emp.rows {
        assert!(r[0] == "1" || r[0] == "2");
        assert!(r[1].len() == 8 && r[1].starts_with('E'), "{}", r[1]);
        assert_eq!(unit_muni[&r[3]], r[2], "municipality is the unit's");
        if person.contains(r[5].as_str()) {
            assert_eq!(r[4], "", "person items have no target group");
        } else {
            assert!(groups.contains(&r[4]), "target {}", r[4]);
        }
        match r[6].as_str() {
            "" => empty += 1,
            "9" => dk += 1,
            "1" | "2" | "3" | "4" | "5" => {}
            v => panic!("value {v}"),
        }
        // No two answers share a key (the pipeline quarantines same-key conflicts).
        assert!(
            keys.insert((r[0].as_str(), r[1].as_str(), r[4].as_str(), r[5].as_str())),
            "duplicate key {r:?}"
        );
        let prev = resp_unit.insert((r[0].clone(), r[1].clone()), r[3].clone());
        assert!(
            prev.is_none_or(|u| u == r[3]),
            "one unit per respondent and wave"
        );
    }
    let n = emp.rows.len() as f64;
    assert!((0.015..0.05).contains(&(empty as f64 / n)), "empty share");
    assert!((0.005..0.04).contains(&(dk as f64 / n)), "don't-know share");
    // Some respondents answer both waves (panel), some are new hires or skipped a wave.
    let w1: BTreeSet<&String> = resp_unit
        .keys()
        .filter(|k| k.0 == "1")
        .map(|k| &k.1)
        .collect();
    let w2: BTreeSet<&String> = resp_unit
        .keys()
        .filter(|k| k.0 == "2")
        .map(|k| &k.1)
        .collect();
    let both = w1.intersection(&w2).count();
    assert!(
        both > w1.len() / 2 && both < w1.len(),
        "{both} of {}",
        w1.len()
    );

    // Cases: exactly one lead, distinct work groups, 1..=4 units; citizens only for known cases.
    let cases = &csv["case_involvement"];
    let mut by_case: BTreeMap<(String, String), Vec<(String, bool)>> = BTreeMap::new();
    for r in &cases.rows {
        by_case
            .entry((r[0].clone(), r[1].clone()))
            .or_default()
            .push((r[2].clone(), r[3] == "true"));
        assert!(r[3] == "true" || r[3] == "false");
    }
    for (k, us) in &by_case {
        assert_eq!(us.iter().filter(|(_, l)| *l).count(), 1, "{k:?}: one lead");
        assert!((1..=4).contains(&us.len()));
        let g: BTreeSet<&String> = us.iter().map(|(u, _)| &unit_group[u]).collect();
        assert_eq!(g.len(), us.len(), "{k:?}: distinct work groups");
        let m: BTreeSet<&String> = us.iter().map(|(u, _)| &unit_muni[u]).collect();
        assert_eq!(m.len(), 1, "{k:?}: one municipality");
    }
    assert_eq!(by_case.len() as u64, t["counts"]["cases"].as_u64().unwrap());
    let cit = &csv["citizen_responses"];
    let mut answered = BTreeSet::new();
    let mut cit_keys = BTreeSet::new();
    for r in cit.rows.iter() {
        assert!(cit_keys.insert((r[0].as_str(), r[1].as_str(), r[4].as_str())));
        let key = (r[0].clone(), r[3].clone());
        let us = &by_case[&key];
        let lead = &us.iter().find(|(_, l)| *l).unwrap().0;
        assert_eq!(unit_muni[lead], r[2], "citizen municipality = lead unit's");
        answered.insert(key);
    }
    assert!(
        answered.len() < by_case.len(),
        "some citizens do not answer"
    );
    assert_eq!(
        answered.len() as u64,
        t["counts"]["citizens_responding"].as_u64().unwrap()
    );
}

#[test]
fn no_control_design_has_only_intervention_units() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(
        &tmp.path().join("nc"),
        &format!("{SMALL} --no-control --after-wave 1"),
    );
    let arms = Csv::read(&dir.join("intervention.csv"));
    assert!(arms.rows.iter().all(|r| r[1] == "intervention"));
    assert_eq!(truth(&dir)["params"]["no_control"], true);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = relcap()
        .args(["simulate", "--waves", "3", "--after-wave", "3", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--after-wave"), "{err}");
    let out = relcap()
        .args(["simulate", "--waves", "1", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--waves"));
    // Nothing half-written.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn demo_preset_reproduces_the_committed_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(&tmp.path().join("demo"), "--preset demo --seed 20261123");
    let fresh = files(&dir);
    let committed_dir = repo().join("data/demo");
    let mut committed = files(&committed_dir);
    assert!(
        committed.remove("README.md").is_some(),
        "data/demo/README.md"
    );
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &fresh {
        assert!(
            &committed[name] == bytes,
            "data/demo/{name} differs from a fresh `relcap simulate --preset demo --seed 20261123`"
        );
    }
    let total: usize = fresh.values().map(|b| b.len()).sum();
    assert!(total <= 5_300_000, "demo is {total} bytes");
    let t = truth(&dir);
    let names: Vec<&str> = t["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Hedensted", "Haderslev", "Randers", "Rødovre", "Stevns"]
    );
    assert_eq!(t["params"]["waves"], 3);
    assert_eq!(t["work_groups"].as_array().unwrap().len(), 8);
}

// ---- Scoring by hand (the demo config's rules) for the statistical checks below. ----

/// (wave, respondent) → (unit, RCap, SRM score), RCap and SRM missing when not scorable.
type RespondentScores = BTreeMap<(u32, String), (String, Option<f64>, Option<f64>)>;

/// The study as the checks need it: respondent RCap and SRM per (wave, respondent), units.
struct Scored {
    respondents: RespondentScores,
    unit_group: BTreeMap<String, String>,
    unit_muni: BTreeMap<String, String>,
}

fn score(dir: &Path) -> Scored {
    let units = Csv::read(&dir.join("units.csv"));
    let unit_group: BTreeMap<String, String> = units
        .rows
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    let unit_muni: BTreeMap<String, String> = units
        .rows
        .iter()
        .map(|r| (r[1].clone(), r[0].clone()))
        .collect();
    let emp = Csv::read(&dir.join("employee_responses.csv"));
    let (cw, ci, cu, ct, cit, cv) = (
        emp.col("wave"),
        emp.col("respondent_id"),
        emp.col("unit_id"),
        emp.col("target_group"),
        emp.col("item"),
        emp.col("value"),
    );
    let dimensions = instrument().dimensions();
    // Frequent: form code → score, the default value map (1→1, 2→3, 3→5, 4→4, 5→2).
    let freq = |v: f64| match v as u32 {
        1 => 1.0,
        2 => 3.0,
        3 => 5.0,
        4 => 4.0,
        5 => 2.0,
        other => panic!("frequent code {other}"),
    };
    let mut ties: BTreeMap<(u32, String, String), Vec<f64>> = BTreeMap::new();
    let mut srm: BTreeMap<(u32, String), Vec<f64>> = BTreeMap::new();
    let mut unit_of: BTreeMap<(u32, String), String> = BTreeMap::new();
    for r in &emp.rows {
        let wave: u32 = r[cw].parse().unwrap();
        let key = (wave, r[ci].clone());
        unit_of.insert(key.clone(), r[cu].clone());
        let v: Option<f64> = match r[cv].as_str() {
            "" | "9" => None,
            s => Some(s.parse().unwrap()),
        };
        let item = r[cit].as_str();
        if dimensions.iter().any(|d| d == item) {
            let e = ties
                .entry((wave, r[ci].clone(), r[ct].clone()))
                .or_default();
            if let Some(v) = v {
                e.push(if item == "frequent" { freq(v) } else { v });
            }
        } else if item.starts_with("srm_") {
            let e = srm.entry(key).or_default();
            if let Some(v) = v {
                e.push(v);
            }
        }
    }
    let mut rcap: BTreeMap<(u32, String), Vec<f64>> = BTreeMap::new();
    for ((w, i, g), xs) in &ties {
        let unit = &unit_of[&(*w, i.clone())];
        // Tie score needs 5 of 7; within-group ties are left out of RCap.
        if xs.len() >= 5 && &unit_group[unit] != g {
            rcap.entry((*w, i.clone()))
                .or_default()
                .push(xs.iter().sum::<f64>() / xs.len() as f64);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let respondents = unit_of
        .into_iter()
        .map(|(k, u)| {
            let r = rcap.get(&k).filter(|v| !v.is_empty()).map(|v| mean(v));
            // SRM: at least half (3 of 6) answered.
            let s = srm.get(&k).filter(|v| v.len() >= 3).map(|v| mean(v));
            (k, (u, r, s))
        })
        .collect();
    Scored {
        respondents,
        unit_group,
        unit_muni,
    }
}

/// ICC(1) by one-way ANOVA: (MSB − MSW) / (MSB + (k0 − 1) MSW),
/// k0 = (N − Σ n_j² / N) / (J − 1).
fn icc1(groups: &BTreeMap<String, Vec<f64>>) -> f64 {
    let n: usize = groups.values().map(Vec::len).sum();
    let j = groups.len();
    let (nf, jf) = (n as f64, j as f64);
    let grand = groups.values().flatten().sum::<f64>() / nf;
    let (mut ssb, mut ssw, mut sn2) = (0.0, 0.0, 0.0);
    for v in groups.values() {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        ssb += v.len() as f64 * (m - grand).powi(2);
        ssw += v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
        sn2 += (v.len() as f64).powi(2);
    }
    let msb = ssb / (jf - 1.0);
    let msw = ssw / (nf - jf);
    let k0 = (nf - sn2 / nf) / (jf - 1.0);
    (msb - msw) / (msb + (k0 - 1.0) * msw)
}

#[test]
fn icc_hand_computation() {
    // Two groups {1, 2, 3} and {4, 6}: grand mean 3.2, SSB = 3·1.44 + 2·3.24 = 10.8, SSW = 2 + 2
    // = 4; MSB = 10.8, MSW = 4/3; k0 = (5 − 13/5) / 1 = 2.4; ICC(1) = (10.8 − 4/3) /
    // (10.8 + 1.4 · 4/3) = 9.4667 / 12.6667 = 0.747368...
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), vec![1.0, 2.0, 3.0]);
    g.insert("b".to_string(), vec![4.0, 6.0]);
    assert!((icc1(&g) - (10.8 - 4.0 / 3.0) / (10.8 + 1.4 * 4.0 / 3.0)).abs() < 1e-12);
}

#[test]
fn icc1_of_respondent_rcap_by_unit_is_between_005_and_020() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(&tmp.path().join("demo"), "--preset demo --seed 20261123");
    let s = score(&dir);
    let t = truth(&dir);
    let expected = t["expected"]["icc1_observed_given_design_by_wave"]
        .as_array()
        .unwrap()
        .clone();
    for wave in 1..=3u32 {
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for ((w, _), (u, r, _)) in &s.respondents {
            if *w == wave {
                if let Some(r) = r {
                    groups.entry(u.clone()).or_default().push(*r);
                }
            }
        }
        let icc = icc1(&groups);
        let exp = expected[(wave - 1) as usize].as_f64().unwrap();
        eprintln!("wave {wave}: ICC(1) {icc:.4} (expected about {exp:.4})");
        assert!((0.05..=0.20).contains(&icc), "wave {wave}: ICC(1) = {icc}");
        // About 50 units of about 12: the standard error of ICC(1) is about 0.03.
        assert!((icc - exp).abs() < 0.08, "wave {wave}: {icc} vs {exp}");
    }
}

/// Mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[test]
fn answers_carry_the_true_h3_and_h2_effects() {
    // A larger study with a large H3 so that a unit-level difference in differences of observed
    // respondent RCap has a standard error far below the effect.
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(
        &tmp.path().join("fx"),
        "--municipalities 8 --employees-per-municipality 400 --waves 2 \
         --citizens-per-municipality 10 --effect-h3 0.6 --effect-h2 0.5 --seed 99",
    );
    let s = score(&dir);
    let t = truth(&dir);
    // H3: per unit, mean RCap in wave 2 minus wave 1; DiD = intervention − control.
    let arms = Csv::read(&dir.join("intervention.csv"));
    let arm: BTreeMap<&str, bool> = arms
        .rows
        .iter()
        .map(|r| (r[0].as_str(), r[1] == "intervention"))
        .collect();
    let mut by_unit_wave: BTreeMap<(String, u32), Vec<f64>> = BTreeMap::new();
    for ((w, _), (u, r, _)) in &s.respondents {
        if let Some(r) = r {
            by_unit_wave.entry((u.clone(), *w)).or_default().push(*r);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mut treated, mut control) = (Vec::new(), Vec::new());
    for u in s.unit_group.keys() {
        let (Some(a), Some(b)) = (
            by_unit_wave.get(&(u.clone(), 1)),
            by_unit_wave.get(&(u.clone(), 2)),
        ) else {
            continue;
        };
        let d = mean(b) - mean(a);
        if arm[u.as_str()] {
            treated.push(d);
        } else {
            control.push(d);
        }
    }
    let (mt, st) = mean_se(&treated);
    let (mc, sc) = (mean_se(&control).0, mean_se(&control).1);
    let did = mt - mc;
    let se = (st * st + sc * sc).sqrt();
    // The latents clamped at 1 and 5 (a few per cent) pull the observed effect slightly down.
    let clamped = t["counts"]["clamped_tie_items"].as_f64().unwrap()
        / t["counts"]["tie_item_latents"].as_f64().unwrap();
    let target = 0.6 * (1.0 - clamped);
    eprintln!("H3: DiD {did:.4} (se {se:.4}), target {target:.4}; control trend {mc:.4}");
    assert!(se < 0.06);
    assert!(
        (did - target).abs() < 4.0 * se + 0.02,
        "DiD {did} vs {target}"
    );
    // The control units move by the wave trend only (w_2 − w_1 = 0.05).
    assert!((mc - 0.05).abs() < 4.0 * sc + 0.02, "control trend {mc}");

    // H2: unit-level regression of wave-1 mean RCap on the manager's true SRM (truth_units.csv).
    let tu = Csv::read(&dir.join("truth_units.csv"));
    let srm_true: BTreeMap<&str, f64> = tu
        .rows
        .iter()
        .map(|r| {
            (
                r[tu.col("unit_id")].as_str(),
                r[tu.col("manager_srm")].parse().unwrap(),
            )
        })
        .collect();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let munis: Vec<&String> = s
        .unit_muni
        .values()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for u in s.unit_group.keys() {
        if let Some(v) = by_unit_wave.get(&(u.clone(), 1)) {
            xs.push((srm_true[u.as_str()], s.unit_muni[u].clone()));
            ys.push(mean(v));
        }
    }
    // Demean within municipality (municipality fixed effects), then the OLS slope and its SE.
    let demean = |v: &[f64]| -> Vec<f64> {
        let mut out = v.to_vec();
        for m in &munis {
            let idx: Vec<usize> = (0..v.len()).filter(|&i| &&xs[i].1 == m).collect();
            let mm = idx.iter().map(|&i| v[i]).sum::<f64>() / idx.len() as f64;
            for &i in &idx {
                out[i] -= mm;
            }
        }
        out
    };
    let x = demean(&xs.iter().map(|p| p.0).collect::<Vec<_>>());
    let y = demean(&ys);
    let sxx: f64 = x.iter().map(|a| a * a).sum();
    let slope = x.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>() / sxx;
    let resid: f64 = x.iter().zip(&y).map(|(a, b)| (b - slope * a).powi(2)).sum();
    let df = (x.len() - munis.len() - 1) as f64;
    let se = (resid / df / sxx).sqrt();
    let target = 0.5 * (1.0 - clamped);
    eprintln!("H2: slope {slope:.4} (se {se:.4}), target {target:.4}");
    assert!(se < 0.1);
    assert!(
        (slope - target).abs() < 4.0 * se + 0.02,
        "H2 slope {slope} vs {target}"
    );

    // Same-source bias: respondent RCap on the respondent's own SRM rating (wave 1, within
    // municipality) is the slope truth.json predicts from the common-method variance, not h2.
    let mut pts: Vec<(f64, f64, String)> = Vec::new();
    for ((w, _), (u, r, srm)) in &s.respondents {
        if let (1, Some(r), Some(srm)) = (*w, r, srm) {
            pts.push((*srm, *r, s.unit_muni[u].clone()));
        }
    }
    let (mut sxy, mut sxx, mut resid_pts) = (0.0, 0.0, Vec::new());
    for m in &munis {
        let cell: Vec<&(f64, f64, String)> = pts.iter().filter(|p| &&p.2 == m).collect();
        let mx = cell.iter().map(|p| p.0).sum::<f64>() / cell.len() as f64;
        let my = cell.iter().map(|p| p.1).sum::<f64>() / cell.len() as f64;
        for p in cell {
            sxy += (p.0 - mx) * (p.1 - my);
            sxx += (p.0 - mx).powi(2);
            resid_pts.push((p.0 - mx, p.1 - my));
        }
    }
    let own = sxy / sxx;
    let rss: f64 = resid_pts.iter().map(|(x, y)| (y - own * x).powi(2)).sum();
    let se_own = (rss / (resid_pts.len() - munis.len() - 1) as f64 / sxx).sqrt();
    let predicted = t["expected"]["h2_own_rating_slope_approx"]
        .as_f64()
        .unwrap();
    eprintln!("H2 own rating: slope {own:.4} (se {se_own:.4}), truth.json predicts {predicted:.4}");
    assert!(
        (own - predicted).abs() < 4.0 * se_own + 0.03,
        "own-rating slope {own} vs {predicted}"
    );
}

#[test]
fn citizen_quality_carries_the_true_h1_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = simulate(
        &tmp.path().join("h1"),
        "--municipalities 4 --employees-per-municipality 60 --waves 2 \
         --citizens-per-municipality 2500 --effect-h1 1.0 --seed 5",
    );
    let units = Csv::read(&dir.join("units.csv"));
    let unit_group: BTreeMap<&str, &str> = units
        .rows
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    let unit_muni: BTreeMap<&str, &str> = units
        .rows
        .iter()
        .map(|r| (r[1].as_str(), r[0].as_str()))
        .collect();
    // True case RCap from truth_dyads.csv: mean τ(g→h) − mu over ordered pairs of groups.
    let td = Csv::read(&dir.join("truth_dyads.csv"));
    let tau: BTreeMap<(String, String, String, String), f64> = td
        .rows
        .iter()
        .map(|r| {
            (
                (r[0].clone(), r[1].clone(), r[2].clone(), r[4].clone()),
                r[6].parse().unwrap(),
            )
        })
        .collect();
    let mu = truth(&dir)["model"]["mu"].as_f64().unwrap();
    let cases = Csv::read(&dir.join("case_involvement.csv"));
    let mut by_case: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for r in &cases.rows {
        by_case
            .entry((r[0].clone(), r[1].clone()))
            .or_default()
            .push(r[2].as_str());
    }
    let cit = Csv::read(&dir.join("citizen_responses.csv"));
    let mut answers: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in &cit.rows {
        if let Ok(v) = r[5].parse::<f64>() {
            if v <= 5.0 {
                answers
                    .entry((r[0].clone(), r[3].clone()))
                    .or_default()
                    .push(v);
            }
        }
    }
    // Per municipality and wave: Q on the true case RCap, pooled within-cell slope.
    let mut cells: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (key, us) in &by_case {
        if us.len() < 2 {
            continue;
        }
        let Some(a) = answers.get(key).filter(|a| a.len() >= 3) else {
            continue;
        };
        let q = a.iter().sum::<f64>() / a.len() as f64;
        let m = unit_muni[us[0]].to_string();
        let (mut sum, mut n) = (0.0, 0.0);
        for g in us {
            for h in us {
                if g != h {
                    sum += tau[&(
                        m.clone(),
                        unit_group[g].to_string(),
                        unit_group[h].to_string(),
                        key.0.clone(),
                    )] - mu;
                    n += 1.0;
                }
            }
        }
        cells
            .entry((m, key.0.clone()))
            .or_default()
            .push((sum / n, q));
    }
    let (mut sxy, mut sxx, mut pts) = (0.0, 0.0, Vec::new());
    for v in cells.values() {
        let mx = v.iter().map(|p| p.0).sum::<f64>() / v.len() as f64;
        let my = v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64;
        for (x, y) in v {
            sxy += (x - mx) * (y - my);
            sxx += (x - mx).powi(2);
            pts.push((x - mx, y - my));
        }
    }
    let slope = sxy / sxx;
    let resid: f64 = pts.iter().map(|(x, y)| (y - slope * x).powi(2)).sum();
    let se = (resid / (pts.len() - cells.len() - 1) as f64 / sxx).sqrt();
    eprintln!("H1: slope {slope:.4} (se {se:.4}) on {} cases", pts.len());
    assert!(se < 0.15);
    // Item non-response scores Q from the answered items, which leaves E[Q] unchanged; the
    // clamping of citizen latents is rare (under 1 per cent).
    assert!((slope - 1.0).abs() < 4.0 * se + 0.03, "H1 slope {slope}");
}
