//! `cargo xtask bench batch`: `pdfsign batch` over many one-page PDFs against the
//! ceiling `C = 1 / (1/raw + 1/io)` of the same run, at -j 1, 2 and 8.
//!
//! Per key and thread count, each round measures in turn: the raw `C_SignInit` +
//! `C_Sign` rate (one session per thread, shared login), the bare file work (read each
//! input, write a temporary file as large as a signed output, fsync, rename), and one
//! `pdfsign batch` run whose own summary gives files ÷ (first file opened → last
//! rename), start-up reported apart. Medians of the rounds, spread as ± half the range.
//!
//! The file system is part of what is measured, so every timed part starts alike: it
//! writes into a directory of its own that did not exist before, after `sync` and a short
//! pause, and nothing is deleted until a figure's rounds are done. Deleting a thousand
//! files just before a timed part made ext4 spend up to half the CPU looking for free
//! slots, and made the floor swing by a factor of two.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use p11_testkit::{KeyKind, TestToken};

use crate::bench::{Figure, Plan, raw_rate, sample_pdf};
use crate::{Result, cargo, run_checked, target_dir};

const THREADS: [usize; 3] = [1, 2, 8];
const KEYS: [KeyKind; 2] = [KeyKind::Rsa2048, KeyKind::P256];

/// What one `pdfsign batch --json` run reported.
struct BatchRun {
    rate: f64,
    startup: f64,
}

pub(crate) fn run(plan: Plan) -> Result {
    println!(
        "== batch: pdfsign batch over {} one-page PDFs vs C = 1/(1/raw + 1/io), {} rounds",
        plan.files, plan.rounds
    );
    run_checked(cargo().args(["build", "--quiet", "--release", "-p", "pdfsign"]))?;
    let pdfsign = target_dir().join("release").join("pdfsign");
    let dir = target_dir().join("bench").join("batch");
    let inputs = make_inputs(&dir.join("in"), plan.files)?;
    let rounds_dir = dir.join("rounds");
    remove_dir(&rounds_dir)?;
    let pin_file = dir.join("pin");

    let mut builder = TestToken::builder("bench_batch");
    for kind in KEYS {
        builder = builder.key(kind);
    }
    let token = builder.try_build()?;
    std::fs::write(&pin_file, &token.user_pin)?;
    // One login held for the whole run, as a service would.
    let _login = token.user_session()?;

    println!(
        "  {:<8} {:>2} {:>21} {:>21} {:>21} {:>21} {:>8} {:>9}",
        "key", "-j", "raw sig/s", "io files/s", "ceiling C", "batch sig/s", "batch/C", "start-up"
    );
    for kind in KEYS {
        let uri = format!(
            "pkcs11:serial={};object={}?module-path={}&pin-source=file:{}",
            token.serial,
            kind.label(),
            token.module.path().display(),
            pin_file.display()
        );
        // A short batch first: it warms the binary and the inputs into the page cache,
        // and its outputs give the size the floor writes.
        let warm_up = rounds_dir.join(format!("{}-warm-up", kind.label()));
        batch_run(&pdfsign, &inputs[..inputs.len().min(50)], &warm_up, 2, &uri)?;
        let output_len = std::fs::metadata(warm_up.join(file_name(&inputs[0])?))?.len();
        for threads in THREADS {
            let (mut raw, mut io, mut ceiling, mut batch, mut startup) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for round in 0..plan.rounds {
                let round_dir = rounds_dir.join(format!("{}-j{threads}-{round}", kind.label()));
                settle();
                let r = raw_rate(&token, kind, threads, plan.round)?;
                settle();
                let i = io_rate(&inputs, &round_dir.join("io"), threads, output_len)?;
                settle();
                let b = batch_run(&pdfsign, &inputs, &round_dir.join("out"), threads, &uri)?;
                raw.push(r);
                io.push(i);
                ceiling.push(1.0 / (1.0 / r + 1.0 / i));
                batch.push(b.rate);
                startup.push(b.startup);
            }
            // Deleting is file-system work too: done between figures, never timed.
            remove_dir(&rounds_dir)?;
            let ratios: Vec<f64> = batch.iter().zip(&ceiling).map(|(b, c)| b / c).collect();
            let ratio = Figure::of(&ratios);
            println!(
                "  {:<8} {:>2} {} {} {} {} {:>7.1}% {:>8.3}s",
                kind.label(),
                threads,
                Figure::of(&raw),
                Figure::of(&io),
                Figure::of(&ceiling),
                Figure::of(&batch),
                100.0 * ratio.median,
                Figure::of(&startup).median,
            );
        }
    }
    println!("  targets: RSA-2048 batch/C >= 90%, P-256 batch/C >= 75% at every -j");
    Ok(())
}

