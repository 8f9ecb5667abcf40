//! Test keys over test-pki's software keys, and the OpenSSL judge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use cms_sign::{
    CmsSigner, DigestAlgorithm, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm,
    SignatureScheme,
};
use test_pki::{KeyKind, Pki, SoftwareKey};

/// How a test key answers `sign`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Signs the digest, as a token's `CKM_RSA_PKCS` / `CKM_RSA_PKCS_PSS` / `CKM_ECDSA`.
    Prehash,
    /// Hashes the message itself first, as a hash-and-sign mechanism would.
    HashAndSign,
    /// ECDSA returned as DER `Ecdsa-Sig-Value` instead of raw `r || s`.
    EcdsaDer,
    /// Returns the right signature shortened by this many bytes.
    Truncate(usize),
    /// Returns bytes of the right length that are no signature.
    Garbage,
    /// Fails.
    Fail,
}

/// A fixture key with its leaf certificate and the intermediate as chain.
pub(crate) struct TestKey {
    key: &'static SoftwareKey,
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    pub(crate) reported: KeyAlgorithm,
    pub(crate) allowed: Option<Vec<SignatureAlgorithm>>,
    pub(crate) behaviour: Behaviour,
    pub(crate) calls: AtomicUsize,
    pub(crate) last_message: Mutex<Vec<u8>>,
}

impl TestKey {
    pub(crate) fn new(kind: KeyKind) -> TestKey {
        let key = SoftwareKey::fixture(kind);
        TestKey {
            key,
            certificate: key.cert_der().to_vec(),
            chain: vec![Pki::fixture().intermediate_der().to_vec()],
            reported: key_algorithm(kind),
            allowed: None,
            behaviour: Behaviour::Prehash,
            calls: AtomicUsize::new(0),
            last_message: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn with_behaviour(kind: KeyKind, behaviour: Behaviour) -> TestKey {
        TestKey {
            behaviour,
            ..TestKey::new(kind)
        }
    }

    /// This key, presenting another certificate.
    pub(crate) fn with_certificate(kind: KeyKind, certificate: Vec<u8>) -> TestKey {
        TestKey {
            certificate,
            ..TestKey::new(kind)
        }
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn raw_sign(&self, algorithm: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(match algorithm.scheme {
            SignatureScheme::RsaPkcs1v15 => self.key.sign_pkcs1v15(digest)?,
            SignatureScheme::RsaPss => self.key.sign_pss(digest)?,
            SignatureScheme::Ecdsa => self.key.sign_ecdsa(digest)?,
        })
    }
}

impl CmsSigner for TestKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.reported
    }

    fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&algorithm))
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_message.lock().unwrap() = request.message.to_vec();
        assert_eq!(
            request.algorithm.digest.digest(request.message),
            request.digest,
            "the request's digest is the message's"
        );
        match self.behaviour {
            Behaviour::Prehash => self.raw_sign(request.algorithm, request.digest),
            Behaviour::HashAndSign => {
                let own = request.algorithm.digest.digest(request.message);
                self.raw_sign(request.algorithm, &own)
            }
            Behaviour::EcdsaDer => {
                let raw = self.raw_sign(request.algorithm, request.digest)?;
                Ok(ecdsa_raw_to_der(&raw))
            }
            Behaviour::Truncate(n) => {
                let mut sig = self.raw_sign(request.algorithm, request.digest)?;
                sig.truncate(sig.len() - n);
                Ok(sig)
            }
            Behaviour::Garbage => {
                let len = self.reported.raw_signature_len();
                Ok((0..len).map(|i| (i as u8).wrapping_mul(37) | 1).collect())
            }
            Behaviour::Fail => Err("the token is unplugged".into()),
        }
    }
}

/// A DER `Ecdsa-Sig-Value` written by hand (independently of the crate's converter).
pub(crate) fn ecdsa_raw_to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |v: &[u8]| {
        let mut v = v;
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        let mut out = vec![0x02];
        let pad = v[0] >= 0x80;
        let len = v.len() + usize::from(pad);
        out.push(len as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

pub(crate) fn key_algorithm(kind: KeyKind) -> KeyAlgorithm {
    match kind {
        KeyKind::Rsa2048 => KeyAlgorithm::Rsa { modulus_bits: 2048 },
        KeyKind::Rsa3072 => KeyAlgorithm::Rsa { modulus_bits: 3072 },
        KeyKind::P256 => KeyAlgorithm::Ec(EcCurve::P256),
        KeyKind::P384 => KeyAlgorithm::Ec(EcCurve::P384),
        KeyKind::P521 => KeyAlgorithm::Ec(EcCurve::P521),
    }
}

/// Every signature algorithm a key kind can use, with every digest.
pub(crate) fn algorithms(kind: KeyKind) -> Vec<SignatureAlgorithm> {
    let schemes: &[SignatureScheme] = if kind.is_rsa() {
        &[SignatureScheme::RsaPkcs1v15, SignatureScheme::RsaPss]
    } else {
        &[SignatureScheme::Ecdsa]
    };
    schemes
        .iter()
        .flat_map(|&scheme| {
            DigestAlgorithm::ALL
                .into_iter()
                .map(move |digest| SignatureAlgorithm::new(scheme, digest))
        })
        .collect()
}

/// Deterministic test content of `len` bytes.
pub(crate) fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cms-sign-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixture chain as PEM files (written once per process).
pub(crate) fn pem_files() -> &'static test_pki::PemFiles {
    static FILES: OnceLock<test_pki::PemFiles> = OnceLock::new();
    FILES.get_or_init(|| Pki::fixture().write_pem_files(&scratch("pki")).unwrap())
}

/// Whether `openssl` can be run. Under `CI` its absence fails the test; elsewhere the
/// test skips the external check with a note.
pub(crate) fn openssl_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required under CI but cannot be run"
        );
        eprintln!("note: openssl not found, skipping the OpenSSL check");
    }
    found
}

/// `openssl cms -verify -binary -inform DER -content DATA -CAfile ROOT -purpose any`:
/// Ok, or Err with OpenSSL's output.
pub(crate) fn openssl_verify(
    dir: &Path,
    name: &str,
    cms: &[u8],
    content: &[u8],
) -> Result<(), String> {
    let sig = dir.join(format!("{name}.p7s"));
    let data = dir.join(format!("{name}.bin"));
    std::fs::write(&sig, cms).unwrap();
    std::fs::write(&data, content).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&sig)
        .arg("-content")
        .arg(&data)
        .arg("-CAfile")
        .arg(&pem_files().root)
        .args(["-purpose", "any", "-out"])
        .arg(dir.join(format!("{name}.out")))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Verification successful") {
        Ok(())
    } else {
        Err(text)
    }
}

/// The position of `needle` in `haystack`, which must hold it exactly once.
pub(crate) fn find_once(haystack: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "expected exactly one occurrence");
    hits[0]
}
