//! Writes the three linked tables of an output folder (`OUT/link/*.parquet`) as CSV files, the
//! inputs of the R check of the model stage (`tests/fixtures/model_r/check.R`).
//!
//! `cargo run --example link_csv -- OUT/link DEST` (DEST is created); to refresh the committed
//! inputs from the demo study, `scripts/write_r_inputs.sh`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::{CsvWriter, SerWriter};

const LINK_TABLES: [&str; 3] = ["h1_cases", "h2_respondents", "h3_panel"];

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [link_dir, dest] = args.as_slice() else {
        bail!("usage: cargo run --example link_csv -- LINK_DIR DEST_DIR");
    };
    write_link_csv(link_dir, dest)
}

fn write_link_csv(link_dir: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for t in LINK_TABLES {
        let mut df = relcap::io::read_parquet(&link_dir.join(format!("{t}.parquet")))?;
        let path = dest.join(format!("{t}.csv"));
        let mut f = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(&mut df)?;
        eprintln!("wrote {} ({} rows)", path.display(), df.height());
    }
    Ok(())
}
