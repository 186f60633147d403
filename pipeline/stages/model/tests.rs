//! Tests of the model stage on small synthetic linked tables with known effects (written here,
//! in the link stage's layout). The numbers of the fits themselves are checked against R in
//! `tests/it/model.rs`; these tests check the stage's logic: designs, skips, verdicts, accounting,
//! meta-analysis and paired test by hand, determinism.

use std::path::Path;

use polars::prelude::{Column, DataFrame};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::*;
use crate::config::Config;
use crate::pseudonym::Pseudonymizer;

#[derive(Clone, Copy)]
struct Truth {
    h1: f64,
    h2: f64,
    h3: f64,
    controls: bool,
}

fn n(rng: &mut ChaCha8Rng, sd: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    z * sd
}

fn write(df: &mut DataFrame, path: &Path) {
    crate::io::write_parquet(df, path, &crate::io::ParquetMeta::stage("link")).unwrap();
}

/// Writes `link/{h1_cases,h2_respondents,h3_panel}.parquet` of a synthetic study under `out`.
fn write_link(out: &Path, t: Truth, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let munis = ["Aby", "Bøby", "Cby", "Dby"];
    // Units: (municipality, unit_id, srm, effect, intervention).
    let mut units = Vec::new();
    for m in munis {
        let a = n(&mut rng, 0.1);
        for u in 0..8 {
            units.push((
                m,
                format!("{m}-U{u}"),
                n(&mut rng, 0.5),
                a + n(&mut rng, 0.2),
                !t.controls || u % 2 == 0,
            ));
        }
    }
    // Respondents per unit-wave.
    let (mut w, mut mu, mut un, mut rid, mut rc, mut srm_own) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut interv = vec![];
    for (m, u, s, b, i) in &units {
        let people: Vec<(f64, f64)> = (0..10)
            .map(|_| (n(&mut rng, 0.4), n(&mut rng, 0.4)))
            .collect();
        for wave in 1..=2i64 {
            for (k, (c, q)) in people.iter().enumerate() {
                if rng.gen::<f64>() < 0.15 {
                    continue;
                }
                let post = (wave - 1) as f64;
                let y = 3.0 + b + c + t.h2 * s + t.h3 * post * (*i as u8 as f64) + n(&mut rng, 0.4);
                w.push(wave);
                mu.push(m.to_string());
                un.push(u.clone());
                rid.push(format!("{u}-R{k}"));
                rc.push(Some(y));
                srm_own.push(Some(3.3 + s + q + n(&mut rng, 0.3)));
                interv.push(*i);
            }
        }
    }
    let nr = w.len();
    // One respondent without RCap: excluded by link.
    rc[3] = None;
    // Leave-one-out SRM and its unit-wave mean over the sample.
    let key = |j: usize| (w[j], un[j].clone());
    let mut groups: BTreeMap<(i64, String), Vec<usize>> = BTreeMap::new();
    for j in 0..nr {
        groups.entry(key(j)).or_default().push(j);
    }
    let mut others = vec![None; nr];
    for idx in groups.values() {
        for &j in idx {
            let o: Vec<f64> = idx
                .iter()
                .filter(|&&k| k != j)
                .filter_map(|&k| srm_own[k])
                .collect();
            if !o.is_empty() {
                others[j] = Some(o.iter().sum::<f64>() / o.len() as f64);
            }
        }
    }
    let excl: Vec<Option<String>> = (0..nr)
        .map(|j| {
            if rc[j].is_none() {
                Some("no_rcap".to_string())
            } else if others[j].is_none() {
                Some("no_srm_others".to_string())
            } else {
                None
            }
        })
        .collect();
    let mut between = vec![None; nr];
    for idx in groups.values() {
        let v: Vec<f64> = idx
            .iter()
            .filter(|&&j| excl[j].is_none())
            .filter_map(|&j| others[j])
            .collect();
        if v.is_empty() {
            continue;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        for &j in idx {
            if excl[j].is_none() {
                between[j] = Some(mean);
            }
        }
    }
    let within: Vec<Option<f64>> = (0..nr)
        .map(|j| match (others[j], between[j]) {
            (Some(o), Some(b)) => Some(o - b),
            _ => None,
        })
        .collect();
    let mut h2 = DataFrame::new(
        nr,
        vec![
            Column::new("wave".into(), w.clone()),
            Column::new("municipality".into(), mu),
            Column::new("unit_id".into(), un),
            Column::new("respondent_id".into(), rid),
            Column::new("rcap".into(), rc.clone()),
            Column::new("srm".into(), srm_own.clone()),
            Column::new("srm_others".into(), others),
            Column::new("srm_between".into(), between),
            Column::new("srm_within".into(), within),
            Column::new("exclusion".into(), excl),
        ],
    )
    .unwrap();
    write(&mut h2, &out.join("link/h2_respondents.parquet"));

    // H3 panel: the same rows, window waves 1 and 2; one extra row outside the design.
    let post: Vec<Option<i64>> = w.iter().map(|x| Some(x - 1)).collect();
    let iv: Vec<Option<i64>> = interv.iter().map(|&b| Some(b as i64)).collect();
    let ex: Vec<Option<String>> = rc
        .iter()
        .map(|y| y.is_none().then(|| "no_rcap".to_string()))
        .collect();
    let mut h3 = h2
        .select(["wave", "municipality", "unit_id", "respondent_id", "rcap"])
        .unwrap()
        .hstack(&[
            Column::new("intervention".into(), iv),
            Column::new("after_wave".into(), vec![Some(1i64); nr]),
            Column::new("post".into(), post),
            Column::new("exclusion".into(), ex),
        ])
        .unwrap();
    let outside = polars::df!(
        "wave" => [1i64],
        "municipality" => ["Aby"],
        "unit_id" => ["Aby-X"],
        "respondent_id" => ["Aby-X-R0"],
        "rcap" => [Some(3.0)],
        "intervention" => [None::<i64>],
        "after_wave" => [None::<i64>],
        "post" => [None::<i64>],
        "exclusion" => [Some("unit_not_in_design")],
    )
    .unwrap();
    h3.vstack_mut(&outside).unwrap();
    write(&mut h3, &out.join("link/h3_panel.parquet"));

    // H1 cases.
    let (mut cw, mut cm, mut cl, mut cq, mut cr, mut cu, mut ce) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut cid = vec![];
    for (mi, m) in munis.iter().enumerate() {
        for wave in 1..=2i64 {
            for c in 0..50 {
                let lead = &units[mi * 8 + rng.gen_range(0..8)].1;
                let x = 3.0 + n(&mut rng, 0.4);
                let single = c % 10 == 0;
                cw.push(wave);
                cm.push(m.to_string());
                cl.push(lead.clone());
                cid.push(format!("{m}-{wave}-C{c}"));
                cq.push(Some(3.0 + t.h1 * (x - 3.0) + n(&mut rng, 0.5)));
                cr.push((!single).then_some(x));
                cu.push(Some(x + n(&mut rng, 0.2)));
                ce.push(single.then(|| "fewer_than_two_groups".to_string()));
            }
        }
    }
    let mut h1 = polars::df!(
        "wave" => cw,
        "case_id" => cid,
        "municipality" => cm,
        "lead_unit_id" => cl,
        "quality" => cq,
        "case_rcap" => cr,
        "unit_rcap_mean" => cu,
        "exclusion" => ce,
    )
    .unwrap();
    write(&mut h1, &out.join("link/h1_cases.parquet"));
}

fn config(extra: &str) -> Config {
    let text = format!(
        "[study]\nname = \"t\"\ndata_dir = \".\"\nout_dir = \".\"\n[privacy]\ndemo_key = \"k\"\n{extra}"
    );
    Config::from_toml(&text).unwrap()
}

fn run_stage(out: &Path, cfg: &Config) -> Result<StageSummary> {
    let ps = Pseudonymizer::from_config(&cfg.privacy).unwrap();
    let ctx = StageContext {
        config: cfg,
        data_dir: out.to_path_buf(),
        out_dir: out.to_path_buf(),
        reports_dir: out.join("reports"),
        pseudonymizer: &ps,
        progress: false,
        memo: &crate::memo::Memo::disabled(),
        fingerprint: None,
        store: None,
    };
    super::run(&ctx)
}

fn results(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("model/results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn verdict<'a>(r: &'a serde_json::Value, h: &str) -> &'a serde_json::Value {
    r["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hypothesis"] == h)
        .unwrap()
}

const LARGE: Truth = Truth {
    h1: 0.8,
    h2: 0.6,
    h3: 0.5,
    controls: true,
};

/// Large effects, intervention units only.
const NO_CONTROLS: Truth = Truth {
    controls: false,
    ..LARGE
};

#[test]
fn large_effects_are_supported_and_outputs_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), LARGE, 1);
    let cfg = config("");
    let s = run_stage(dir.path(), &cfg).unwrap();
    let r = results(dir.path());
    for h in ["H1", "H2", "H3"] {
        let v = verdict(&r, h);
        assert_eq!(v["verdict"], "supported", "{h}: {v}");
        assert!(v["estimate"].as_f64().unwrap() > 0.0);
        assert!(v["p_holm"].as_f64().unwrap() >= v["p_value"].as_f64().unwrap());
    }
    assert_eq!(verdict(&r, "H3")["design"], "cluster_did");
    assert_eq!(verdict(&r, "H3")["model"], "cluster_did");
    assert_eq!(verdict(&r, "H2")["model"], "unit_wave_within");
    assert_eq!(verdict(&r, "H2")["primary_term"], "srm_unit");
    // Row accounting balances for every linked table.
    for (t, c) in &s.tables {
        assert!(c.balanced(), "{t}: {c:?}");
    }
    assert_eq!(
        s.tables["h1_cases"].excluded["link_fewer_than_two_groups"],
        40
    );
    assert_eq!(s.tables["h3_panel"].excluded["link_unit_not_in_design"], 1);
    assert_eq!(s.counts["meta_analyses"], 6);
    // Two runs give the same bytes.
    let files = [
        "results.parquet",
        "fit.parquet",
        "variance_components.parquet",
        "heterogeneity.parquet",
        "results.json",
    ];
    let h: Vec<String> = files
        .iter()
        .map(|f| crate::io::hash_file(&dir.path().join("model").join(f)).unwrap())
        .collect();
    run_stage(dir.path(), &cfg).unwrap();
    for (f, h) in files.iter().zip(&h) {
        assert_eq!(
            &crate::io::hash_file(&dir.path().join("model").join(f)).unwrap(),
            h,
            "{f}"
        );
    }
    // The per-municipality models have no municipality term.
    let fit = crate::io::read_parquet(&dir.path().join("model/fit.parquet")).unwrap();
    let scope = fit.column("scope").unwrap().str().unwrap().clone();
    let formula = fit.column("formula").unwrap().str().unwrap().clone();
    for (s, f) in scope.iter().zip(formula.iter()) {
        let (s, f) = (s.unwrap(), f.unwrap());
        assert_eq!(f.contains("C(municipality)"), s == POOLED, "{s}: {f}");
    }
}

