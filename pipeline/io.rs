//! Reading and writing tables and JSON, the one place that touches files for the stages.
//!
//! Every write is atomic: the bytes go to a temporary file in the destination folder, are synced,
//! and only then renamed to the final name, so a crash never leaves a half-written file where a
//! finished one is expected. Parquet is written with fixed settings (zstd at its default level,
//! fixed row-group size, statistics on, `created_by` = `Polars` without version or build hash)
//! and footer key-value metadata naming the stage, its fingerprint and the schema version, so the
//! same frame always gives the same bytes. Callers sort rows by their key columns before writing.
//!
//! "The same frame" includes how its columns are chunked: polars cuts a frame held in one chunk
//! into `height / ROW_GROUP_SIZE` equal row groups ([`row_groups_of_one_chunk`]), but a frame
//! of several chunks along its chunks. [`write_parquet_as_one_chunk`] writes any frame with the
//! layout (and bytes) of its one-chunk form without building that copy, a row group at a time.
//!
//! The fingerprint reaches the footer explicitly: the orchestrator puts it into the stage's
//! `StageContext`, and a stage writes with `ctx.parquet_meta(STAGE)`, a [`ParquetMeta`] that
//! carries it, from whichever thread writes the file.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::{
    DataFrame, KeyValueMetadata, ParquetCompression, ParquetReader, ParquetWriter, SerReader,
    StatisticsOptions,
};

/// Bumped when the layout of any stage output changes; written into every Parquet footer.
pub const SCHEMA_VERSION: &str = "1";

/// Rows per Parquet row group: fixed so the file layout never depends on the machine.
pub const ROW_GROUP_SIZE: usize = 256 * 1024;

