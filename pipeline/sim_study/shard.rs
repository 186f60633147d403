//! Sharded simulation studies: `relcap power --shard K/N` and `relcap validate --shard K/N` run
//! only their share of the replications and write a *partial result*; `relcap power merge` and
//! `relcap validate merge` combine the partials into exactly the files an unsharded run writes.
//!
//! **Which replications a shard runs.** Replication r (0-based, as in `replications.csv`)
//! belongs to shard (r mod N) + 1: shard K of N runs K − 1, K − 1 + N, K − 1 + 2N, ... (round
//! robin, so every shard gets replications from the whole range and shards differ in size by at
//! most one). N larger than the replications is allowed: the shards past them are empty. In
//! `relcap power` replication r is run in every cell of the grid by the shard that holds r; in
//! `relcap validate` the large-sample reference replications are shared out by the same rule.
//! Replication r is seeded from the base seed and r alone (`replication_seed`), whichever shard
//! and thread runs it, so the split changes no result: the merged files equal the unsharded
//! run's byte for byte.
//!
//! **The partial result** is one MessagePack file (a map with named fields, readable with any
//! MessagePack library; MessagePack keeps every 64-bit float exactly, NaN and infinities
//! included, which JSON does not), written atomically. Its fields:
//!
//! | field | meaning |
//! | --- | --- |
//! | `format` | `relcap-partial/1`: the layout of this file |
//! | `command` | `power` or `validate` |
//! | `relcap_version` | the version of relcap that wrote it |
//! | `build` | BLAKE3 of the relcap executable that wrote it (hex): partials merge only with the executable that made them |
//! | `settings_hash` | BLAKE3 (hex) of `settings` as MessagePack |
//! | `settings` | everything that decides the result: replications, seed, the design (the grid's sizes and effect scenarios for `power`, the reference replications and scale for `validate`), the study configuration's `[model]` section, and `config_hash`, BLAKE3 of the whole configuration except `[study]` (names and folders, which these commands do not use) |
//! | `shard` | `{k, n}`: shard K of N |
//! | `groups` | the replication groups (`power`: one per cell of the grid, sizes × scenarios in the order of `power.csv`; `validate`: `replications`, then `reference replications`), each `{name, total, held, results}`: the group's size, the replication numbers this shard holds (ascending) and each one's raw result (`sim_study::Replication`: index, seed, the primary tests, per-municipality estimates, the truth's facts, H3's models, the error of a failed replication) |
//!
//! **Merging** refuses, naming the files and the fault: a file that is not a partial result or is
//! damaged (its settings do not match their hash), a partial of the other command, of another
//! format, version or executable, partials of different settings (naming the settings that
//! differ), a replication that no partial holds (naming the shard it belongs to) and a
//! replication that two partials hold.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Replication;

/// The layout of a partial result (bumped when it changes).
pub const FORMAT: &str = "relcap-partial/1";

/// Shard K of N (1 ≤ K ≤ N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub k: usize,
    pub n: usize,
}

impl FromStr for ShardSpec {
    type Err = String;

    /// "K/N" with 1 ≤ K ≤ N.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not K/N (shard K of N, e.g. 3/20)"))?;
        let num = |x: &str, what: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?}: {what} {x:?} is not a whole number"))
        };
        let (k, n) = (num(k, "K")?, num(n, "N")?);
        if n == 0 {
            return Err(format!(
                "{s:?}: N (the number of shards) must be at least 1"
            ));
        }
        if k == 0 || k > n {
            return Err(format!(
                "{s:?}: K must be between 1 and N = {n} (shards are numbered from 1)"
            ));
        }
        Ok(ShardSpec { k, n })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl ShardSpec {
    /// The shard of `n` that holds replication `r`.
    pub fn of(r: usize, n: usize) -> ShardSpec {
        ShardSpec { k: r % n + 1, n }
    }

    /// The replications of `0..total` this shard holds, ascending.
    pub fn share(self, total: usize) -> Vec<usize> {
        (self.k - 1..total).step_by(self.n).collect()
    }
}