#[test]
fn zero_effects_give_no_small_primary_p() {
    for seed in [2, 3] {
        let dir = tempfile::tempdir().unwrap();
        write_link(
            dir.path(),
            Truth {
                h1: 0.0,
                h2: 0.0,
                h3: 0.0,
                controls: true,
            },
            seed,
        );
        run_stage(dir.path(), &config("")).unwrap();
        let r = results(dir.path());
        for h in ["H1", "H2", "H3"] {
            let p = verdict(&r, h)["p_value"].as_f64().unwrap();
            assert!(p > 0.001, "seed {seed} {h}: p = {p}");
        }
    }
}

#[test]
fn meta_analysis_matches_a_hand_computed_dersimonian_laird() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), LARGE, 4);
    run_stage(dir.path(), &config("")).unwrap();
    let r = results(dir.path());
    let rows = r["results"].as_array().unwrap();
    let per: Vec<(f64, f64)> = rows
        .iter()
        .filter(|x| x["hypothesis"] == "H2" && x["primary"] == true)
        .filter(|x| !["pooled", "meta_reml", "meta_dl"].contains(&x["scope"].as_str().unwrap()))
        .map(|x| {
            (
                x["estimate"].as_f64().unwrap(),
                x["std_error"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per.len(), 4);
    // DerSimonian–Laird by hand.
    let w: Vec<f64> = per.iter().map(|(_, s)| 1.0 / (s * s)).collect();
    let sw: f64 = w.iter().sum();
    let sw2: f64 = w.iter().map(|x| x * x).sum();
    let mu0 = per.iter().zip(&w).map(|((y, _), w)| w * y).sum::<f64>() / sw;
    let q: f64 = per
        .iter()
        .zip(&w)
        .map(|((y, _), w)| w * (y - mu0).powi(2))
        .sum();
    let tau2 = ((q - 3.0) / (sw - sw2 / sw)).max(0.0);
    let ws: Vec<f64> = per.iter().map(|(_, s)| 1.0 / (s * s + tau2)).collect();
    let mu = per.iter().zip(&ws).map(|((y, _), w)| w * y).sum::<f64>() / ws.iter().sum::<f64>();
    // Hartung–Knapp–Sidik–Jonkman (the default `model.meta.test`): the variance scaled by
    // s² = Σ w*(y − μ)² / (k − 1), t on k − 1 = 3 df.
    let s2 = per
        .iter()
        .zip(&ws)
        .map(|((y, _), w)| w * (y - mu).powi(2))
        .sum::<f64>()
        / 3.0;
    let se = (s2 / ws.iter().sum::<f64>()).sqrt();
    let dl = rows
        .iter()
        .find(|x| x["hypothesis"] == "H2" && x["scope"] == "meta_dl")
        .unwrap();
    assert!((dl["estimate"].as_f64().unwrap() - mu).abs() < 1e-12);
    assert!((dl["std_error"].as_f64().unwrap() - se).abs() < 1e-12);
    assert_eq!(dl["df"], 3.0);
    let t = mu / se;
    assert!((dl["statistic"].as_f64().unwrap() - t).abs() < 1e-9 * t.abs());
    assert_eq!(dl["n_groups"], 4);
    let het = crate::io::read_parquet(&dir.path().join("model/heterogeneity.parquet")).unwrap();
    assert_eq!(het.height(), 6);
    let q_col = het.column("q").unwrap().f64().unwrap().clone();
    let hyp = het.column("hypothesis").unwrap().str().unwrap().clone();
    let q_h2 = hyp
        .iter()
        .zip(q_col.iter())
        .find(|(h, _)| *h == Some("H2"))
        .and_then(|(_, q)| q)
        .unwrap();
    assert!((q_h2 - q).abs() < 1e-9 * q.max(1.0));
}

#[test]
fn without_controls_h3_is_pre_post_with_a_paired_test_checked_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), NO_CONTROLS, 5);
    let s = run_stage(dir.path(), &config("")).unwrap();
    let r = results(dir.path());
    let v = verdict(&r, "H3");
    assert_eq!(v["design"], "pre_post");
    assert_eq!(v["primary_term"], "post");
    // A large pre/post change, but no control units: never "supported", no test, no Holm.
    assert_eq!(v["verdict"], NOT_TESTABLE);
    assert_eq!(v["supported"], serde_json::Value::Null);
    assert_eq!(v["p_value"], serde_json::Value::Null);
    assert_eq!(v["p_holm"], serde_json::Value::Null);
    assert!(v["estimate"].as_f64().unwrap() > 0.0);
    assert!(s.warnings.iter().any(|w| w.contains("no control units")));
    // The paired test by hand: respondents with both waves.
    let h3 = frame::read(&dir.path().join("link/h3_panel.parquet"), &columns(3), &[]).unwrap();
    let (rows, _) = sample(&h3);
    let mut by: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for i in rows {
        let e = by
            .entry(h3.str_at("respondent_id", i).unwrap().to_string())
            .or_default();
        let y = h3.num_at("rcap", i);
        if h3.num_at("post", i) == Some(0.0) {
            e.0 = y;
        } else {
            e.1 = y;
        }
    }
    let d: Vec<f64> = by
        .values()
        .filter_map(|(a, b)| Some((*b)? - (*a)?))
        .collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (d.len() as f64 - 1.0)).sqrt();
    let row = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == "paired_t" && x["scope"] == "pooled")
        .unwrap();
    assert_eq!(row["n_obs"].as_u64().unwrap() as usize, d.len());
    assert!((row["estimate"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!((row["std_estimate"].as_f64().unwrap() - mean / sd).abs() < 1e-12);
    assert!((row["std_error"].as_f64().unwrap() - sd / (d.len() as f64).sqrt()).abs() < 1e-12);
    // Attrition: everyone before minus those in both.
    let att = r["attrition"].as_array().unwrap();
    let all = att
        .iter()
        .find(|a| a["scope"] == "pooled" && a["arm"] == "all")
        .unwrap();
    assert_eq!(all["in_both"].as_u64().unwrap() as usize, d.len());
    assert_eq!(
        all["left"].as_u64().unwrap(),
        all["before"].as_u64().unwrap() - all["in_both"].as_u64().unwrap()
    );
}

#[test]
fn cross_sections_have_no_respondent_term_and_no_paired_test() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), NO_CONTROLS, 6);
    run_stage(
        dir.path(),
        &config("[model.h3]\nprimary_term = \"post:intervention\"\ndirection = \"positive\"\ndesign = \"cross_section\"\n"),
    )
    .unwrap();
    let r = results(dir.path());
    assert!(r["attrition"].as_array().unwrap().is_empty());
    let fit = crate::io::read_parquet(&dir.path().join("model/fit.parquet")).unwrap();
    let model = fit.column("model").unwrap().str().unwrap().clone();
    let formula = fit.column("formula").unwrap().str().unwrap().clone();
    for (m, f) in model.iter().zip(formula.iter()) {
        assert_ne!(m, Some("paired_t"));
        if let (Some(_), Some(f)) = (m, f) {
            if f.starts_with("rcap ~ post") {
                assert!(!f.contains("respondent_id"), "{f}");
            }
        }
    }
}

