//! Sharded `relcap power` and `relcap validate` (`pipeline/sim_study/shard.rs`): shards run as
//! separate processes and merged give the unsharded run's files byte for byte; the Slurm scripts
//! of docs/cluster.md (`scripts/slurm/`) do so under a stand-in `sbatch`; merging refuses a
//! replication missing or held twice and partials of different settings; bad K/N is a usage
//! error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{bin, output_within, relcap, repo, RUN_LIMIT};

/// A small power grid: two sizes of a two-municipality design, two replications each.
fn power_args() -> Vec<String> {
    let config = repo().join("config/study.toml");
    [
        "--config",
        config.to_str().unwrap(),
        "--replications",
        "2",
        "--employees-per-municipality",
        "100,150",
        "--municipalities",
        "2",
        "--citizens-per-municipality",
        "80",
        "--seed",
        "11",
    ]
    .map(String::from)
    .to_vec()
}

/// Every file of `dir` by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn assert_same_files(a: &Path, b: &Path, names: &[&str]) {
    let (fa, fb) = (files(a), files(b));
    let keys: Vec<&str> = fa.keys().map(String::as_str).collect();
    assert_eq!(keys, names, "files of {}", a.display());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Runs `relcap ARGS` in `dir`, asserting success, and returns its stderr.
fn run_ok(dir: &Path, args: &[String]) -> String {
    let out = relcap()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "relcap {args:?} failed: {err}");
    err
}

/// Runs `relcap ARGS`, asserting failure with exit code `code`, and returns its stderr.
fn run_fails(dir: &Path, args: &[String], code: i32) -> String {
    let out = relcap().current_dir(dir).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "relcap {args:?}: {err}");
    err
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A stand-in for Slurm's `sbatch`: an array job's tasks run as parallel local processes with
/// SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT set, and a job with a dependency runs only
/// after them, as `afterok` would; each call is logged.
const FAKE_SBATCH: &str = r#"#!/bin/bash
set -euo pipefail
array=""
dep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --parsable) ;;
        --array=*) array="${1#--array=}" ;;
        --dependency=*) dep="${1#--dependency=}" ;;
        -*) echo "fake sbatch: unexpected option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
script="$1"
shift
grep -q '^#SBATCH --time=' "$script"
echo "array=$array dependency=$dep script=$(basename "$script") args=$*" >> "$FAKE_SBATCH_LOG"
if [ -n "$array" ]; then
    n="${array#1-}"
    pids=()
    for k in $(seq 1 "$n"); do
        SLURM_ARRAY_TASK_ID=$k SLURM_ARRAY_TASK_COUNT=$n SLURM_CPUS_PER_TASK=1 \
            bash "$script" "$@" > "logs/task-$k.log" 2>&1 &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p"; done
    echo "4242;cluster"
else
    [ "$dep" = "afterok:4242" ] || { echo "fake sbatch: the merge must wait for the shards" >&2; exit 3; }
    bash "$script" "$@" > logs/merge.log 2>&1
    echo 4243
fi
"#;

#[test]
fn power_shards_queued_by_the_slurm_scripts_merge_into_the_unsharded_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut args = strings(&["power", "-q", "--threads", "2", "--out"]);
    args.push(d.join("whole").to_string_lossy().into_owned());
    args.extend(power_args());
    run_ok(d, &args);

    // The scripts of docs/cluster.md, with a stand-in sbatch: 3 shards of 2 replications (the
    // third is empty), each a process of its own, then the merge.
    let fake = d.join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let sbatch = fake.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = d.join("sbatch.log");
    let mut submit = Command::new("bash");
    submit
        .current_dir(d)
        .arg(repo().join("scripts/slurm/submit.sh"))
        .args(["power", "3"])
        .args(power_args())
        .env("PATH", path)
        .env("RELCAP", bin())
        .env("PARTS", d.join("parts"))
        .env("OUT", d.join("merged"))
        .env("FAKE_SBATCH_LOG", &log)
        .env_remove("RELCAP_PSEUDONYM_KEY");
    let out = output_within(&mut submit, RUN_LIMIT).unwrap();
    let logs = |name: &str| std::fs::read_to_string(d.join("logs").join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "submit.sh failed: {}\n{}\ntask 1: {}\nmerge: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs("task-1.log"),
        logs("merge.log")
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.starts_with("array=1-3 dependency= script=shard.sbatch args=power --config"));
    assert!(calls.contains("array= dependency=afterok:4242 script=merge.sbatch args=power"));
    let parts: Vec<String> = files(&d.join("parts")).into_keys().collect();
    assert_eq!(
        parts,
        [
            "power-1-of-3.partial",
            "power-2-of-3.partial",
            "power-3-of-3.partial"
        ]
    );
    let (t2, t3) = (logs("task-2.log"), logs("task-3.log"));
    assert!(t2.contains("shard 2/3: replication 1 (1 of 2)"), "{t2}");
    assert!(t3.contains("shard 3/3: no replications (0 of 2)"), "{t3}");
    assert_same_files(
        &d.join("whole"),
        &d.join("merged"),
        &["power.csv", "power.json", "power.svg"],
    );
}

