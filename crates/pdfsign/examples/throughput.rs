//! `Signer::sign_bytes` in memory against raw `C_SignInit` + `C_Sign` on the same key at
//! the same thread count (one session per thread), as DESIGN.md's "Measuring" says:
//! each figure the median of interleaved rounds, spread as ± half the range. Within a
//! round the two alternate in one-second slices, so that the machine's drift falls on
//! both alike; the ratio is taken per round.
//!
//! ```text
//! cargo run --release -p pdfsign --example throughput -- \
//!     [--rounds N] [--seconds S] [--threads 1,2,8] [rsa2048|rsa3072|p256|p384|p521]...
//! ```
//!
//! It also reports what `pdf-sig`'s part of a signature costs on its own (prepare and
//! finish of the sample in memory, in a tight loop): the PDF work each `sign_bytes`
//! adds to the token's signature.
//!
//! `cargo xtask bench bytes` runs it for RSA-2048 and P-256. It makes its own token with
//! the test kit (cargo sets `SOFTHSM2_CONF` to the test configuration), so it needs only
//! SoftHSM2, and checks one output with [`pdfsign::verify_file`] before measuring.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use p11_raw::{Attribute, Mechanism, MechanismType, ObjectClass};
use p11_testkit::{KeyKind, TestToken};
use pdfsign::{Pin, Pkcs11Uri, SignOptions, Signer};
use sha2::{Digest as _, Sha256};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// SHA-256 DigestInfo prefix (RFC 8017 section 9.2, note 1).
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// What to measure.
struct Plan {
    rounds: usize,
    /// Seconds per round and side, in one-second slices.
    seconds: u32,
    threads: Vec<usize>,
    kinds: Vec<KeyKind>,
}

fn parse_args() -> Result<Plan, BoxError> {
    let mut plan = Plan {
        rounds: 5,
        seconds: 5,
        threads: vec![1, 2, 8],
        kinds: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => plan.rounds = value()?.parse()?,
            "--seconds" => plan.seconds = value()?.parse()?,
            "--threads" => {
                plan.threads = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "rsa2048" => plan.kinds.push(KeyKind::Rsa2048),
            "rsa3072" => plan.kinds.push(KeyKind::Rsa3072),
            "p256" => plan.kinds.push(KeyKind::P256),
            "p384" => plan.kinds.push(KeyKind::P384),
            "p521" => plan.kinds.push(KeyKind::P521),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if plan.kinds.is_empty() {
        plan.kinds = vec![KeyKind::Rsa2048, KeyKind::P256];
    }
    if plan.rounds == 0 || plan.seconds == 0 || plan.threads.contains(&0) {
        return Err("rounds, seconds and thread counts must be at least 1".into());
    }
    Ok(plan)
}

fn main() -> Result<(), BoxError> {
    let plan = parse_args()?;
    let mut builder = TestToken::builder("throughput-example");
    for &kind in &plan.kinds {
        builder = builder.key(kind);
    }
    let token = builder.try_build()?;
    let pdf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/sample.pdf"
    ))?;
    println!(
        "  {:<8} {:>2} {:>21} {:>21} {:>14}",
        "key", "-j", "raw sig/s", "sign_bytes sig/s", "sign_bytes/raw"
    );
    for &kind in &plan.kinds {
        let signer = open_signer(&token, kind)?;
        check_output(&signer, &pdf)?;
        for &threads in &plan.threads {
            let (mut raw, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..plan.rounds {
                let (r, s) = round(&token, kind, &signer, &pdf, threads, plan.seconds)?;
                raw.push(r);
                ours.push(s);
                ratios.push(s / r);
            }
            let ratio = Figure::of(&ratios);
            println!(
                "  {:<8} {:>2} {} {} {:>7.1}% (±{:.1})",
                kind.label(),
                threads,
                Figure::of(&raw),
                Figure::of(&ours),
                100.0 * ratio.median,
                50.0 * (ratio.max - ratio.min),
            );
        }
    }
    println!("  targets: sign_bytes/raw >= 95% (RSA-2048), >= 60% (P-256)");
    let costs: Vec<f64> = (0..plan.rounds)
        .map(|_| pdf_work_micros(&pdf))
        .collect::<Result<_, _>>()?;
    let cost = Figure::of(&costs);
    println!(
        "  pdf-sig prepare + finish of the sample, alone: {:.2} us per signature (±{:.2})",
        cost.median,
        (cost.max - cost.min) / 2.0
    );
    Ok(())
}

/// Microseconds per `pdf-sig` prepare and finish of `pdf` in memory (as
/// `Signer::sign_bytes` does them), over half a second,
/// with a container of a typical size.
fn pdf_work_micros(pdf: &[u8]) -> Result<f64, BoxError> {
    let options = pdf_sig::SignOptions::default();
    let spec = pdf_sig::ContainerSpec::new(pdf_sig::DigestAlgorithm::Sha256, 2500);
    let container = vec![0x30; 2200];
    let start = Instant::now();
    let mut count = 0u32;
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..100 {
            let prepared = pdf_sig::prepare_bytes(pdf, &options, spec)?;
            std::hint::black_box(prepared.digest());
            std::hint::black_box(prepared.finish(&container)?);
        }
        count += 100;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(count))
}

