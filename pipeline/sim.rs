//! The study simulator (being written).

use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

pub fn main(_args: &SimulateArgs) -> Result<ExitCode> {
    bail!("relcap simulate is not implemented yet")
}