#[test]
fn small_municipalities_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), LARGE, 7);
    let s = run_stage(dir.path(), &config("[model]\nmin_clusters = 9\n")).unwrap();
    // 8 units per municipality: every per-municipality model is skipped (H1 clusters too:
    // at most 8 lead units), none is fitted outside the pooled scope.
    // Pooled: H1 2, H2 5 (with the intervention-adjusted sensitivity model), H3 4
    // (cluster_did, diff_in_diff, cluster_did_both_waves, event_study; cluster_did_cr2 is
    // cluster_did's fit read with CR2 standard errors, not counted again).
    assert_eq!(s.counts["models_fitted"], 11);
    assert_eq!(s.counts["models_skipped_too_few_clusters"], 44);
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("meta-analysis needs at least 2")));
    let fit = crate::io::read_parquet(&dir.path().join("model/fit.parquet")).unwrap();
    // 55 and the 5 rows of cluster_did_cr2, and one `h1_corrected` row per scope (pooled and 4 municipalities; not corrected
    // here: the synthetic link tables have no dyad errors).
    assert_eq!(fit.height(), 60 + 5);
    let het = crate::io::read_parquet(&dir.path().join("model/heterogeneity.parquet")).unwrap();
    assert_eq!(het.height(), 0);
    let r = results(dir.path());
    assert_eq!(verdict(&r, "H1")["verdict"], "supported");
}

