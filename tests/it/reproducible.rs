//! Reproducible runs, driven through the binary as a researcher or reviewer would: two runs give
//! the same bytes, a rerun skips what is up to date, a setting reruns exactly the stages that
//! read it, `status` and `verify` catch a tampered output, a run killed mid-stage recovers, and
//! every Parquet output carries its stage and fingerprint for another Parquet reader.
//!
//! The study is the demo study (`config/study.toml` + `data/demo`), every run writing into a
//! temporary folder (`--out`, `--reports`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    copy_dir, files, ok, output_within, read_json, relcap_command, repo, stderr_until,
    write_demo_config as config, RUN_LIMIT,
};

/// The demo study's data folder.
fn data_dir() -> PathBuf {
    let demo = repo().join("data/demo");
    assert!(
        demo.join("units.csv").is_file() || demo.join("units.parquet").is_file(),
        "the demo study is missing: {}",
        demo.display()
    );
    demo
}

/// Runs `cmd` (relcap) to its end within [`RUN_LIMIT`].
fn output(cmd: &mut Command) -> Output {
    output_within(cmd, RUN_LIMIT).expect("relcap starts")
}

struct Study {
    /// The temporary folder holding `root`, removed with the study (None for the baseline).
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    config: PathBuf,
}

impl Study {
    fn new() -> Study {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let config = config(&root, "study.toml", &[]);
        Study {
            _tmp: Some(tmp),
            root,
            config,
        }
    }

    /// A new study whose output `out` (and `out-reports`) starts as a copy of the baseline run.
    fn from_baseline() -> Study {
        let s = Study::new();
        for name in ["out", "out-reports"] {
            copy_dir(&baseline().join(name), &s.out(name));
        }
        s
    }

    fn out(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `relcap <cmd> --config C --data D --out OUT --reports R <extra>`.
    fn cmd(&self, cmd: &str, config: &Path, out: &str, extra: &[&str]) -> Command {
        let mut c = relcap_command();
        c.arg(cmd)
            .arg("--config")
            .arg(config)
            .arg("--data")
            .arg(data_dir())
            .arg("--out")
            .arg(self.out(out))
            .arg("--reports")
            .arg(self.out(&format!("{out}-reports")))
            .args(extra)
            .env_remove("RELCAP_FAULT_STALL_BEFORE_RENAME");
        c
    }

    fn run(&self, config: &Path, out: &str, extra: &[&str]) -> Output {
        let o = output(&mut self.cmd("run", config, out, extra));
        ok(&o);
        o
    }

    fn manifest(&self, out: &str) -> Value {
        read_json(&self.out(out).join("manifest.json"))
    }
}

/// The demo study run once per test process, into the target folder: the tests that start
/// from a finished run copy it (`Study::from_baseline`) or only read it.
fn baseline() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let tag = &blake3::hash(env!("CARGO_MANIFEST_DIR").as_bytes()).to_hex()[..12];
        let root =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reproducible-baseline-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let study = Study {
            _tmp: None,
            root: root.clone(),
            config: config(&root, "study.toml", &[]),
        };
        study.run(&study.config, "out", &[]);
        root
    })
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

const ALL: [&str; 6] = ["ingest", "clean", "score", "link", "model", "report"];

/// blake3 of every output file under `dir` (all but the manifest and the store of kept results,
/// `.cache`), by relative path.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    if !dir.is_dir() {
        return BTreeMap::new();
    }
    files(dir)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel == "manifest.json" || rel.starts_with(".cache/") {
                return None;
            }
            let h = blake3::hash(&std::fs::read(&p).unwrap());
            Some((rel, h.to_hex().to_string()))
        })
        .collect()
}

fn parquet_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .filter(|p| p.ends_with(".parquet"))
        .collect()
}

