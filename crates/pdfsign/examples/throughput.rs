//! Signs `fixtures/sample.pdf` in memory from several threads through one shared
//! [`Signer`] on a fresh SoftHSM2 token, checks an output with [`pdfsign::verify_file`],
//! and compares the rate with raw `C_SignInit` + `C_Sign` on the same key at the same
//! thread count (one session per thread), in interleaved rounds.
//!
//! ```text
//! cargo run --release -p pdfsign --example throughput -- [p256|rsa2048|...] [THREADS] [SECONDS]
//! ```
//!
//! It makes its own token with the test kit (cargo sets `SOFTHSM2_CONF` to the test
//! configuration), so it needs only SoftHSM2. Not a benchmark to quote: `cargo xtask
//! bench` measures properly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use p11_raw::{Attribute, Mechanism, MechanismType, ObjectClass};
use p11_testkit::{KeyKind, TestToken};
use pdfsign::{Pin, Pkcs11Uri, SignOptions, Signer};
use sha2::{Digest as _, Sha256};

/// SHA-256 DigestInfo prefix (RFC 8017 section 9.2, note 1).
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = match args.first().map(String::as_str).unwrap_or("p256") {
        "rsa2048" => KeyKind::Rsa2048,
        "rsa3072" => KeyKind::Rsa3072,
        "p256" => KeyKind::P256,
        "p384" => KeyKind::P384,
        "p521" => KeyKind::P521,
        other => return Err(format!("unknown key type {other}").into()),
    };
    let threads: usize = args.get(1).map_or(Ok(2), |t| t.parse())?;
    let seconds: f64 = args.get(2).map_or(Ok(2.0), |s| s.parse())?;
    let round = Duration::from_secs_f64(seconds);

    let token = TestToken::builder("throughput-example").key(kind).build();
    let mut uri = Pkcs11Uri::new();
    uri.set_token(&token.label)
        .set_object(kind.label())
        .set_module_path(&token.module.path().display().to_string());
    let signer = Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &SignOptions::default(),
    )?;

    let pdf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/sample.pdf"
    ))?;
    let signed = signer.sign_bytes(&pdf)?;
    let path = std::env::temp_dir().join(format!("pdfsign-throughput-{}.pdf", std::process::id()));
    std::fs::write(&path, &signed)?;
    let report = pdfsign::verify_file(&path, &[])?;
    std::fs::remove_file(&path)?;
    assert!(
        report.signatures.len() == 1 && report.signatures[0].integrity,
        "{report:?}"
    );

    let mut raw_rates = Vec::new();
    let mut signer_rates = Vec::new();
    for _ in 0..3 {
        raw_rates.push(rate(threads, round, |_| raw_signer(&token, kind))?);
        signer_rates.push(rate(threads, round, |_| {
            let signer = signer.clone();
            let pdf = pdf.clone();
            Ok(Box::new(move || {
                signer.sign_bytes(&pdf).map(drop).map_err(Into::into)
            }))
        })?);
    }
    let (raw, ours) = (median(&mut raw_rates), median(&mut signer_rates));
    println!(
        "{kind}, {threads} thread(s): raw C_Sign {raw:.0}/s, Signer::sign_bytes {ours:.0}/s ({:.0}% of raw)",
        100.0 * ours / raw
    );
    println!("  rounds: raw {raw_rates:.0?}, signer {signer_rates:.0?}");
    Ok(())
}

type Work = Box<dyn FnMut() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// A closure signing one digest with `C_SignInit` + `C_Sign` on its own session (the
/// token is logged in: the signer's lease keeps it so).
fn raw_signer(
    token: &TestToken,
    kind: KeyKind,
) -> Result<Work, Box<dyn std::error::Error + Send + Sync>> {
    let mut session = token.module.open_session(token.slot, false)?;
    let key = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Label(kind.label().as_bytes().to_vec()),
    ])?[0];
    let digest = Sha256::digest(b"raw");
    let (mechanism, data) = if kind.is_rsa() {
        (
            MechanismType::RSA_PKCS,
            [&SHA256_PREFIX[..], &digest].concat(),
        )
    } else {
        (MechanismType::ECDSA, digest.to_vec())
    };
    let len = kind.signature_len();
    Ok(Box::new(move || {
        session
            .sign_init(&Mechanism::new(mechanism), key)?
            .sign(&data, len)?;
        Ok(())
    }))
}

/// Operations per second of `threads` threads each running its work for `round`.
fn rate(
    threads: usize,
    round: Duration,
    make: impl Fn(usize) -> Result<Work, Box<dyn std::error::Error + Send + Sync>> + Sync,
) -> Result<f64, Box<dyn std::error::Error>> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let works: Vec<Work> = (0..threads)
        .map(&make)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mut work in works {
            let (count, stop) = (Arc::clone(&count), Arc::clone(&stop));
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    work().expect("signing failed");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(round);
        stop.store(true, Ordering::Relaxed);
    });
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