fn open_signer(token: &TestToken, kind: KeyKind) -> Result<Signer, BoxError> {
    let mut uri = Pkcs11Uri::new();
    uri.set_token(&token.label)
        .set_object(kind.label())
        .set_module_path(&token.module.path().display().to_string());
    Ok(Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &SignOptions::default(),
    )?)
}

/// What is measured must be a valid signature.
fn check_output(signer: &Signer, pdf: &[u8]) -> Result<(), BoxError> {
    let signed = signer.sign_bytes(pdf)?;
    let path = std::env::temp_dir().join(format!("pdfsign-throughput-{}.pdf", std::process::id()));
    std::fs::write(&path, &signed)?;
    let report = pdfsign::verify_file(&path, &[]);
    std::fs::remove_file(&path)?;
    let report = report?;
    if report.signatures.len() != 1 || !report.signatures[0].integrity {
        return Err(format!("the signed sample does not verify: {report:?}").into());
    }
    Ok(())
}

/// One round: `seconds` one-second slices of raw signing, each followed by one of
/// `sign_bytes`. The rates (raw, ours) over the round.
fn round(
    token: &TestToken,
    kind: KeyKind,
    signer: &Signer,
    pdf: &[u8],
    threads: usize,
    seconds: u32,
) -> Result<(f64, f64), BoxError> {
    let mut sessions = (0..threads)
        .map(|_| RawSigner::open(token, kind))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut raw, mut ours) = (Counted::default(), Counted::default());
    for _ in 0..seconds {
        raw.add(slice(&mut sessions, |raw| raw.sign())?);
        let mut signers = vec![(signer, pdf); threads];
        ours.add(slice(&mut signers, |(signer, pdf)| {
            signer.sign_bytes(pdf).map(drop).map_err(Into::into)
        })?);
    }
    Ok((raw.rate(), ours.rate()))
}

/// Operations and time.
#[derive(Default)]
struct Counted {
    operations: u64,
    elapsed: Duration,
}

impl Counted {
    fn add(&mut self, (operations, elapsed): (u64, Duration)) {
        self.operations += operations;
        self.elapsed += elapsed;
    }

    fn rate(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }
}

/// One second of every worker running `work` in a loop on a thread of its own: the
/// operations done, and the time from the common start until the last one stopped.
fn slice<T: Send>(
    workers: &mut [T],
    work: impl Fn(&mut T) -> Result<(), BoxError> + Sync,
) -> Result<(u64, Duration), BoxError> {
    let barrier = Barrier::new(workers.len() + 1);
    let stop = AtomicBool::new(false);
    let (counts, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|worker| {
                let (barrier, stop, work) = (&barrier, &stop, &work);
                scope.spawn(move || -> Result<u64, BoxError> {
                    barrier.wait();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        work(worker)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let counts: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect();
        (counts, start.elapsed())
    });
    let mut total = 0;
    for count in counts {
        total += count?;
    }
    Ok((total, elapsed))
}

/// `C_SignInit` + `C_Sign` over a fixed digest on a session of its own (the token is
/// logged in: the signer's lease keeps it so).
struct RawSigner {
    session: p11_raw::Session,
    key: p11_raw::ObjectHandle,
    mechanism: Mechanism,
    data: Vec<u8>,
    len: usize,
}

impl RawSigner {
    fn open(token: &TestToken, kind: KeyKind) -> Result<RawSigner, BoxError> {
        let session = token.module.open_session(token.slot, false)?;
        let key = *session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(kind.label().as_bytes().to_vec()),
            ])?
            .first()
            .ok_or("the key is not on the token")?;
        let digest = Sha256::digest(b"raw");
        let (mechanism, data) = if kind.is_rsa() {
            (
                MechanismType::RSA_PKCS,
                [&SHA256_PREFIX[..], &digest].concat(),
            )
        } else {
            (MechanismType::ECDSA, digest.to_vec())
        };
        Ok(RawSigner {
            session,
            key,
            mechanism: Mechanism::new(mechanism),
            data,
            len: kind.signature_len(),
        })
    }

    fn sign(&mut self) -> Result<(), BoxError> {
        self.session
            .sign_init(&self.mechanism, self.key)?
            .sign(&self.data, self.len)?;
        Ok(())
    }
}

/// Median and range of a set of samples.
struct Figure {
    median: f64,
    min: f64,
    max: f64,
}

impl Figure {
    fn of(samples: &[f64]) -> Figure {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Figure {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let spread = 50.0 * (self.max - self.min) / self.median;
        write!(f, "{:>9.1} (±{spread:.0}%)", self.median)
    }
}