#[test]
fn two_runs_give_byte_identical_outputs_and_a_rerun_skips_every_stage() {
    let s = Study::new();
    s.run(&s.config, "b", &[]);
    let base = baseline();
    let (a, b) = (tree(&base.join("out")), tree(&s.out("b")));
    assert!(
        parquet_files(&base.join("out")).len() >= 10,
        "too few outputs: {a:?}"
    );
    assert_eq!(a, b, "two runs into two folders differ");
    assert_eq!(
        tree(&base.join("out-reports")),
        tree(&s.out("b-reports")),
        "reports differ"
    );
    let m = s.manifest("b");
    assert_eq!(names(&m["ran"]), ALL);
    for st in m["stages"].as_array().unwrap() {
        assert_eq!(st["status"], "complete");
        assert!(st["seconds"].as_f64().unwrap() >= 0.0);
    }

    // The second run in the same folder skips everything and touches nothing.
    let o = s.run(&s.config, "b", &[]);
    let log = String::from_utf8_lossy(&o.stderr);
    for stage in ALL {
        assert!(
            log.contains(&format!("[relcap] {stage:<7} up to date, skipped")),
            "{log}"
        );
    }
    let m2 = s.manifest("b");
    assert_eq!(names(&m2["ran"]), Vec::<String>::new());
    assert_eq!(names(&m2["skipped"]), ALL);
    assert_ne!(m2["run_id"], m["run_id"]);
    assert_eq!(
        m2["stages"], m["stages"],
        "stage records are kept as they were"
    );
    assert_eq!(tree(&s.out("b")), a);

    // --force reruns a stage that is up to date; it writes the same bytes, so the stages after
    // it stay up to date.
    s.run(&s.config, "b", &["--force", "--only", "ingest"]);
    assert_eq!(names(&s.manifest("b")["ran"]), ["ingest"]);
    s.run(&s.config, "b", &[]);
    assert_eq!(names(&s.manifest("b")["skipped"]), ALL);
    assert_eq!(tree(&s.out("b")), a);

    let st = output(&mut s.cmd("status", &s.config, "b", &[]));
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
}

