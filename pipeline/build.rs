//! Build script: links the `relcap` binary as a position-dependent executable on Linux with
//! glibc.
//!
//! A position-independent executable of this size carries about 138,000 relative relocations,
//! which the dynamic loader applies at every start, copying about 650 pages on the way: `relcap
//! --version` took 5.5 ms and 800 page faults (`perf stat -r 50`), a run with nothing to do
//! 12.9 ms (`-r 20`). Linked with `-no-pie` the addresses are fixed at link time: 2.1 ms and 160
//! page faults, and 9.8 ms (README, "Dependencies and why"). What is given up is the randomised
//! load address of the executable itself (libraries, stack and heap are still randomised), which
//! matters for programs that take input from untrusted peers, not for a batch pipeline reading the
//! study's own files. The code is still compiled position-independent; only the link changes.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=pipeline/build.rs");
}