#[test]
fn validate_shards_merge_into_the_unsharded_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let config = repo().join("config/study.toml");
    let common = strings(&[
        "--config",
        config.to_str().unwrap(),
        "--replications",
        "2",
        "--reference-replications",
        "2",
        "--reference-scale",
        "2",
        "--employees-per-municipality",
        "100",
        "--municipalities",
        "2",
        "--citizens-per-municipality",
        "80",
        "--seed",
        "5",
    ]);
    let with = |head: &[&str], out: &Path| {
        let mut a = strings(head);
        a.push("--out".into());
        a.push(out.to_string_lossy().into_owned());
        a.extend(common.iter().cloned());
        a
    };
    run_ok(
        d,
        &with(&["validate", "-q", "--threads", "2"], &d.join("whole")),
    );
    // Two shards as separate processes at the same time.
    let shards: Vec<(PathBuf, std::process::Child)> = (1..=2)
        .map(|k| {
            let part = d.join(format!("v{k}.partial"));
            let shard = format!("{k}/2");
            let child = crate::common::relcap_command()
                .current_dir(d)
                .args(with(
                    &["validate", "--threads", "1", "--shard", &shard],
                    &part,
                ))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (part, child)
        })
        .collect();
    let parts: Vec<PathBuf> = shards
        .into_iter()
        .map(|(p, mut c)| {
            assert!(c.wait().unwrap().success(), "shard {}", p.display());
            p
        })
        .collect();
    // In reverse order: the merge sorts by replication.
    let mut merge = strings(&["validate", "merge", "-q", "--out"]);
    merge.push(d.join("merged").to_string_lossy().into_owned());
    merge.extend(parts.iter().rev().map(|p| p.to_string_lossy().into_owned()));
    run_ok(d, &merge);
    assert_same_files(
        &d.join("whole"),
        &d.join("merged"),
        &["h3_models.csv", "replications.csv", "validate.json"],
    );
    // A validate partial is not a power partial.
    let mut wrong = strings(&["power", "merge", "--out"]);
    wrong.push(d.join("x").to_string_lossy().into_owned());
    wrong.push(parts[0].to_string_lossy().into_owned());
    let err = run_fails(d, &wrong, 1);
    assert!(
        err.contains("is a partial result of `relcap validate`, not of `relcap power`"),
        "{err}"
    );
}

#[test]
fn merge_refuses_a_missing_or_doubled_replication_and_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Three shard runs at the same time: 1/2 and 2/2 of one run, 1/2 of a run with another seed.
    let runs: Vec<(String, std::process::Child)> = [(1, "1"), (2, "1"), (1, "2")]
        .iter()
        .map(|&(k, seed)| {
            let part = d.join(format!("s{seed}-{k}-of-2.partial"));
            let child = crate::common::relcap_command()
                .current_dir(d)
                .args([
                    "power",
                    "-q",
                    "--threads",
                    "1",
                    "--shard",
                    &format!("{k}/2"),
                ])
                .arg("--out")
                .arg(&part)
                .args(["--replications", "2", "--employees-per-municipality", "100"])
                .args(["--municipalities", "2", "--citizens-per-municipality", "80"])
                .args(["--seed", seed])
                .spawn()
                .unwrap();
            (part.to_string_lossy().into_owned(), child)
        })
        .collect();
    let parts: Vec<String> = runs
        .into_iter()
        .map(|(p, mut c)| {
            assert!(c.wait().unwrap().success(), "{p}");
            p
        })
        .collect();
    let (a, b, c) = (&parts[0], &parts[1], &parts[2]);
    let merge = |parts: &[&String]| {
        let mut m = strings(&["power", "merge", "--out"]);
        m.push(d.join("merged").to_string_lossy().into_owned());
        m.extend(parts.iter().map(|p| p.to_string()));
        m
    };
    let err = run_fails(d, &merge(&[a]), 1);
    assert!(err.contains("replication 1 of the cell 1"), "{err}");
    assert!(err.contains("shard 2/2"), "{err}");
    let err = run_fails(d, &merge(&[a, b, a]), 1);
    assert!(
        err.contains("replication 0 of the cell 1") && err.contains("is in both"),
        "{err}"
    );
    let err = run_fails(d, &merge(&[a, b, c]), 1);
    assert!(
        err.contains("different settings") && err.contains("seed: 1 vs 2"),
        "{err}"
    );
    assert!(!d.join("merged").exists(), "a refused merge writes nothing");
    run_ok(d, &merge(&[b, a]));
    assert!(d.join("merged/power.csv").is_file());
}

#[test]
fn bad_shards_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (shard, says) in [
        ("0/4", "between 1 and N = 4"),
        ("5/4", "between 1 and N = 4"),
        ("1/0", "at least 1"),
        ("3", "is not K/N"),
    ] {
        for cmd in ["power", "validate"] {
            let err = run_fails(
                d,
                &strings(&[cmd, "--shard", shard, "--out", "p.partial"]),
                2,
            );
            assert!(
                err.contains(says) && err.contains("--shard"),
                "{cmd} {shard}: {err}"
            );
        }
    }
    // With --shard, --out names the partial file, not a folder.
    let err = run_fails(d, &strings(&["power", "--shard", "1/2", "--out", "."]), 1);
    assert!(err.contains("is a folder"), "{err}");
    // merge needs partial results.
    run_fails(d, &strings(&["power", "merge", "--out", "m"]), 2);
}

#[test]
fn docs_cluster_shows_the_slurm_scripts_as_they_are() {
    let doc = std::fs::read_to_string(repo().join("docs/cluster.md")).unwrap();
    for name in ["submit.sh", "shard.sbatch", "merge.sbatch"] {
        let script = std::fs::read_to_string(repo().join("scripts/slurm").join(name)).unwrap();
        assert!(
            doc.contains(&format!("```bash\n{script}```\n")),
            "docs/cluster.md does not show scripts/slurm/{name} as it is"
        );
    }
    assert!(doc.contains("#SBATCH --array=1-") && doc.contains("--dependency=afterok:"));
}