#[test]
fn direction_and_primary_term_are_settings() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), LARGE, 8);
    run_stage(
        dir.path(),
        &config(
            "[model.h1]\nprimary_term = \"case_rcap\"\ndirection = \"negative\"\nvcov = \"cr1\"\ncluster = \"lead_unit_id\"\n\
             [model.h2]\nprimary_term = \"srm_others\"\ndirection = \"positive\"\n",
        ),
    )
    .unwrap();
    let r = results(dir.path());
    assert_eq!(verdict(&r, "H1")["verdict"], "not_supported");
    assert_eq!(verdict(&r, "H2")["model"], "leave_one_out");
    let e = run_stage(
        dir.path(),
        &config("[model.h2]\nprimary_term = \"nope\"\ndirection = \"positive\"\n"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("model.h2.primary_term"), "{e}");
}

/// The tables are read on two threads; whichever table is missing, the error names it (with
/// none written, H1's, the first the sequential order read).
#[test]
fn each_missing_link_table_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = run_stage(dir.path(), &config("")).unwrap_err();
    assert!(format!("{e:#}").contains("h1_cases.parquet"), "{e:#}");
    for table in ["h1_cases", "h2_respondents", "h3_panel"] {
        let dir = tempfile::tempdir().unwrap();
        write_link(dir.path(), LARGE, 9);
        std::fs::remove_file(dir.path().join(format!("link/{table}.parquet"))).unwrap();
        let e = run_stage(dir.path(), &config("")).unwrap_err();
        assert!(
            format!("{e:#}").contains(&format!("{table}.parquet")),
            "{e:#}"
        );
    }
}