/// One group of replications in a partial result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// What the group is (a cell of the power grid, or validate's replications).
    pub name: String,
    /// Replications in the whole group (over all shards).
    pub total: usize,
    /// The replication numbers this shard holds, ascending.
    pub held: Vec<usize>,
    /// Their results, in the order of `held`.
    pub results: Vec<Replication>,
}

/// A partial result (the table in the module documentation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Partial<S> {
    pub format: String,
    pub command: String,
    pub relcap_version: String,
    pub build: String,
    pub settings_hash: String,
    pub settings: S,
    pub shard: ShardSpec,
    pub groups: Vec<Group>,
}

/// The fields of a partial that say what it is, read before the rest.
#[derive(Debug, Deserialize)]
struct Header {
    format: String,
    command: String,
    relcap_version: String,
    build: String,
}

/// BLAKE3 (hex) of `value` as MessagePack with named fields.
pub fn hash_of<T: Serialize>(value: &T) -> Result<String> {
    let bytes = rmp_serde::to_vec_named(value).context("cannot encode the settings")?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// BLAKE3 (hex) of the running relcap executable: partials are merged only with the build that
/// made them, since another build may compute other last digits.
pub fn build_id() -> Result<String> {
    static ID: OnceLock<String> = OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(id.clone());
    }
    let exe = std::env::current_exe().context("cannot find the relcap executable")?;
    let mut file = std::fs::File::open(&exe)
        .with_context(|| format!("cannot read the executable {}", exe.display()))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read the executable {}", exe.display()))?;
    Ok(ID
        .get_or_init(|| hasher.finalize().to_hex().to_string())
        .clone())
}

/// Checks that `out` can name the partial file (not a folder), before any replication runs.
pub fn check_partial_path(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {} is a folder; with --shard it names the partial result file to write \
             (e.g. parts/shard-1.partial)",
            out.display()
        );
    }
    Ok(())
}

/// A new partial result of `command` for `shard`, with this executable's version and build.
pub fn partial<S: Serialize>(
    command: &str,
    settings: S,
    shard: ShardSpec,
    groups: Vec<Group>,
) -> Result<Partial<S>> {
    Ok(Partial {
        format: FORMAT.into(),
        command: command.into(),
        relcap_version: env!("CARGO_PKG_VERSION").into(),
        build: build_id()?,
        settings_hash: hash_of(&settings)?,
        settings,
        shard,
        groups,
    })
}

/// Writes `partial` to `path` atomically.
pub fn write<S: Serialize>(partial: &Partial<S>, path: &Path) -> Result<()> {
    let bytes = rmp_serde::to_vec_named(partial).context("cannot encode the partial result")?;
    crate::io::write_atomic(path, |w| {
        std::io::Write::write_all(w, &bytes)?;
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads one partial of `command`, checking what it is before decoding the rest.
fn read_one<S: DeserializeOwned + Serialize>(path: &Path, command: &str) -> Result<Partial<S>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let h: Header = rmp_serde::from_slice(&bytes).map_err(|e| {
        anyhow!(
            "{} is not a relcap partial result (written by `relcap {command} --shard K/N`): {e}",
            path.display()
        )
    })?;
    if h.format != FORMAT {
        bail!(
            "{} has the partial format {:?}; this relcap reads {FORMAT:?}",
            path.display(),
            h.format
        );
    }
    if h.command != command {
        bail!(
            "{} is a partial result of `relcap {}`, not of `relcap {command}`",
            path.display(),
            h.command
        );
    }
    let (version, build) = (env!("CARGO_PKG_VERSION"), build_id()?);
    if h.relcap_version != version || h.build != build {
        bail!(
            "{} was written by relcap {} (build {}), but this is relcap {version} (build {}): \
             merge with the executable that ran the shards, or run them again with this one",
            path.display(),
            h.relcap_version,
            short(&h.build),
            short(&build)
        );
    }
    let p: Partial<S> = rmp_serde::from_slice(&bytes)
        .with_context(|| format!("{} is a damaged partial result", path.display()))?;
    if hash_of(&p.settings)? != p.settings_hash {
        bail!(
            "{} is damaged: its settings do not match their hash",
            path.display()
        );
    }
    for g in &p.groups {
        let indices: Vec<usize> = g.results.iter().map(|r| r.index).collect();
        if g.held != p.shard.share(g.total) || indices != g.held {
            bail!(
                "{} is damaged: its {} are not those of shard {}",
                path.display(),
                g.name,
                p.shard
            );
        }
    }
    Ok(p)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The top-level settings in which `a` and `b` differ, as "name: a vs b".
fn differences<S: Serialize>(a: &S, b: &S) -> Vec<String> {
    use serde_json::Value;
    let cut = |x: &Value| {
        let s = x.to_string();
        if s.chars().count() > 80 {
            format!("{}...", s.chars().take(80).collect::<String>())
        } else {
            s
        }
    };
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(Value::Object(a)), Ok(Value::Object(b))) => a
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| {
                let w = b.get(k).cloned().unwrap_or(Value::Null);
                format!("{k}: {} vs {}", cut(v), cut(&w))
            })
            .collect(),
        (Ok(a), Ok(b)) => vec![format!("{} vs {}", cut(&a), cut(&b))],
        _ => vec![],
    }
}

