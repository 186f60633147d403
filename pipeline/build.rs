//! Build script: links the `relcap` binary as a position-dependent executable on Linux with
//! glibc.
//!
//! A position-independent executable of this size carries about 138,000 relative relocations,
//! which the dynamic loader applies at every start, copying about 650 pages on the way. Linked
//! with `-no-pie` the addresses are fixed at link time: `relcap --version` 3.9 → 1.5 ms (838 →
//! 150 page faults), a run with nothing to do 11.1 → 8.2 ms (912 → 202), `perf stat` over 50 and
//! 30 runs, back to back (README, "Dependencies and why"). What is given up is the randomised
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
