//! Model matrices against R's `model.frame` + `model.matrix` (`fixtures/design.R` →
//! `design.json`): column names, values, kept rows and response, compared exactly (values up to
//! 1e-12 relative for transformed columns such as `log(z)`).

mod common;
use common::data_from_json;
use relcap_stats::design::build;
use relcap_stats::formula::parse;
use serde_json::Value;

#[test]
fn model_matrices_match_r() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/design.json"
    ))
    .expect("fixture design.json");
    let fx: Value = serde_json::from_str(&text).expect("JSON");
    let data = data_from_json(&fx["data"]);
    let mut max_err = 0.0f64;
    for case in fx["cases"].as_array().expect("cases") {
        let f = case["formula"].as_str().unwrap();
        let des = build(&parse(f).expect(f), &data).expect(f);
        let names: Vec<&str> = case["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(des.names, names, "{f}");
        let kept: Vec<usize> = case["kept_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(des.kept_rows, kept, "{f}");
        assert_eq!(des.n_dropped, data.n_rows() - kept.len(), "{f}");
        for (i, v) in case["y"].as_array().unwrap().iter().enumerate() {
            let r = v.as_f64().unwrap();
            let e = (des.y[i] - r).abs() / r.abs().max(1.0);
            assert!(e < 1e-12, "{f}: y[{i}] {} vs {r}", des.y[i]);
            max_err = max_err.max(e);
        }
        for (j, col) in case["x"].as_array().unwrap().iter().enumerate() {
            for (i, v) in col.as_array().unwrap().iter().enumerate() {
                let r = v.as_f64().unwrap();
                let ours = des.x[(i, j)];
                let e = (ours - r).abs() / r.abs().max(1.0);
                assert!(e < 1e-12, "{f}: x[{i},{j}] {ours} vs {r}");
                max_err = max_err.max(e);
            }
        }
    }
    println!("max relative difference from R's model.matrix: {max_err:.1e}");
}