/// Reads the partials of `command` and checks that together they hold every replication of
/// every group exactly once; returns their settings and each group's results in replication
/// order.
pub fn read_all<S>(paths: &[PathBuf], command: &str) -> Result<(S, Vec<Group>)>
where
    S: DeserializeOwned + Serialize + Clone,
{
    if paths.is_empty() {
        bail!("no partial results to merge");
    }
    let parts: Vec<Partial<S>> = paths
        .iter()
        .map(|p| read_one(p, command))
        .collect::<Result<_>>()?;
    let first = &parts[0];
    for (p, path) in parts.iter().zip(paths).skip(1) {
        if p.settings_hash != first.settings_hash {
            bail!(
                "{} and {} were run with different settings ({}); merge only the shards of one run",
                paths[0].display(),
                path.display(),
                differences(&first.settings, &p.settings).join("; ")
            );
        }
        let shape = |q: &Partial<S>| -> Vec<(String, usize)> {
            q.groups.iter().map(|g| (g.name.clone(), g.total)).collect()
        };
        if shape(p) != shape(first) {
            bail!(
                "{} and {} hold different groups of replications",
                paths[0].display(),
                path.display()
            );
        }
    }
    let mut merged = Vec::new();
    for (gi, g0) in first.groups.iter().enumerate() {
        let mut slots: Vec<Option<(usize, &Replication)>> = vec![None; g0.total];
        for (pi, p) in parts.iter().enumerate() {
            for r in &p.groups[gi].results {
                if let Some((other, _)) = slots[r.index] {
                    bail!(
                        "replication {} of the {} is in both {} and {}: merge each shard once",
                        r.index,
                        g0.name,
                        paths[other].display(),
                        paths[pi].display()
                    );
                }
                slots[r.index] = Some((pi, r));
            }
        }
        let missing: Vec<usize> = (0..g0.total).filter(|&r| slots[r].is_none()).collect();
        if let Some(&r) = missing.first() {
            let n = first.shard.n;
            let shown: Vec<String> = missing.iter().take(10).map(|r| r.to_string()).collect();
            bail!(
                "replication{} {}{} of the {} {} in none of the {} partial results ({}); \
                 replication {r} belongs to shard {} (run with --shard {} and merge again)",
                if missing.len() > 1 { "s" } else { "" },
                shown.join(", "),
                if missing.len() > 10 { ", ..." } else { "" },
                g0.name,
                if missing.len() > 1 { "are" } else { "is" },
                parts.len(),
                path_list(paths),
                ShardSpec::of(r, n),
                ShardSpec::of(r, n)
            );
        }
        merged.push(Group {
            name: g0.name.clone(),
            total: g0.total,
            held: (0..g0.total).collect(),
            results: slots
                .into_iter()
                .map(|s| s.map(|(_, r)| r.clone()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| anyhow!("a replication is missing"))?,
        });
    }
    Ok((first.settings.clone(), merged))
}

/// Up to five paths, comma-separated.
fn path_list(paths: &[PathBuf]) -> String {
    let mut s: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > 5 {
        s.push(format!("and {} more", paths.len() - 5));
    }
    s.join(", ")
}

/// A group with the replications `held` of `results` (all of them, in order).
pub fn group(name: String, total: usize, held: &[usize], results: Vec<Replication>) -> Group {
    Group {
        name,
        total,
        held: held.to_vec(),
        results,
    }
}

/// The configuration hash of the settings: every section but `[study]` (names and folders,
/// which simulation studies do not use).
pub fn config_hash(config: &crate::config::Config) -> Result<String> {
    let mut c = config.clone();
    c.study = Default::default();
    hash_of(&c)
}

/// How many replications each group holds, for messages: "replications 0, 4, 8 (3 of 10)".
pub fn describe_held(held: &[usize], total: usize) -> String {
    let shown: Vec<String> = held.iter().take(8).map(|r| r.to_string()).collect();
    let more = if held.len() > 8 { ", ..." } else { "" };
    if held.is_empty() {
        format!("no replications (0 of {total})")
    } else {
        format!(
            "replication{} {}{more} ({} of {total})",
            if held.len() > 1 { "s" } else { "" },
            shown.join(", "),
            held.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Primary, TruthFacts};
    use super::*;

    #[test]
    fn shard_specs_parse_and_share_round_robin() {
        let s: ShardSpec = "2/3".parse().unwrap();
        assert_eq!(s, ShardSpec { k: 2, n: 3 });
        assert_eq!(s.to_string(), "2/3");
        assert_eq!(s.share(8), vec![1, 4, 7]);
        assert_eq!(
            "5/5".parse::<ShardSpec>().unwrap().share(3),
            Vec::<usize>::new()
        );
        for bad in ["0/4", "5/4", "1/0", "1", "a/2", "1/-2", ""] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        assert!("0/4"
            .parse::<ShardSpec>()
            .unwrap_err()
            .contains("between 1 and N"));
        // Every replication in exactly one shard, the one `of` names.
        for n in 1..6 {
            let mut all: Vec<usize> = (1..=n).flat_map(|k| ShardSpec { k, n }.share(11)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..11).collect::<Vec<_>>());
            for r in 0..11 {
                assert!(ShardSpec::of(r, n).share(11).contains(&r));
            }
        }
    }

    fn rep(index: usize, estimate: f64) -> Replication {
        Replication {
            index,
            seed: u64::MAX - index as u64,
            primaries: vec![Primary {
                hypothesis: "H3".into(),
                estimate: Some(estimate),
                std_error: Some(f64::NAN),
                conf_low: Some(f64::NEG_INFINITY),
                conf_high: None,
                p_value: Some(1e-300),
                p_adjusted: Some(5e-324),
                supported: Some(true),
                n_obs: Some(12),
            }],
            municipal: vec![],
            truth: TruthFacts {
                h1_lambda: Some(0.1 + 0.2),
                ..TruthFacts::default()
            },
            error: (index == 2).then(|| "boom \"quoted\"".into()),
            h3_models: vec![],
        }
    }

    /// The partial of shard `k` of `n` over `total` replications with settings `seed`.
    fn part(k: usize, n: usize, total: usize, seed: u64) -> Partial<(u64, usize)> {
        let s = ShardSpec { k, n };
        let held = s.share(total);
        // An estimate with all 17 digits, which JSON readers do not all round-trip.
        let results = held
            .iter()
            .map(|&r| rep(r, 0.1 * r as f64 + 1.0 / 3.0))
            .collect();
        partial(
            "power",
            (seed, total),
            s,
            vec![group("cell 1".into(), total, &held, results)],
        )
        .unwrap()
    }

    fn write_parts(dir: &Path, parts: &[Partial<(u64, usize)>]) -> Vec<PathBuf> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = dir.join(format!("p{i}.partial"));
                write(p, &path).unwrap();
                path
            })
            .collect()
    }

    fn err(paths: &[PathBuf]) -> String {
        format!(
            "{:#}",
            read_all::<(u64, usize)>(paths, "power").unwrap_err()
        )
    }

    #[test]
    fn merge_restores_every_bit_and_refuses_bad_sets() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let paths = write_parts(d, &[part(2, 3, 7, 1), part(1, 3, 7, 1), part(3, 3, 7, 1)]);
        let (settings, groups) = read_all::<(u64, usize)>(&paths, "power").unwrap();
        assert_eq!(settings, (1, 7));
        let want: Vec<Replication> = (0..7).map(|r| rep(r, 0.1 * r as f64 + 1.0 / 3.0)).collect();
        let got = &groups[0].results;
        assert_eq!(got.len(), 7);
        for (g, w) in got.iter().zip(&want) {
            // Bit for bit, NaN included (PartialEq would call NaN unequal).
            let bits = |r: &Replication| {
                let p = &r.primaries[0];
                [
                    p.estimate,
                    p.std_error,
                    p.conf_low,
                    p.p_value,
                    p.p_adjusted,
                    r.truth.h1_lambda,
                ]
                .map(|x| x.map(f64::to_bits))
            };
            assert_eq!(bits(g), bits(w));
            assert_eq!((g.index, g.seed, &g.error), (w.index, w.seed, &w.error));
        }
        // A shard missing, named with the shard to run.
        let e = err(&paths[..2]);
        assert!(
            e.contains("replications 2, 5 of the cell 1 are in none of the 2"),
            "{e}"
        );
        assert!(e.contains("shard 3/3"), "{e}");
        // A shard twice.
        let twice = vec![
            paths[0].clone(),
            paths[1].clone(),
            paths[2].clone(),
            paths[0].clone(),
        ];
        let e = err(&twice);
        assert!(e.contains("replication 1 of the cell 1 is in both"), "{e}");
        // Other settings, named.
        let other = write_parts(&d.join("o"), &[part(1, 2, 7, 1), part(2, 2, 7, 9)]);
        let e = err(&other);
        assert!(e.contains("different settings ([1,7] vs [9,7])"), "{e}");
        // Another command, another build, a damaged file, not a partial at all.
        assert!(format!(
            "{:#}",
            read_all::<(u64, usize)>(&paths, "validate").unwrap_err()
        )
        .contains("not of `relcap validate`"));
        let mut p = part(1, 1, 3, 1);
        p.build = "0".repeat(64);
        let alien = write_parts(&d.join("b"), &[p]);
        assert!(
            err(&alien).contains("build 000000000000"),
            "{}",
            err(&alien)
        );
        let mut p = part(1, 1, 3, 1);
        p.settings.0 = 2;
        let damaged = write_parts(&d.join("c"), &[p]);
        assert!(err(&damaged).contains("damaged"), "{}", err(&damaged));
        let mut p = part(1, 2, 3, 1);
        p.groups[0].held = vec![0, 1];
        let wrong = write_parts(&d.join("w"), &[p]);
        assert!(
            err(&wrong).contains("not those of shard 1/2"),
            "{}",
            err(&wrong)
        );
        let text = d.join("x.csv");
        std::fs::write(&text, "a,b\n1,2\n").unwrap();
        assert!(err(&[text]).contains("is not a relcap partial result"));
        // More shards than replications: the empty shards merge too.
        let many: Vec<_> = (1..=5).map(|k| part(k, 5, 2, 1)).collect();
        let paths = write_parts(&d.join("m"), &many);
        let (_, groups) = read_all::<(u64, usize)>(&paths, "power").unwrap();
        assert_eq!(groups[0].results.len(), 2);
    }
}
