//! `relcap fit` (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct FitArgs {}

pub fn main(_args: &FitArgs) -> Result<ExitCode> {
    bail!("relcap fit is not implemented yet")
}