/// Writes back every dirty page and waits a moment, so a timed part does not pay for
/// the one before it.
fn settle() {
    // `sync` flushes every file system; if it is missing the pause still helps.
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(300));
}

fn remove_dir(dir: &Path) -> Result {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name()
        .ok_or_else(|| format!("{} has no file name", path.display()).into())
}

/// The I/O floor: `threads` threads share `inputs`; each input is read, a temporary file
/// of `output_len` bytes (the size of a signed output) is written into `out` (made here,
/// so it starts empty), fsynced and renamed. Files per second.
fn io_rate(inputs: &[PathBuf], out: &Path, threads: usize, output_len: u64) -> Result<f64> {
    std::fs::create_dir_all(out)?;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<Result> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = inputs.get(i) else {
                            return Ok(());
                        };
                        // Read whole, as pdfsign reads a small input, then grown to the
                        // size of a signed output.
                        let mut bytes = std::fs::read(input)?;
                        bytes.resize(output_len as usize, b'\n');
                        let name = file_name(input)?.to_string_lossy();
                        let tmp = out.join(format!(".{name}.tmp"));
                        let mut file = std::fs::File::create(&tmp)?;
                        file.write_all(&bytes)?;
                        file.sync_all()?;
                        std::fs::rename(&tmp, out.join(&*name))?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    for result in results {
        result?;
    }
    Ok(inputs.len() as f64 / elapsed.as_secs_f64())
}

/// `files` copies of the sample PDF (made once).
fn make_inputs(dir: &Path, files: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let sample = std::fs::read(sample_pdf())?;
    (0..files)
        .map(|i| {
            let path = dir.join(format!("doc-{i:05}.pdf"));
            if !path.exists() {
                std::fs::write(&path, &sample)?;
            }
            Ok(path)
        })
        .collect()
}

/// One `pdfsign batch --json` run; its summary's rate and start-up.
fn batch_run(
    pdfsign: &Path,
    inputs: &[PathBuf],
    out: &Path,
    threads: usize,
    uri: &str,
) -> Result<BatchRun> {
    let output = Command::new(pdfsign)
        .args([
            "--json",
            "batch",
            "--progress",
            "none",
            "-j",
            &threads.to_string(),
            "-o",
        ])
        .arg(out)
        .args(["--key", uri])
        .args(inputs)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pdfsign batch failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            text.chars().take(500).collect::<String>()
        )
        .into());
    }
    let number = |key: &str| -> Result<f64> {
        let at = text
            .rfind(&format!("\"{key}\":"))
            .ok_or_else(|| format!("no {key} in pdfsign's JSON"))?;
        let rest = &text[at + key.len() + 3..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Ok(rest[..end].trim().parse::<f64>()?)
    };
    let signed = number("signed")?;
    if signed as usize != inputs.len() {
        return Err(format!("pdfsign batch signed {signed} of {} files", inputs.len()).into());
    }
    Ok(BatchRun {
        rate: number("signatures_per_second")?,
        startup: number("startup_seconds")?,
    })
}
