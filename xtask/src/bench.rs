//! `cargo xtask bench`: throughput measured against baselines of the same run.
//!
//! DESIGN.md's "Measuring": each figure is the median of interleaved rounds, with the
//! spread; the library's rates are reported as ratios to the raw `C_SignInit` + `C_Sign`
//! rate of the same key at the same thread count, and batch signing against the ceiling
//! `1 / (1/raw + 1/io)` where `io` is the rate of the bare file work (read, write a
//! temporary file, fsync, rename) at the same thread count. The machine is shared and
//! noisy: these are measurements, never timed tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use p11_raw::{Mechanism, MechanismType};
use p11_testkit::{KeyKind, TestToken};

use crate::{Result, cargo, root, run_checked, target_dir};

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Rounds per figure (the median is reported).
    pub(crate) rounds: usize,
    /// Length of one timed round.
    pub(crate) round: Duration,
    /// Files per batch round.
    pub(crate) files: usize,
}

impl Plan {
    fn from_args(args: &[String]) -> Result<(Plan, Vec<String>)> {
        let mut plan = Plan {
            rounds: 5,
            round: Duration::from_secs(5),
            files: 1000,
        };
        let mut sections = Vec::new();
        for arg in args {
            match arg.as_str() {
                "--quick" => {
                    plan = Plan {
                        rounds: 3,
                        round: Duration::from_millis(1500),
                        files: 200,
                    }
                }
                "session" | "bytes" | "bigfile" | "batch" => sections.push(arg.clone()),
                other => {
                    return Err(format!(
                        "bench takes --quick and section names (session, bytes, bigfile, batch), not {other:?}"
                    )
                    .into());
                }
            }
        }
        if sections.is_empty() {
            sections = vec![
                "session".into(),
                "bytes".into(),
                "bigfile".into(),
                "batch".into(),
            ];
        }
        Ok((plan, sections))
    }
}

pub(crate) fn run(args: &[String]) -> Result {
    let (plan, sections) = Plan::from_args(args)?;
    for section in sections {
        match section.as_str() {
            "session" => session(plan)?,
            "bytes" => bytes(plan)?,
            "bigfile" => bigfile(plan)?,
            "batch" => crate::bench_batch::run(plan)?,
            _ => unreachable!("checked in Plan::from_args"),
        }
    }
    Ok(())
}

/// Median and spread (min..max) of a set of rates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figure {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Figure {
    pub(crate) fn of(samples: &[f64]) -> Figure {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Figure {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// The spread as a percentage of the median.
    pub(crate) fn spread_pct(&self) -> f64 {
        100.0 * (self.max - self.min) / self.median
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>9.1} (±{:.0}%)", self.median, self.spread_pct() / 2.0)
    }
}

/// The signature scheme a raw measurement uses for a key kind.
fn raw_mechanism(kind: KeyKind) -> (Mechanism, Vec<u8>) {
    let digest = vec![0x5a; 32];
    if kind.is_rsa() {
        // DigestInfo for SHA-256 around the digest, as CKM_RSA_PKCS wants it.
        let mut info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        info.extend_from_slice(&digest);
        (Mechanism::new(MechanismType::RSA_PKCS), info)
    } else {
        (Mechanism::new(MechanismType::ECDSA), digest)
    }
}

/// The raw rate: `threads` threads, one session each, one shared login, `C_SignInit` +
/// `C_Sign` in a loop for `duration`. Signatures per second.
pub(crate) fn raw_rate(
    token: &TestToken,
    kind: KeyKind,
    threads: usize,
    duration: Duration,
) -> Result<f64> {
    let login = token.user_session()?;
    let key = token.private_key(&login, &token.key(kind).label)?;
    let (mechanism, input) = raw_mechanism(kind);
    let len = kind.signature_len();
    let barrier = Barrier::new(threads);
    let counts: Vec<Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<u64> {
                    let mut session = token.module.open_session(token.slot, false)?;
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        session.sign_init(&mechanism, key)?.sign(&input, len)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut total = 0;
    for count in counts {
        total += count?;
    }
    drop(login);
    Ok(total as f64 / duration.as_secs_f64())
}

/// Section `session`: the pool and state machine against raw C_Sign, run by
/// p11-session's benchmark example.
fn session(plan: Plan) -> Result {
    println!("== session: SigningKey::sign vs raw C_SignInit + C_Sign (p11-session)");
    run_checked(
        example("p11-session", "bench_sign")
            .args(["--rounds", &plan.rounds.to_string()])
            .args(["--seconds", &format!("{:.1}", plan.round.as_secs_f64())]),
    )
}

/// Section `bytes`: `Signer::sign_bytes` in memory against raw C_Sign for RSA-2048 and
/// P-256 at 1, 2 and 8 threads, run by pdfsign's throughput example (rounds of
/// one-second slices, alternating).
fn bytes(plan: Plan) -> Result {
    println!("== bytes: Signer::sign_bytes in memory vs raw C_SignInit + C_Sign (pdfsign)");
    run_checked(
        example("pdfsign", "throughput")
            .args(["--rounds", &plan.rounds.to_string()])
            .args(["--seconds", &plan.round.as_secs().max(1).to_string()])
            .args(["rsa2048", "p256"]),
    )
}

/// Section `bigfile`: signing a ~100 MB PDF with a software key against
/// `cp IN OUT && openssl dgst -sha256 IN && sync` of the same file, in interleaved rounds
/// (pdf-sig's `sign_large` example runs both and reports medians and its peak RSS).
fn bigfile(plan: Plan) -> Result {
    println!("== bigfile: pdf-sig on a 100 MB PDF vs cp + openssl dgst + sync");
    let dir = target_dir().join("bench").join("bigfile");
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("big.pdf");
    let output = dir.join("signed.pdf");
    if !input.exists() {
        // Generated in a process of its own, so its memory does not count below.
        run_checked(
            example("pdf-sig", "sign_large")
                .args(["--generate", "100", "--rounds", "1"])
                .arg(&input)
                .arg(&output),
        )?;
    }
    run_checked(
        example("pdf-sig", "sign_large")
            .args(["--rounds", &plan.rounds.to_string(), "--floor"])
            .arg(&input)
            .arg(&output),
    )
}

/// `cargo run --release` of `package`'s example `name`; its arguments follow.
fn example(package: &str, name: &str) -> Command {
    let mut command = cargo();
    command.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        package,
        "--example",
        name,
        "--",
    ]);
    command
}

/// The workspace's sample one-page PDF.
pub(crate) fn sample_pdf() -> PathBuf {
    root().join("fixtures").join("sample.pdf")
}
