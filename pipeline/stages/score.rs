//! The `score` stage (not yet built: it writes nothing and says so in its summary).

use anyhow::Result;

use super::{StageContext, StageSummary};

pub fn run(_ctx: &StageContext) -> Result<StageSummary> {
    let mut s = StageSummary::default();
    s.warnings
        .push("stage score is not implemented yet".to_string());
    Ok(s)
}
