//! The `relcap` binary: parses the command line, runs it, and turns an error into a message on
//! stderr and an exit code (2 for usage and configuration errors, 1 for everything else).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match relcap::cli::main() {
        Ok(code) => code,
        Err(e) => {
            relcap::say!("relcap: error: {e}");
            for cause in e.chain().skip(1) {
                relcap::say!("  caused by: {cause}");
            }
            if e.downcast_ref::<relcap::config::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
