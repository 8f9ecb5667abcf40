//! `cargo xtask soak`: the fault soak and the latency-scaling figure, in a process of
//! their own (release-built by the xtask). See `pdfsign_e2e::soak` for what is judged.
//!
//! ```text
//! soak [--minutes N | --seconds N] [--threads N] [--seed N] [--faults all|sign]
//!      [--latency | --no-latency] [--rounds N] [--dir PATH]
//! ```
//!
//! Exit codes: 0 when every figure passed, 1 when the soak or the latency figure failed,
//! 2 for bad arguments, 3 when the watchdog found no progress.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pdfsign_e2e::soak::{self, FaultScope, LatencyConfig, SoakConfig};

/// The speed-up eight threads must reach over one with 2 ms per call.
const SPEEDUP_TARGET: f64 = 6.0;

struct Args {
    duration: Duration,
    threads: usize,
    seed: u64,
    scope: FaultScope,
    soak: bool,
    latency: bool,
    rounds: usize,
    dir: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        duration: Duration::from_secs(600),
        threads: 8,
        seed: 1,
        scope: FaultScope::AllCalls,
        soak: true,
        latency: true,
        rounds: 5,
        dir: pdfsign_e2e::root().join("target").join("soak"),
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| words.next().ok_or(format!("{name} needs a value"));
        match word.as_str() {
            "--minutes" => {
                let minutes: f64 = value("--minutes")?
                    .parse()
                    .map_err(|e| format!("--minutes: {e}"))?;
                args.duration = Duration::try_from_secs_f64(minutes * 60.0)
                    .map_err(|e| format!("--minutes: {e}"))?;
            }
            "--seconds" => {
                args.duration = Duration::from_secs(
                    value("--seconds")?
                        .parse()
                        .map_err(|e| format!("--seconds: {e}"))?,
                );
            }
            "--threads" => {
                args.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?;
            }
            "--seed" => {
                args.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?;
            }
            "--faults" => {
                args.scope = match value("--faults")?.as_str() {
                    "all" => FaultScope::AllCalls,
                    "sign" => FaultScope::SignPath,
                    other => return Err(format!("--faults all|sign, not {other:?}")),
                };
            }
            "--rounds" => {
                args.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?;
            }
            "--dir" => args.dir = PathBuf::from(value("--dir")?),
            "--latency" => args.soak = false,
            "--no-latency" => args.latency = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.duration < Duration::from_secs(3) {
        return Err("the soak needs at least 3 s".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    if args.soak {
        let mut config = SoakConfig::new(args.duration, args.dir.join("soak"));
        config.threads = args.threads;
        config.seed = args.seed;
        config.fault_scope = args.scope;
        eprintln!(
            "soak: signing for {:?} with {} threads through the fault proxy...",
            config.duration, config.threads
        );
        let report = soak::run(&config);
        println!("{report}");
        if !report.passed() {
            println!("  (inputs and outputs kept in {})", config.dir.display());
        }
        ok &= report.passed();
    }
    if args.latency {
        let mut config = LatencyConfig::new(args.dir.join("latency"));
        config.rounds = args.rounds;
        config.pdfsign_binary = std::env::var_os("PDFSIGN_BIN").map(PathBuf::from);
        eprintln!(
            "soak: measuring latency scaling ({} rounds)...",
            config.rounds
        );
        let report = soak::measure_latency(&config);
        println!("{report}");
        for setup in report.setups() {
            let speedup = report.speedup(setup).unwrap_or(0.0);
            println!(
                "  {setup}: -j 8 at least {SPEEDUP_TARGET}x -j 1: {}",
                if speedup >= SPEEDUP_TARGET {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
        ok &= report.failures() == 0;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
