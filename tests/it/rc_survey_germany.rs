//! The scoring functions of the `score` stage against a real, published Relational Coordination
//! survey: 816 German general practitioners rating hospital physicians on the seven RC items,
//! with the authors' own scores (`RC_score`, `RC_com`, `RC_rel`). The data are kept out of the
//! repository; where they are read from, and what happens without them, is told by
//! `common::german_survey`.
//!
//! Reference values (published with the data, computed by the authors in R): 705 respondents
//! answer all seven items; on them Cronbach's alpha of the seven items is 0.8392 (raw), the mean
//! RC score 2.6298 and its SD 0.7315. `RC1_COM` is already recoded to the sufficiency score, so
//! no value map is applied here.

use relcap::config::Config;
use relcap::stages::score::compute::{mean, sd, tie_score};
use relcap::stages::score::tie_rule;
use relcap::stats::reliability::cronbach_alpha;

use crate::common::{german_survey, german_survey_rows};

struct Row {
    items: Vec<Option<f64>>,
    rc_com: Option<f64>,
    rc_rel: Option<f64>,
    rc_score: Option<f64>,
}

fn cell(s: &str) -> Option<f64> {
    let s = s.trim().trim_matches('"');
    if s.is_empty() || s == "NA" {
        None
    } else {
        Some(s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")))
    }
}

fn load() -> Option<Vec<Row>> {
    let (header, lines) = german_survey_rows(&german_survey()?);
    let idx = |name: &str| header.iter().position(|h| h == name).unwrap();
    let items: Vec<usize> = [
        "RC1_COM", "RC2_COM", "RC3_COM", "RC4_COM", "RC5_REL", "RC6_REL", "RC7_REL",
    ]
    .iter()
    .map(|n| idx(n))
    .collect();
    let (com, rel, score) = (idx("RC_com"), idx("RC_rel"), idx("RC_score"));
    let rows = lines
        .iter()
        .map(|f| Row {
            items: items.iter().map(|&i| cell(&f[i])).collect(),
            rc_com: cell(&f[com]),
            rc_rel: cell(&f[rel]),
            rc_score: cell(&f[score]),
        })
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 816, "the published file has 816 respondents");
    Some(rows)
}

/// The demo config with the tie rule of the German scoring: all seven items for the RC score.
fn config(tie_min_items: usize) -> Config {
    Config::from_toml(&format!(
        "[study]\nname = \"de\"\ndata_dir = \"d\"\nout_dir = \"o\"\n\
         [scoring]\ntie_min_items = {tie_min_items}\n"
    ))
    .unwrap()
}

#[test]
fn tie_scores_equal_the_authors_rc_scores() {
    let Some(rows) = load() else { return };
    let rule = tie_rule(&config(7));
    let mut complete = 0;
    let (mut n_com, mut n_rel) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let s = tie_score(&r.items, &rule);
        // RC score: defined exactly where the authors' is, and equal to it.
        match (s.rc.value, r.rc_score) {
            (Some(ours), Some(theirs)) => {
                complete += 1;
                assert!(
                    (ours - theirs).abs() < 1e-12,
                    "row {}: rc {ours} vs RC_score {theirs}",
                    i + 2
                );
            }
            (None, None) => {}
            (ours, theirs) => panic!("row {}: rc {ours:?} vs RC_score {theirs:?}", i + 2),
        }
        // Sub-scores: computed only where all their items are answered (the default rule).
        for (ours, theirs, n) in [
            (s.communication.value, r.rc_com, &mut n_com),
            (s.relationship.value, r.rc_rel, &mut n_rel),
        ] {
            match (ours, theirs) {
                (Some(a), Some(b)) => {
                    *n += 1;
                    assert!((a - b).abs() < 1e-12, "row {}: {a} vs {b}", i + 2);
                }
                (None, None) => {}
                (a, b) => panic!("row {}: sub-score {a:?} vs {b:?}", i + 2),
            }
        }
    }
    assert_eq!(complete, 705);
    // Counted from the file: RC_com is NA on 98 rows, RC_rel on 103.
    assert_eq!(n_com, 816 - 98);
    assert_eq!(n_rel, 816 - 103);
}

#[test]
fn alpha_mean_and_sd_on_the_complete_cases() {
    let Some(rows) = load() else { return };
    let rule = tie_rule(&config(7));
    let complete: Vec<Vec<Option<f64>>> = rows
        .iter()
        .filter(|r| r.items.iter().all(Option::is_some))
        .map(|r| r.items.clone())
        .collect();
    assert_eq!(complete.len(), 705);
    let alpha = cronbach_alpha(&complete).unwrap();
    assert_eq!(alpha.n_complete, 705);
    assert_eq!(format!("{:.4}", alpha.raw_alpha), "0.8392");
    let scores: Vec<f64> = complete
        .iter()
        .filter_map(|r| tie_score(r, &rule).rc.value)
        .collect();
    assert_eq!(scores.len(), 705);
    assert_eq!(format!("{:.4}", mean(&scores).unwrap()), "2.6298");
    assert_eq!(format!("{:.4}", sd(&scores).unwrap()), "0.7315");
}

#[test]
fn the_default_five_of_seven_rule_scores_more_respondents() {
    let Some(rows) = load() else { return };
    let rule = tie_rule(&config(5));
    // Counted from the file: 705 complete, 18 with one item missing, 3 with two → 726 scored
    // under "at least 5 of 7"; the 1 + 1 + 88 with 4, 5 or 7 missing stay unscored.
    let scored = rows
        .iter()
        .filter(|r| tie_score(&r.items, &rule).rc.value.is_some())
        .count();
    assert_eq!(scored, 726);
}