/// Writes `bytes_fn`'s output to `path` atomically (temp file in the same folder, fsync, rename).
pub fn write_atomic<F>(path: &Path, bytes_fn: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".relcap-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let file = tmp.as_file_mut();
        let mut w = BufWriter::new(file);
        bytes_fn(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    // tempfile creates files readable by their owner only; outputs are for analysts too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    fault_injection_stall(path);
    tmp.persist(path).map_err(|e| {
        anyhow!(
            "cannot move finished file to {}: {}",
            path.display(),
            e.error
        )
    })?;
    Ok(())
}

/// Test hook for crash safety: when the environment variable `RELCAP_FAULT_STALL_BEFORE_RENAME`
/// is set and `path` ends with its value, the process says so on stderr and sleeps, with the
/// finished bytes in the temporary file but not yet under the final name, so a test can kill it
/// at the worst moment. Without the variable this does nothing.
fn fault_injection_stall(path: &Path) {
    let Some(target) = std::env::var_os("RELCAP_FAULT_STALL_BEFORE_RENAME") else {
        return;
    };
    if !target.is_empty() && path.ends_with(Path::new(&target)) {
        crate::say!(
            "[relcap] fault injection: stalled before renaming {}",
            path.display()
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Key-value metadata written into a Parquet footer.
#[derive(Debug, Clone, Default)]
pub struct ParquetMeta {
    pub stage: String,
    /// The stage's fingerprint (`StageContext::parquet_meta` fills it in); None writes none.
    pub fingerprint: Option<String>,
    /// Extra pairs (sorted by key when written).
    pub extra: Vec<(String, String)>,
}

impl ParquetMeta {
    pub fn stage(stage: &str) -> Self {
        ParquetMeta {
            stage: stage.to_string(),
            ..Default::default()
        }
    }

    fn pairs(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            ("relcap.stage".to_string(), self.stage.clone()),
            (
                "relcap.schema_version".to_string(),
                SCHEMA_VERSION.to_string(),
            ),
        ];
        if let Some(fp) = &self.fingerprint {
            kv.push(("relcap.fingerprint".to_string(), fp.clone()));
        }
        kv.extend(self.extra.iter().cloned());
        kv.sort();
        kv
    }
}

/// Writes `df` to `path` as Parquet, atomically and deterministically.
pub fn write_parquet(df: &mut DataFrame, path: &Path, meta: &ParquetMeta) -> Result<()> {
    let kv = KeyValueMetadata::from_static(meta.pairs());
    write_atomic(path, |w| {
        ParquetWriter::new(w)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .with_row_group_size(Some(ROW_GROUP_SIZE))
            .with_key_value_metadata(Some(kv))
            .finish(df)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })
}

/// The row groups (offset, rows) that [`write_parquet`] writes for a frame of `height` rows held
/// in one chunk: polars splits such a frame into `max(height / ROW_GROUP_SIZE, 1)` groups of
/// `height / groups` rows, the last one taking the remainder (so up to twice the nominal size).
pub fn row_groups_of_one_chunk(height: usize) -> Vec<(usize, usize)> {
    let groups = (height / ROW_GROUP_SIZE).max(1);
    let size = height / groups;
    let mut out: Vec<(usize, usize)> = (0..groups - 1).map(|g| (g * size, size)).collect();
    let last = (groups - 1) * size;
    if height > last {
        out.push((last, height - last));
    }
    out
}

/// Writes `df` exactly as [`write_parquet`] writes it after `df.rechunk_mut()` (the same bytes),
/// without building that one-chunk copy: each row group is sliced from `df` and made contiguous
/// on its own, so a frame assembled from many chunks is written with the memory of one row
/// group on top. (`write_parquet` lays out a frame of several chunks differently, by its
/// chunks; this function always lays it out as one chunk.)
pub fn write_parquet_as_one_chunk(df: &DataFrame, path: &Path, meta: &ParquetMeta) -> Result<()> {
    let kv = KeyValueMetadata::from_static(meta.pairs());
    write_atomic(path, |w| {
        let mut batched = ParquetWriter::new(w)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .with_row_group_size(Some(ROW_GROUP_SIZE))
            .with_key_value_metadata(Some(kv))
            .batched(df.schema())
            .with_context(|| format!("cannot write {}", path.display()))?;
        for (offset, rows) in row_groups_of_one_chunk(df.height()) {
            let mut group = df.slice(offset as i64, rows);
            group.rechunk_mut();
            batched
                .write_batch(&group)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        batched
            .finish()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })
}

/// Writes `value` as pretty JSON with a trailing newline, atomically.
pub fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, |w| {
        w.write_all(text.as_bytes())?;
        w.write_all(b"\n")?;
        Ok(())
    })
}

/// Reads a Parquet file written by an earlier stage.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    read_parquet_columns(path, None)
}

/// Reads a Parquet file written by an earlier stage: only `columns` (in that order) when given,
/// so that a reader of a few columns of a large table does not hold the rest.
pub fn read_parquet_columns(path: &Path, columns: Option<&[&str]>) -> Result<DataFrame> {
    let file = File::open(path).with_context(|| {
        format!(
            "cannot open {} (has the stage that writes it run?)",
            path.display()
        )
    })?;
    let names = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
    ParquetReader::new(file)
        .with_columns(names)
        .finish()
        .with_context(|| format!("cannot read Parquet file {}", path.display()))
}

/// A Parquet file already read into memory (`path`: where it came from, for the error).
pub fn parquet_from_bytes(bytes: Vec<u8>, path: &Path) -> Result<DataFrame> {
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .with_context(|| format!("cannot read Parquet file {}", path.display()))
}

/// Finds a canonical table in `dir`: `stem` as given when it has an extension, else
/// `stem.parquet`, then `stem.csv`, then `stem.xlsx`. None when nothing is there.
pub fn find_table(dir: &Path, stem: &Path) -> Option<PathBuf> {
    let base = if stem.is_absolute() {
        stem.to_path_buf()
    } else {
        dir.join(stem)
    };
    if base.extension().is_some() {
        return base.is_file().then_some(base);
    }
    for ext in ["parquet", "csv", "xlsx"] {
        let p = base.with_extension(ext);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// The kind of a source file, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Parquet,
    /// An Excel workbook (`.xlsx`, `.xlsm`, `.xls`, `.ods`), read with calamine.
    Xlsx,
}

pub fn file_kind(path: &Path) -> Result<FileKind> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("csv") | Some("txt") => Ok(FileKind::Csv),
        Some("parquet") | Some("pq") => Ok(FileKind::Parquet),
        Some("xlsx") | Some("xlsm") | Some("xls") | Some("ods") => Ok(FileKind::Xlsx),
        _ => bail!(
            "{}: unknown file type (expected .csv, .parquet or .xlsx)",
            path.display()
        ),
    }
}

/// Detects the separator of a CSV file from its header line: the most frequent of `;` `,` tab.
pub fn detect_separator(path: &Path) -> Result<u8> {
    use std::io::BufRead;
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = Vec::new();
    std::io::BufReader::new(f).read_until(b'\n', &mut line)?;
    let count = |c: u8| line.iter().filter(|&&b| b == c).count();
    let best = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&c| (count(c), c == b','))
        .unwrap_or(b',');
    Ok(best)
}

/// Blake3 hash of a file's content, lowercase hex.
pub fn hash_file(path: &Path) -> Result<String> {
    hash_file_with(path, |_| {}).map(|(h, _)| h)
}

