//! Latency scaling: with a fixed delay added to every PKCS#11 call (a network HSM), do
//! eight signing threads hide it? The pool lends one session per thread, so eight
//! threads should sign about eight times as fast as one while the token, not the CPU,
//! is the limit.
//!
//! Measured in one process, rounds interleaved (one thread, then eight, again and
//! again), each figure the median: in-process `Signer`s over the proxy with the pool
//! `p11-session` sizes by default and with a pool of eight sessions, and, when a
//! `pdfsign` binary is given, `pdfsign batch -j 1` against `-j 8` (which load the proxy
//! themselves, configured by `PKCS11_FAULT_SPEC`). Batch rate = files ÷ time from the
//! first file opened to the last output renamed; start-up is not counted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use p11_session::{Token, TokenConfig, TokenQuery};
use pdfsign::{Pin, SignOptions, Signer};

use super::{proxy, proxy_uri};
use crate::{KeyKind, TestToken};

/// What to measure.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// Added to every call on the token.
    pub latency: Duration,
    /// Thread counts to compare (the first is the baseline).
    pub jobs: Vec<usize>,
    /// Interleaved rounds; each figure is the median.
    pub rounds: usize,
    /// How long one in-process measurement signs.
    pub run_for: Duration,
    /// How many files one `pdfsign batch` measurement signs.
    pub cli_files: usize,
    /// The `pdfsign` binary, for the command-line figures (none: in-process only).
    pub pdfsign_binary: Option<PathBuf>,
    /// A directory of its own (created; removed at the end).
    pub dir: PathBuf,
}

impl LatencyConfig {
    /// 2 ms per call, one thread against eight, five rounds of 3 s (and of 600 files for
    /// `pdfsign batch`).
    pub fn new(dir: PathBuf) -> LatencyConfig {
        LatencyConfig {
            latency: Duration::from_millis(2),
            jobs: vec![1, 8],
            rounds: 5,
            run_for: Duration::from_secs(3),
            cli_files: 600,
            pdfsign_binary: None,
            dir,
        }
    }
}

/// One set-up at one thread count.
#[derive(Debug, Clone)]
pub struct LatencyRow {
    /// What signs: in-process with which pool, or `pdfsign batch`.
    pub setup: String,
    /// Threads (`-j`).
    pub jobs: usize,
    /// Signatures per second, one per round.
    pub rates: Vec<f64>,
    /// Signatures that failed (there are no faults: any is a problem).
    pub failures: usize,
}

impl LatencyRow {
    /// The median rate.
    pub fn median(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        match rates.len() {
            0 => 0.0,
            n if n % 2 == 1 => rates[n / 2],
            n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        }
    }
}

/// The figures.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// The latency added per call.
    pub latency: Duration,
    /// Every set-up at every thread count.
    pub rows: Vec<LatencyRow>,
    /// What the pools did.
    pub notes: Vec<String>,
}

impl LatencyReport {
    /// Median rate at the highest thread count over the median at the lowest, for
    /// `setup`.
    pub fn speedup(&self, setup: &str) -> Option<f64> {
        let rows: Vec<&LatencyRow> = self.rows.iter().filter(|r| r.setup == setup).collect();
        let low = rows.iter().min_by_key(|r| r.jobs)?;
        let high = rows.iter().max_by_key(|r| r.jobs)?;
        (low.median() > 0.0).then(|| high.median() / low.median())
    }

    /// The set-ups, in order.
    pub fn setups(&self) -> Vec<&str> {
        let mut setups: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !setups.contains(&row.setup.as_str()) {
                setups.push(&row.setup);
            }
        }
        setups
    }

    /// Whether any signature failed.
    pub fn failures(&self) -> usize {
        self.rows.iter().map(|r| r.failures).sum()
    }
}

impl fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "latency scaling: {:?} added to every PKCS#11 call (median of interleaved rounds)",
            self.latency
        )?;
        for setup in self.setups() {
            let rows: Vec<String> = self
                .rows
                .iter()
                .filter(|r| r.setup == setup)
                .map(|r| {
                    let spread = r
                        .rates
                        .iter()
                        .map(|x| format!("{x:.0}"))
                        .collect::<Vec<_>>()
                        .join("/");
                    format!("-j {}: {:.1} sig/s ({spread})", r.jobs, r.median())
                })
                .collect();
            let speedup = self
                .speedup(setup)
                .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}x"));
            writeln!(f, "  {setup}: {}; speed-up {speedup}", rows.join(", "))?;
        }
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        write!(f, "  failed signatures: {}", self.failures())
    }
}

/// The set-up name of the `pdfsign batch` figures.
pub const CLI: &str = "pdfsign batch (CLI, default pool)";

/// Copies of the sample PDF.
fn inputs(dir: &Path, count: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    (0..count)
        .map(|i| {
            let path = dir.join(format!("doc{i:04}.pdf"));
            std::fs::copy(crate::sample_pdf(), &path)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        })
        .collect()
}

/// Signs with `jobs` threads for `run_for`; returns the rate and the failures.
fn sign_for(
    signer: &Signer,
    inputs: &[PathBuf],
    out: &Path,
    jobs: usize,
    run_for: Duration,
) -> (f64, usize) {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    let deadline = start + run_for;
    let last_done = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut last = start;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let output = out.join(format!("{i:06}.pdf"));
                        if signer
                            .sign_file(&inputs[i % inputs.len()], &output)
                            .is_err()
                        {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        last = Instant::now();
                    }
                    last
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .max()
            .unwrap_or(start)
    });
    let failed = failures.load(Ordering::Relaxed);
    let signed = next.load(Ordering::Relaxed).saturating_sub(failed);
    let _ = std::fs::remove_dir_all(out);
    let seconds = (last_done - start).as_secs_f64();
    (signed as f64 / seconds.max(1e-9), failed)
}