#[test]
fn a_setting_reruns_exactly_the_stages_that_read_it() {
    let s = Study::from_baseline();
    let before = tree(&s.out("out"));

    // A model setting: status names it, and the run reruns model and report only.
    let model = config(&s.root, "model.toml", &[("alpha = 0.05", "alpha = 0.01")]);
    let st = output(&mut s.cmd("status", &model, "out", &["--json"]));
    assert_eq!(st.status.code(), Some(1), "status must exit 1 when stale");
    let js: Value = serde_json::from_slice(&st.stdout).unwrap();
    let stale: Vec<&str> = js["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["up_to_date"] == false)
        .map(|x| x["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stale, ["model", "report"]);
    let reason = &js["stages"][4]["reasons"][0];
    assert_eq!(reason["kind"], "config");
    assert_eq!(reason["key"], "model.alpha");
    assert_eq!(reason["old"], 0.05);
    assert_eq!(reason["new"], 0.01);
    s.run(&model, "out", &[]);
    let m = s.manifest("out");
    assert_eq!(names(&m["ran"]), ["model", "report"]);
    assert_eq!(names(&m["skipped"]), ["ingest", "clean", "score", "link"]);
    let after = tree(&s.out("out"));
    for (path, hash) in &before {
        if !(path.starts_with("model") || path.starts_with("report")) {
            assert_eq!(after.get(path), Some(hash), "{path} changed");
        }
    }

    // A scoring setting: score onwards.
    let scoring = config(
        &s.root,
        "scoring.toml",
        &[
            ("alpha = 0.05", "alpha = 0.01"),
            ("hub_relevance = 4.0", "hub_relevance = 3.5"),
        ],
    );
    let text = String::from_utf8_lossy(&output(&mut s.cmd("status", &scoring, "out", &[])).stdout)
        .into_owned();
    assert!(
        text.contains("config scoring.hub_relevance: 4.0 → 3.5"),
        "{text}"
    );
    s.run(&scoring, "out", &[]);
    assert_eq!(
        names(&s.manifest("out")["ran"]),
        ["score", "link", "model", "report"]
    );

    // Back to the original config: the same stages rerun, to the original bytes.
    s.run(&s.config, "out", &[]);
    assert_eq!(
        names(&s.manifest("out")["ran"]),
        ["score", "link", "model", "report"]
    );
    assert_eq!(tree(&s.out("out")), before);
}

/// The counts of the orchestrator's log line "reused R results of the previous run, computed C"
/// for `stage`.
fn reuse(log: &str, stage: &str) -> (u64, u64) {
    let prefix = format!("[relcap] {stage:<7} reused ");
    let line = log
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no reuse line for {stage}:\n{log}"));
    let words: Vec<&str> = line[prefix.len()..].split_whitespace().collect();
    (
        words[0].parse().unwrap(),
        words[words.len() - 1].parse().unwrap(),
    )
}

#[test]
fn a_model_setting_reuses_the_kept_fits_and_gives_the_bytes_of_a_fresh_run() {
    let s = Study::from_baseline();

    // model.alpha changes no fit: every regression and every scope's bootstrap of H1's
    // correction is taken from the store (and the codebook's item statistics), and every output
    // (and report) is the same to the byte as a run from scratch with that setting.
    let model = config(&s.root, "model.toml", &[("alpha = 0.05", "alpha = 0.01")]);
    let o = s.run(&model, "out", &[]);
    let (reused, computed) = reuse(&String::from_utf8_lossy(&o.stderr), "model");
    assert!(reused >= 20, "only {reused} fits reused");
    assert_eq!(computed, 0);
    // The report is written again, with the codebook's item statistics from the store.
    let report = reuse(&String::from_utf8_lossy(&o.stderr), "report");
    assert_eq!(
        report,
        (1, 0),
        "the item statistics are not taken from the store"
    );
    s.run(&model, "fresh", &[]);
    assert_eq!(tree(&s.out("out")), tree(&s.out("fresh")));
    // The store itself holds the same bytes whichever run wrote it.
    let kept = tree(&s.out("out").join(".cache"));
    assert!(kept.len() as u64 >= reused, "{kept:?}");
    assert_eq!(kept, tree(&s.out("fresh").join(".cache")));
    assert_eq!(tree(&s.out("out-reports")), tree(&s.out("fresh-reports")));
    assert_ne!(
        tree(&s.out("out"))["model/results.parquet"],
        tree(&baseline().join("out"))["model/results.parquet"],
        "the intervals must change with alpha"
    );

    // An estimator setting of one hypothesis refits that hypothesis's models only.
    let ml = config(
        &s.root,
        "ml.toml",
        &[
            ("alpha = 0.05", "alpha = 0.01"),
            (
                "primary_term = \"srm_unit\"\ndirection = \"positive\"\nmethod = \"reml\"",
                "primary_term = \"srm_unit\"\ndirection = \"positive\"\nmethod = \"ml\"",
            ),
        ],
    );
    let o = s.run(&ml, "out", &[]);
    let (reused, computed) = reuse(&String::from_utf8_lossy(&o.stderr), "model");
    assert!(
        reused > 0 && computed > 0,
        "reused {reused}, computed {computed}"
    );
    s.run(&ml, "fresh-ml", &[]);
    assert_eq!(tree(&s.out("out")), tree(&s.out("fresh-ml")));

    // A damaged entry is a miss, not an error: back to the original settings with every kept
    // fit overwritten by garbage, the run computes them again, to the baseline's bytes.
    let cache = s.out("out").join(".cache/model");
    let mut damaged = 0;
    for e in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(e.unwrap().path(), b"not a fit").unwrap();
        damaged += 1;
    }
    assert!(damaged > 0);
    let o = s.run(&s.config, "out", &[]);
    let (reused, computed) = reuse(&String::from_utf8_lossy(&o.stderr), "model");
    assert_eq!((reused, computed), (0, damaged));
    assert_eq!(tree(&s.out("out")), tree(&baseline().join("out")));

    // --force reads nothing back.
    let o = s.run(&s.config, "out", &["--force", "--only", "model"]);
    let (reused, _) = reuse(&String::from_utf8_lossy(&o.stderr), "model");
    assert_eq!(reused, 0);
}

/// Rewrites `path` with the first non-null value of column `col` (an integer) plus one, through
/// relcap's own writer (same settings and footer), as a hand edit of a published file would.
fn tamper(path: &Path, column: &str) {
    use polars::prelude::{Int64Chunked, IntoColumn};
    let col = column;
    let mut df = relcap::io::read_parquet(path).unwrap();
    let s = df.column(col).unwrap().i64().unwrap().clone();
    let i = s.iter().position(|v| v.is_some()).unwrap();
    let changed: Int64Chunked = s
        .iter()
        .enumerate()
        .map(|(j, v)| if j == i { v.map(|x| x + 1) } else { v })
        .collect();
    df.replace(col, changed.with_name(col.into()).into_column())
        .unwrap();
    let meta = relcap::inspect::parquet_footer(path).unwrap();
    let pm = relcap::io::ParquetMeta {
        fingerprint: meta.get("relcap.fingerprint").map(str::to_string),
        ..relcap::io::ParquetMeta::stage(meta.get("relcap.stage").unwrap())
    };
    relcap::io::write_parquet(&mut df, path, &pm).unwrap();
}

#[test]
fn a_tampered_output_is_caught_by_status_and_verify() {
    let s = Study::from_baseline();
    let manifest = s.out("out").join("manifest.json");
    let st = output(&mut s.cmd("status", &s.config, "out", &[]));
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );

    tamper(&s.out("out").join("ingest/units.parquet"), "line");

    let st = output(&mut s.cmd("status", &s.config, "out", &[]));
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(st.status.code(), Some(1), "{text}");
    assert!(
        text.contains("output ingest/units.parquet was modified after the run"),
        "{text}"
    );
    assert!(text.contains("stage ingest is stale"), "{text}");

    // verify reruns the study: every other file is identical, the tampered one differs, with
    // the column and the number of values.
    let v = output(
        relcap_command()
            .args(["verify", "-q", "--json", "--manifest"])
            .arg(&manifest),
    );
    assert_eq!(
        v.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let js: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(js["ok"], false);
    let files = js["files"].as_array().unwrap();
    let n = tree(&s.out("out")).len() + tree(&s.out("out-reports")).len();
    assert_eq!(files.len(), n);
    let bad: Vec<&Value> = files
        .iter()
        .filter(|f| f["verdict"] != "identical")
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["path"], "ingest/units.parquet");
    assert_eq!(bad[0]["verdict"], "differs");
    let detail = bad[0]["detail"].as_str().unwrap();
    assert!(detail.contains("modified after the run"), "{detail}");
    assert!(detail.contains("line: 1 of"), "{detail}");
    let text = String::from_utf8_lossy(
        &output(
            relcap_command()
                .args(["inspect", "--rows", "1"])
                .arg(s.out("out").join("ingest/units.parquet")),
        )
        .stdout,
    )
    .into_owned();
    assert!(text.contains("relcap.stage"), "{text}");

    // The next run repairs it: ingest reruns and writes the recorded bytes again, so the
    // stages reading it find their inputs unchanged and stay as they are.
    s.run(&s.config, "out", &[]);
    assert_eq!(names(&s.manifest("out")["ran"]), ["ingest"]);
    let st = output(&mut s.cmd("status", &s.config, "out", &[]));
    assert!(st.status.success());
    assert_eq!(tree(&s.out("out")), tree(&baseline().join("out")));
}

#[test]
fn a_run_killed_mid_stage_recovers_on_the_next_run() {
    let s = Study::new();
    let reference = tree(&baseline().join("out"));

    // Stall the clean stage with one table written to a temporary file but not renamed, and
    // kill the process there.
    let target = "clean/employee_responses.parquet";
    let mut child = s
        .cmd("run", &s.config, "out", &[])
        .env("RELCAP_FAULT_STALL_BEFORE_RENAME", target)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = stderr_until(&mut child, "fault injection: stalled", RUN_LIMIT);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(log.contains("fault injection: stalled"), "{log}");

    // Only complete files under their final names: the interrupted table is not there, its
    // temporary file is, and every Parquet file present reads back.
    let out = s.out("out");
    assert!(!out.join(target).exists());
    let temps: Vec<String> = std::fs::read_dir(out.join("clean"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    for p in parquet_files(&out) {
        relcap::io::read_parquet(&out.join(&p)).unwrap();
    }
    let m = s.manifest("out");
    assert_eq!(m["status"], "running");
    let states: Vec<(&str, &str)> = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["status"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("ingest", "complete"), ("clean", "running")]);
    let st = output(&mut s.cmd("status", &s.config, "out", &[]));
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("interrupted in run"), "{text}");

    // As if the kill had also hit a manifest write half-way.
    std::fs::write(out.join(".relcap-AbC123.tmp"), "{\"manifest_ver").unwrap();

    // The next run redoes clean and what follows, not ingest, and ends where a clean run does
    // (no temporary file left).
    s.run(&s.config, "out", &[]);
    let m = s.manifest("out");
    assert_eq!(names(&m["skipped"]), ["ingest"]);
    assert_eq!(
        names(&m["ran"]),
        ["clean", "score", "link", "model", "report"]
    );
    assert_eq!(tree(&out), reference);
}

#[test]
fn every_parquet_output_carries_its_stage_and_fingerprint_for_another_reader() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let out = baseline().join("out");
    let m = read_json(&out.join("manifest.json"));
    let fingerprints: BTreeMap<String, String> = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["fingerprint"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let files = parquet_files(&out);
    assert!(files.len() >= 10, "{files:?}");
    for rel in &files {
        let stage = rel.split('/').next().unwrap();
        let path = out.join(rel);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata().file_metadata();
        let kv: BTreeMap<String, Option<String>> = meta
            .key_value_metadata()
            .unwrap_or_else(|| panic!("{rel}: no key-value metadata"))
            .iter()
            .map(|k| (k.key.clone(), k.value.clone()))
            .collect();
        let get = |k: &str| kv.get(k).cloned().flatten();
        assert_eq!(get("relcap.stage").as_deref(), Some(stage), "{rel}");
        assert_eq!(
            get("relcap.fingerprint").as_ref(),
            Some(&fingerprints[stage]),
            "{rel}"
        );
        assert_eq!(get("relcap.schema_version").as_deref(), Some("1"), "{rel}");
        assert_eq!(meta.created_by(), Some("Polars"), "{rel}");
        // The other reader decodes every row.
        let mut rows = 0i64;
        for row in reader.get_row_iter(None).unwrap() {
            row.unwrap_or_else(|e| panic!("{rel}: {e}"));
            rows += 1;
        }
        assert_eq!(rows, meta.num_rows(), "{rel}");
    }

    // pyarrow, when this machine has it, reads the same metadata.
    let python = Duration::from_secs(120);
    let probe = output_within(
        Command::new("python3").args(["-c", "import pyarrow"]),
        python,
    );
    if probe.is_ok_and(|o| o.status.success()) {
        let script = "import sys, pyarrow.parquet as pq\n\
                      for p in sys.argv[1:]:\n\
                      \x20   md = pq.read_metadata(p).metadata\n\
                      \x20   t = pq.read_table(p)\n\
                      \x20   print(md[b'relcap.stage'].decode(), md[b'relcap.fingerprint'].decode(), t.num_rows)\n";
        let o = output_within(
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .args(files.iter().map(|f| out.join(f))),
            python,
        )
        .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout);
        for (line, rel) in text.lines().zip(&files) {
            let stage = rel.split('/').next().unwrap();
            assert!(
                line.starts_with(&format!("{stage} {} ", fingerprints[stage])),
                "{rel}: {line}"
            );
        }
        assert_eq!(text.lines().count(), files.len());
    }
}