/// Blake3 hash of a folder (a survey export): each file's name, length and content hash, in
/// name order; and the files' total length.
fn hash_folder(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<(String, u64)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read folder {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut hasher = blake3::Hasher::new();
    let mut total = 0;
    for p in names {
        let (h, n) = hash_file_with(&p, &mut *progress)?;
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        hasher.update(name.unwrap_or_default().as_bytes());
        hasher.update(&n.to_le_bytes());
        hasher.update(h.as_bytes());
        total += n;
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Blake3 hash of a file's content (lowercase hex) and its length in bytes, calling `progress`
/// with the number of bytes read after each block (for a progress bar on large inputs).
pub fn hash_file_with(path: &Path, mut progress: impl FnMut(u64)) -> Result<(String, u64)> {
    if path.is_dir() {
        return hash_folder(path, &mut progress);
    }
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // Large blocks let blake3 hash several chunks at once with SIMD.
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        progress(n as u64);
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    #[test]
    fn parquet_write_is_deterministic_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/t.parquet");
        let mk = || df!("a" => [3i64, 1, 2], "b" => ["x", "y", "z"]).unwrap();
        write_parquet(&mut mk(), &p, &ParquetMeta::stage("test")).unwrap();
        let h1 = hash_file(&p).unwrap();
        write_parquet(&mut mk(), &p, &ParquetMeta::stage("test")).unwrap();
        assert_eq!(h1, hash_file(&p).unwrap());
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["t.parquet".to_string()], "no temp files left");
        let back = read_parquet(&p).unwrap();
        assert_eq!(back.height(), 3);
    }

    #[test]
    fn row_groups_follow_polars_split_of_one_chunk() {
        // By hand from polars' `split_and_flatten` of one chunk: n = h / 262144 groups (at least
        // one) of h / n rows, the last taking the remainder.
        assert_eq!(row_groups_of_one_chunk(0), vec![]);
        assert_eq!(row_groups_of_one_chunk(10), vec![(0, 10)]);
        assert_eq!(row_groups_of_one_chunk(524_287), vec![(0, 524_287)]);
        assert_eq!(
            row_groups_of_one_chunk(1_000_000),
            vec![(0, 333_333), (333_333, 333_333), (666_666, 333_334)]
        );
    }

    #[test]
    fn many_chunks_written_as_one_give_the_bytes_of_the_rechunked_frame() {
        let dir = tempfile::tempdir().unwrap();
        let meta = ParquetMeta::stage("test");
        for (parts, rows) in [(1, 5usize), (3, 70_000), (4, 200_000), (7, 190_000)] {
            let mut stacked: Option<DataFrame> = None;
            for p in 0..parts {
                let n = rows + p * 13;
                let a: Vec<i64> = (0..n as i64).map(|i| i * 7 % 1000 + p as i64).collect();
                let b: Vec<Option<String>> = (0..n)
                    .map(|i| (i % 11 != 0).then(|| format!("pseudonym-{:016x}", i % 5003)))
                    .collect();
                let c: Vec<Option<f64>> = (0..n)
                    .map(|i| (i % 7 != 3).then_some(i as f64 / 4.0))
                    .collect();
                let part = df!("a" => a, "b" => b, "c" => c).unwrap();
                match &mut stacked {
                    None => stacked = Some(part),
                    Some(s) => {
                        s.vstack_mut(&part).unwrap();
                    }
                }
            }
            let chunked = stacked.unwrap();
            assert_eq!(chunked.first_col_n_chunks(), parts);
            let (p1, p2) = (
                dir.path().join("one.parquet"),
                dir.path().join("many.parquet"),
            );
            let mut one = chunked.clone();
            one.rechunk_mut();
            write_parquet(&mut one, &p1, &meta).unwrap();
            write_parquet_as_one_chunk(&chunked, &p2, &meta).unwrap();
            assert_eq!(
                std::fs::read(&p1).unwrap(),
                std::fs::read(&p2).unwrap(),
                "{parts} chunks of about {rows} rows"
            );
        }
    }

    #[test]
    fn footer_has_the_fingerprint_only_when_given() {
        let meta = ParquetMeta::stage("score");
        assert!(!meta.pairs().iter().any(|(k, _)| k == "relcap.fingerprint"));
        let given = ParquetMeta {
            fingerprint: Some("abc".into()),
            ..ParquetMeta::stage("score")
        };
        let pairs = given.pairs();
        assert!(pairs.contains(&("relcap.fingerprint".to_string(), "abc".to_string())));
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "relcap.fingerprint",
                "relcap.schema_version",
                "relcap.stage"
            ]
        );
    }

    #[test]
    fn hash_file_matches_blake3_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let mut seen = 0;
        let (h, n) = hash_file_with(&p, |k| seen += k).unwrap();
        assert_eq!(h, blake3::hash(&bytes).to_hex().to_string());
        assert_eq!((n, seen), (3_000_000, 3_000_000));
    }

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        let r = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            bail!("boom")
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn separator_is_the_most_frequent_in_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\u{feff}a;b\n01;Rødovre\n").unwrap();
        assert_eq!(detect_separator(&p).unwrap(), b';');
        std::fs::write(&p, "a,b\tc\n").unwrap();
        assert_eq!(detect_separator(&p).unwrap(), b',');
    }
}
