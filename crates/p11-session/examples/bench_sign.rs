//! What the pool and the login-state machine cost: raw `C_SignInit` + `C_Sign` through
//! p11-raw (one session per thread, one shared login) against `SigningKey::sign` on the
//! same key at the same thread count, on a SoftHSM2 token of the test kit.
//!
//! Each figure is the median of rounds (default 5 of 5 s per variant), with the spread
//! `(max - min) / median`. Within a round raw and library run in alternating slices
//! (default 1 s, the order flipping each slice), so both see the same background load;
//! the ratio is the median of the per-round ratios library ÷ raw. Raw threads keep their
//! own session across rounds; the library's pool is sized to the most threads, as a
//! service would size it. Not a test: the machine is noisy.
//!
//! ```text
//! cargo run --release -p p11-session --example bench_sign -- [--seconds 5] [--slice 1] \
//!     [--rounds 5] [--threads 1,2,8] [--keys rsa2048,rsa3072,p256,p384,p521]
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, PoisonError};
use std::time::{Duration, Instant};

use p11_raw::{Mechanism, MechanismType, ObjectHandle, Session};
use p11_session::{KeyQuery, SigningKey, Token, TokenConfig, TokenQuery};
use p11_testkit::{KeyKind, Scheme, TestToken, verify_prehash};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Parsed command line.
struct Args {
    seconds: f64,
    slice: f64,
    rounds: usize,
    threads: Vec<usize>,
    keys: Vec<KeyKind>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 5.0,
        slice: 1.0,
        rounds: 5,
        threads: vec![1, 2, 8],
        keys: KeyKind::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--slice" => {
                args.slice = value()?.parse().map_err(|e| format!("--slice: {e}"))?;
            }
            "--rounds" => {
                args.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
            }
            "--threads" => {
                args.threads = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--threads: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--keys" => {
                args.keys = value()?
                    .split(',')
                    .map(|name| {
                        KeyKind::ALL
                            .into_iter()
                            .find(|k| k.label() == name.trim())
                            .ok_or(format!("--keys: unknown key type {name:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--help" | "-h" => {
                println!(
                    "bench_sign [--seconds S] [--slice S] [--rounds N] [--threads 1,2,8] \
                     [--keys rsa2048,rsa3072,p256,p384,p521]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.rounds == 0 || args.seconds <= 0.0 || args.slice <= 0.0 || args.threads.contains(&0) {
        return Err("rounds, seconds and thread counts must be positive".into());
    }
    Ok(args)
}

/// The mechanism and input for a key type: PKCS#1 v1.5 over a SHA-256 DigestInfo for
/// RSA, ECDSA over a digest as long as the curve's hash for EC.
fn workload(kind: KeyKind) -> (Mechanism, Vec<u8>, Scheme, Vec<u8>) {
    let data = b"the bytes a PDF signature covers";
    if kind.is_rsa() {
        let digest = Sha256::digest(data).to_vec();
        let mut info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        info.extend_from_slice(&digest);
        (
            Mechanism::new(MechanismType::RSA_PKCS),
            info,
            Scheme::Pkcs1v15,
            digest,
        )
    } else {
        let digest = match kind {
            KeyKind::P384 => Sha384::digest(data).to_vec(),
            KeyKind::P521 => Sha512::digest(data).to_vec(),
            _ => Sha256::digest(data).to_vec(),
        };
        (
            Mechanism::new(MechanismType::ECDSA),
            digest.clone(),
            Scheme::Ecdsa,
            digest,
        )
    }
}

/// Signatures made, the wall-clock seconds and the process CPU ticks they took.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    signatures: u64,
    seconds: f64,
    cpu_ticks: Option<u64>,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.signatures += other.signatures;
        self.seconds += other.seconds;
        self.cpu_ticks = match (self.cpu_ticks, other.cpu_ticks) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) if self.signatures == other.signatures => b,
            _ => None,
        };
    }

    fn rate(&self) -> f64 {
        self.signatures as f64 / self.seconds
    }

    /// Signatures per CPU tick: what the work costs, whatever else the machine runs.
    fn per_cpu(&self) -> Option<f64> {
        self.cpu_ticks
            .filter(|&t| t > 0)
            .map(|t| self.signatures as f64 / t as f64)
    }
}

/// User plus system CPU ticks of this process so far (Linux `/proc/self/stat`, fields
/// 14 and 15); `None` elsewhere. Ticks of finished threads are included.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Runs `threads` workers for `duration`, each calling the signer `make` gives it in a
/// loop.
fn run<'a>(
    threads: usize,
    duration: Duration,
    make: &(dyn Fn(usize) -> Box<dyn FnMut() + 'a> + Sync),
) -> Sample {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Barrier::new(threads + 1);
    let began = std::thread::scope(|scope| {
        for index in 0..threads {
            let (stop, count, start) = (&stop, &count, &start);
            scope.spawn(move || {
                let mut one = make(index);
                start.wait();
                let mut mine = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    one();
                    mine += 1;
                }
                count.fetch_add(mine, Ordering::Relaxed);
            });
        }
        start.wait();
        let began = (Instant::now(), cpu_ticks());
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        began
    });
    // Workers finish the signature in flight after `stop`: count the time they took.
    let (wall, cpu) = began;
    Sample {
        signatures: count.load(Ordering::Relaxed),
        seconds: wall.elapsed().as_secs_f64(),
        cpu_ticks: cpu.zip(cpu_ticks()).map(|(before, after)| after - before),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn spread(values: &[f64], median: f64) -> f64 {
    let (min, max) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    (max - min) / median * 100.0
}

/// Raw signing on this thread's own session (kept across rounds), the handle found once.
fn raw_signer<'a>(
    session: &'a Mutex<Session>,
    handle: ObjectHandle,
    mechanism: &'a Mechanism,
    input: &'a [u8],
    len: usize,
) -> Box<dyn FnMut() + 'a> {
    // Only this thread takes this lock, once per slice.
    let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
    Box::new(move || {
        session
            .sign_init(mechanism, handle)
            .expect("C_SignInit")
            .sign(input, len)
            .expect("C_Sign");
    })
}

