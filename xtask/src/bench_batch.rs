//! `cargo xtask bench batch`: `pdfsign batch` over many one-page PDFs against the
//! ceiling `C = 1 / (1/raw + 1/io)` of the same run, at -j 1, 2 and 8.
//!
//! Per key and thread count, each round measures in turn: the raw `C_SignInit` +
//! `C_Sign` rate (one session per thread, shared login), the bare file work (read, write
//! a temporary file, fsync, rename), and one `pdfsign batch` run whose own summary gives
//! files ÷ (first file opened → last rename), start-up reported apart. Medians of the
//! rounds, spread as ± half the range.

use std::path::{Path, PathBuf};
use std::process::Command;

use p11_testkit::{KeyKind, TestToken};

use crate::bench::{Figure, Plan, io_rate, raw_rate, sample_pdf};
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
    let out = dir.join("out");
    let io_out = dir.join("io");
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
        for threads in THREADS {
            let (mut raw, mut io, mut ceiling, mut batch, mut startup) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..plan.rounds {
                let r = raw_rate(&token, kind, threads, plan.round)?;
                let i = io_rate(&inputs, &io_out, threads)?;
                let b = batch_run(&pdfsign, &inputs, &out, threads, &uri)?;
                raw.push(r);
                io.push(i);
                ceiling.push(1.0 / (1.0 / r + 1.0 / i));
                batch.push(b.rate);
                startup.push(b.startup);
            }
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
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
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