#[test]
fn inspect_shows_rows_metadata_schema_and_first_rows() {
    let file = baseline().join("out/ingest/units.parquet");
    let o = output(relcap_command().args(["inspect", "--rows", "2"]).arg(&file));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let rows = relcap::io::read_parquet(&file).unwrap().height();
    assert!(text.contains(&format!("rows        {rows}\n")), "{text}");
    assert!(text.contains("relcap.stage           ingest"), "{text}");
    assert!(text.contains("relcap.fingerprint"), "{text}");
    assert!(text.contains("  unit_id "), "{text}");
    assert!(text.contains(&format!("first 2 of {rows} rows")), "{text}");
    let o = output(
        relcap_command()
            .args(["inspect"])
            .arg(baseline().join("out/nope.parquet")),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.parquet"));
}

#[test]
fn a_stage_can_start_from_files_that_no_run_recorded() {
    // Outputs written by hand (or by an older relcap) have no manifest: `--only link` uses
    // the files of score and clean as they are and records their hashes.
    let s = Study::from_baseline();
    std::fs::remove_file(s.out("out").join("manifest.json")).unwrap();
    let o = s.run(&s.config, "out", &["--only", "link"]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains("which no run recorded: used as they are"),
        "{log}"
    );
    let m = s.manifest("out");
    assert_eq!(names(&m["ran"]), ["link"]);
    let link = &m["stages"][0];
    assert_eq!(link["name"], "link");
    let inputs: Vec<&str> = link["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(inputs.contains(&"clean/units.parquet"), "{inputs:?}");
    assert!(inputs.contains(&"score/dyads.parquet"), "{inputs:?}");
    // Without a record of clean or score, status calls them never run.
    let st = output(&mut s.cmd("status", &s.config, "out", &[]));
    assert_eq!(st.status.code(), Some(1));
}