fn library_signer<'a>(
    key: &'a SigningKey,
    mechanism: &'a Mechanism,
    input: &'a [u8],
) -> Box<dyn FnMut() + 'a> {
    Box::new(move || {
        key.sign(mechanism, input).expect("SigningKey::sign");
    })
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bench_sign: {message}");
            std::process::exit(2);
        }
    };
    let mut builder = TestToken::builder("bench_sign");
    for &kind in &args.keys {
        builder = builder.key(kind);
    }
    let test = builder.build();
    let max_threads = args.threads.iter().copied().max().unwrap_or(1);
    // A service sizes its pool to its signing threads; so does the benchmark.
    let token = Token::open_with(
        &test.module,
        &TokenQuery::Serial(test.serial.clone()),
        TokenConfig::new().pool_size(max_threads),
    )
    .expect("open the token");
    let lease = token.login(test.user_pin.as_bytes()).expect("log in");
    let slices = (args.seconds / args.slice).ceil().max(1.0) as usize;
    let slice_duration = Duration::from_secs_f64(args.seconds / slices as f64);

    println!(
        "SoftHSM2, {} round(s) of {:.1} s per figure and variant, raw and library \
         interleaved in {} slice(s) each; spread = (max - min) / median",
        args.rounds, args.seconds, slices
    );
    println!(
        "{:<8} {:>7} {:>12} {:>8} {:>12} {:>8} {:>9} {:>8} {:>18} {:>9}",
        "key",
        "threads",
        "raw sig/s",
        "spread",
        "lib sig/s",
        "spread",
        "lib/raw",
        "cost",
        "ratio range",
        "cpu l/r"
    );
    let mut worst: f64 = 0.0;
    for &kind in &args.keys {
        let key = lease
            .key(&KeyQuery::Label(kind.label().into()))
            .expect("find the key");
        let (mechanism, input, scheme, digest) = workload(kind);
        let len = kind.signature_len();
        // Both paths give signatures that verify.
        let check = key.sign(&mechanism, &input).expect("sign");
        verify_prehash(&test.key(kind).cert_der, scheme, &digest, &check).expect("verify");
        let raw_handle = {
            let session = test.module.open_session(test.slot, false).expect("session");
            test.private_key(&session, kind.label())
                .expect("raw key handle")
        };
        for &threads in &args.threads {
            let sessions: Vec<Mutex<Session>> = (0..threads)
                .map(|_| {
                    let session = test.module.open_session(test.slot, false);
                    Mutex::new(session.expect("open a raw session"))
                })
                .collect();
            let raw_make =
                |index: usize| raw_signer(&sessions[index], raw_handle, &mechanism, &input, len);
            let library_make = |_| library_signer(&key, &mechanism, &input);
            let mut raw = Vec::with_capacity(args.rounds);
            let mut library = Vec::with_capacity(args.rounds);
            let mut ratios = Vec::with_capacity(args.rounds);
            let mut cpu_ratios = Vec::with_capacity(args.rounds);
            for round in 0..args.rounds {
                // A round alternates raw and library slices, the order flipping each
                // time, so both see the same background load.
                let (mut raw_total, mut library_total) = (Sample::default(), Sample::default());
                for slice in 0..slices {
                    if (round + slice) % 2 == 0 {
                        raw_total.add(run(threads, slice_duration, &raw_make));
                        library_total.add(run(threads, slice_duration, &library_make));
                    } else {
                        library_total.add(run(threads, slice_duration, &library_make));
                        raw_total.add(run(threads, slice_duration, &raw_make));
                    }
                }
                raw.push(raw_total.rate());
                library.push(library_total.rate());
                ratios.push(library_total.rate() / raw_total.rate());
                if let (Some(l), Some(r)) = (library_total.per_cpu(), raw_total.per_cpu()) {
                    cpu_ratios.push(l / r);
                }
            }
            let raw_median = median(&mut raw);
            let library_median = median(&mut library);
            let ratio = median(&mut ratios);
            worst = worst.max(1.0 - ratio);
            let cpu_ratio = if cpu_ratios.is_empty() {
                "n/a".to_owned()
            } else {
                format!("{:.4}", median(&mut cpu_ratios))
            };
            println!(
                "{:<8} {:>7} {:>12.1} {:>7.1}% {:>12.1} {:>7.1}% {:>9.4} {:>7.2}% {:>8.4}..{:<8.4} {:>9}",
                kind.label(),
                threads,
                raw_median,
                spread(&raw, raw_median),
                library_median,
                spread(&library, library_median),
                ratio,
                (1.0 - ratio) * 100.0,
                ratios[0],
                ratios[ratios.len() - 1],
                cpu_ratio,
            );
        }
    }
    let figures = token.metrics().snapshot();
    println!(
        "library: {} signatures, {} failures, {} retries, {} login(s), {} key look-ups, \
         pool peak {}, {} waits for a session",
        figures.signatures,
        figures.sign_failures,
        figures.retries,
        figures.logins,
        figures.key_lookups,
        figures.pool_peak,
        figures.session_waits,
    );
    println!(
        "largest cost (1 - median lib/raw): {:.2}% (target: under 3%); cpu l/r = median \
         ratio of signatures per CPU second, library / raw (blind to other processes' load)",
        worst * 100.0
    );
}