#[test]
fn holm_and_bonferroni_adjustments() {
    let p = [0.01, 0.04, f64::NAN];
    assert_eq!(adjust(&p, Correction::Holm)[..2], [0.02, 0.04]);
    assert_eq!(adjust(&p, Correction::Bonferroni)[..2], [0.02, 0.08]);
    assert!(adjust(&p, Correction::Holm)[2].is_nan());
    assert_eq!(adjust(&p, Correction::None)[..2], [0.01, 0.04]);
}

#[test]
fn srm_unit_is_the_unit_mean_of_srm_between_over_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    write_link(dir.path(), LARGE, 9);
    let mut t = frame::read(
        &dir.path().join("link/h2_respondents.parquet"),
        &columns(2),
        &[],
    )
    .unwrap();
    let (rows, _) = sample(&t);
    add_unit_wave_split(&mut t, &rows).unwrap();
    let u = "Aby-U3";
    let vals: Vec<f64> = rows
        .iter()
        .filter(|&&i| t.str_at("unit_id", i) == Some(u))
        .map(|&i| t.num_at("srm_between", i).unwrap())
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    for &i in &rows {
        if t.str_at("unit_id", i) == Some(u) {
            assert!((t.num_at("srm_unit", i).unwrap() - mean).abs() < 1e-12);
            let w = t.num_at("srm_between", i).unwrap() - mean;
            assert!((t.num_at("srm_wave", i).unwrap() - w).abs() < 1e-12);
        }
    }
    // Rows outside the sample have no split.
    let out = (0..t.n_rows()).find(|i| !rows.contains(i)).unwrap();
    assert_eq!(t.num_at("srm_unit", out), None);
}