/// `pdfsign --json batch IN -o OUT -j JOBS` through the proxy with `latency` on every
/// call; returns the summary's rate and the failures.
fn batch(
    binary: &Path,
    token: &TestToken,
    inputs: &Path,
    out: &Path,
    jobs: usize,
    latency: Duration,
) -> (f64, usize) {
    let _ = std::fs::remove_dir_all(out);
    let uri = proxy_uri(token).to_string();
    let softhsm = p11_testkit::module().path().display().to_string();
    let output = Command::new(binary)
        .args(["--json", "batch"])
        .arg(inputs)
        .arg("--output-dir")
        .arg(out)
        .args([
            "--jobs",
            &jobs.to_string(),
            "--progress",
            "none",
            "--key",
            &uri,
        ])
        .env("PDFSIGN_PIN", &token.user_pin)
        .env(
            p11_fault::SPEC_ENV,
            format!("module {softhsm}; latency {}us", latency.as_micros()),
        )
        .env_remove(p11_fault::CONFIG_ENV)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "pdfsign batch printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let _ = std::fs::remove_dir_all(out);
    let summary = &json["summary"];
    let failed = summary["failed"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    (
        summary["signatures_per_second"].as_f64().unwrap_or(0.0),
        failed,
    )
}

/// Adds one round's figure to its row.
fn add(rows: &mut Vec<LatencyRow>, setup: &str, jobs: usize, (rate, failed): (f64, usize)) {
    match rows.iter_mut().find(|r| r.setup == setup && r.jobs == jobs) {
        Some(row) => {
            row.rates.push(rate);
            row.failures += failed;
        }
        None => rows.push(LatencyRow {
            setup: setup.to_owned(),
            jobs,
            rates: vec![rate],
            failures: failed,
        }),
    }
}

/// Measures the latency-scaling figures (see the module docs).
///
/// # Panics
/// If the set-up fails (tokens, proxy, signers, files, the `pdfsign` binary's output).
pub fn measure_latency(config: &LatencyConfig) -> LatencyReport {
    let proxy = proxy();
    let dir = &config.dir;
    let _ = std::fs::remove_dir_all(dir);
    let files = inputs(&dir.join("in"), 64);
    let mut rows: Vec<LatencyRow> = Vec::new();
    // In process: one token per pool configuration (a token's state keeps the
    // configuration of whoever opened it first).
    let most = config.jobs.iter().copied().max().unwrap_or(1);
    let default_pool = TokenConfig::default();
    let mut sized = TokenConfig::default();
    sized.pool_size(most);
    let mut setups = Vec::new();
    for (name, token_config) in [("default", default_pool), ("sized", sized)] {
        let test = TestToken::builder(&format!("latency_{name}"))
            .key(KeyKind::P256)
            .build();
        let token = Token::open_with(
            &proxy.module,
            &TokenQuery::Serial(test.serial.clone()),
            &token_config,
        )
        .unwrap_or_else(|e| panic!("opening the token through the proxy: {e}"));
        let signer = Signer::from_uri(
            &proxy_uri(&test),
            Some(Pin::new(&test.user_pin)),
            &SignOptions::default(),
        )
        .unwrap_or_else(|e| panic!("opening the signer through the proxy: {e}"));
        proxy
            .control
            .replace_slot_rules(
                token.slot(),
                &format!("latency {}us", config.latency.as_micros()),
            )
            .unwrap_or_else(|e| panic!("setting the latency: {e}"));
        let label = if name == "default" {
            "in-process Signer, default TokenConfig".to_owned()
        } else {
            format!("in-process Signer, TokenConfig::pool_size({most})")
        };
        setups.push((label, test, token, signer));
    }
    let cli_token = config
        .pdfsign_binary
        .as_ref()
        .map(|_| TestToken::builder("latency_cli").key(KeyKind::P256).build());
    let cli_inputs = dir.join("cli-in");
    if cli_token.is_some() {
        inputs(&cli_inputs, config.cli_files);
    }

    for _round in 0..config.rounds {
        for &jobs in &config.jobs {
            for (label, _test, _token, signer) in &setups {
                let measured = sign_for(signer, &files, &dir.join("out"), jobs, config.run_for);
                add(&mut rows, label, jobs, measured);
            }
            if let (Some(binary), Some(token)) = (&config.pdfsign_binary, &cli_token) {
                let measured = batch(
                    binary,
                    token,
                    &cli_inputs,
                    &dir.join("cli-out"),
                    jobs,
                    config.latency,
                );
                add(&mut rows, CLI, jobs, measured);
            }
        }
    }
    let mut notes = Vec::new();
    for (label, _test, token, _signer) in &setups {
        let _ = proxy.control.replace_slot_rules(token.slot(), "");
        let figures = token.metrics().snapshot();
        notes.push(format!(
            "{label}: at most {} pooled sessions open, {} checkouts waited for one",
            figures.pool_peak, figures.session_waits
        ));
    }
    drop(setups);
    let _ = std::fs::remove_dir_all(dir);
    LatencyReport {
        latency: config.latency,
        rows,
        notes,
    }
}