/// The hypotheses are read, planned and fitted on two threads; when several fail, the error
/// reported is the one the sequential order (every read, then every plan, then the fits, H1
/// before H2 before H3) would have met first.
#[test]
fn the_first_error_in_the_sequential_order_is_reported() {
    use Step::{Fit, Plan, Read};
    let outcome = |f: Option<(Step, u8)>| -> std::result::Result<(), StepError> {
        match f {
            None => Ok(()),
            Some((s, h)) => Err((s, h, anyhow::anyhow!("{s:?} H{h}"))),
        }
    };
    assert_eq!(
        first_error(vec![outcome(None), outcome(None)])
            .unwrap()
            .len(),
        2
    );
    // Each job's first failed step (None: no error), the error reported.
    type Jobs<'a> = &'a [Option<(Step, u8)>];
    let cases: [(Jobs, &str); 8] = [
        (&[Some((Fit, 1)), None], "Fit H1"),
        (&[None, Some((Plan, 3))], "Plan H3"),
        // Both failed fitting: H1's, as when the hypotheses ran one after the other.
        (&[Some((Fit, 1)), Some((Fit, 2))], "Fit H1"),
        // H2's table could not be read: the sequential stage stopped there, before planning H1.
        (&[Some((Plan, 1)), Some((Read, 2)), None], "Read H2"),
        (&[Some((Plan, 1)), None, Some((Read, 3))], "Read H3"),
        (
            &[Some((Read, 3)), Some((Read, 1)), Some((Read, 2))],
            "Read H1",
        ),
        (&[Some((Plan, 1)), Some((Plan, 3))], "Plan H1"),
        (&[None, Some((Plan, 3)), Some((Plan, 2))], "Plan H2"),
    ];
    for (jobs, want) in cases {
        let got = first_error(jobs.iter().map(|&j| outcome(j)).collect()).unwrap_err();
        assert_eq!(got.to_string(), want, "{jobs:?}");
    }
}
