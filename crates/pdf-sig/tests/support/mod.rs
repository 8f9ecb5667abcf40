//! Test support: fixtures, scratch directories, a CMS signature container over the
//! fixture keys, and the independent validators (pdfsig, qpdf, openssl, pyHanko).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cms_sign::{
    CmsSigner, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm, SignatureScheme,
    SignedDataBuilder,
};
use pdf_sig::{DigestAlgorithm, SignatureContainer, SubFilter};
use test_pki::{KeyKind, Pki, SoftwareKey};

/// A PDF of `fixtures/pdf`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pdf")
        .join(name)
}

/// A fresh, empty directory for one test under the target directory.
pub(crate) fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pdf-sig")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The files in `dir`, sorted: a test checks that nothing (no temporary file) is left.
pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fixture key signing like a token would: prehashed, raw `r || s` for ECDSA.
struct FixtureKey {
    kind: KeyKind,
    key: &'static SoftwareKey,
    chain: Vec<Vec<u8>>,
}

impl CmsSigner for FixtureKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        match self.kind {
            KeyKind::P256 => KeyAlgorithm::Ec(EcCurve::P256),
            KeyKind::P384 => KeyAlgorithm::Ec(EcCurve::P384),
            KeyKind::P521 => KeyAlgorithm::Ec(EcCurve::P521),
            kind => KeyAlgorithm::Rsa {
                modulus_bits: kind.bits(),
            },
        }
    }

    fn certificate(&self) -> &[u8] {
        self.key.cert_der()
    }

    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        Ok(match request.algorithm.scheme {
            SignatureScheme::RsaPkcs1v15 => self.key.sign_pkcs1v15(request.digest)?,
            SignatureScheme::RsaPss => self.key.sign_pss(request.digest)?,
            SignatureScheme::Ecdsa => self.key.sign_ecdsa(request.digest)?,
        })
    }
}

/// A [`SignatureContainer`] made of cms-sign's builder and a fixture key.
pub(crate) struct CmsContainer {
    builder: SignedDataBuilder,
    bound: usize,
}

impl CmsContainer {
    /// A container for `kind` signing with `digest` in the profile of `sub_filter`.
    pub(crate) fn new(kind: KeyKind, digest: DigestAlgorithm, sub_filter: SubFilter) -> Self {
        let key = FixtureKey {
            kind,
            key: SoftwareKey::fixture(kind),
            chain: vec![Pki::fixture().intermediate_der().to_vec()],
        };
        let digest = match digest {
            DigestAlgorithm::Sha256 => cms_sign::DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384 => cms_sign::DigestAlgorithm::Sha384,
            _ => cms_sign::DigestAlgorithm::Sha512,
        };
        let algorithm = SignatureAlgorithm::default_for(key.key_algorithm(), digest);
        let sub_filter = match sub_filter {
            SubFilter::AdbePkcs7Detached => {
                cms_sign::SubFilter::Pkcs7Detached { signing_time: None }
            }
            _ => cms_sign::SubFilter::CadesDetached,
        };
        let builder = SignedDataBuilder::new(Arc::new(key), algorithm, sub_filter).unwrap();
        let bound = builder.size_bound().unwrap();
        CmsContainer { builder, bound }
    }

    /// The usual test signer: P-256, SHA-256, CAdES.
    pub(crate) fn p256() -> Self {
        CmsContainer::new(
            KeyKind::P256,
            DigestAlgorithm::Sha256,
            SubFilter::EtsiCadesDetached,
        )
    }
}

impl SignatureContainer for CmsContainer {
    fn digest_algorithm(&self) -> DigestAlgorithm {
        match self.builder.algorithm().digest {
            cms_sign::DigestAlgorithm::Sha256 => DigestAlgorithm::Sha256,
            cms_sign::DigestAlgorithm::Sha384 => DigestAlgorithm::Sha384,
            _ => DigestAlgorithm::Sha512,
        }
    }

    fn max_len(&self) -> usize {
        self.bound
    }

    fn sign_digest(
        &self,
        digest: &[u8],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.builder.sign(digest)?)
    }
}

/// A signature found in a file: its `/ByteRange` and the DER of its `/Contents`.
pub(crate) struct FoundSignature {
    pub(crate) byte_range: [usize; 4],
    pub(crate) der: Vec<u8>,
}

impl FoundSignature {
    /// The signed bytes: both ranges, concatenated.
    pub(crate) fn signed_bytes(&self, file: &[u8]) -> Vec<u8> {
        let [a, b, c, d] = self.byte_range;
        [&file[a..a + b], &file[c..c + d]].concat()
    }
}

/// Finds every signature in `file` by its `/ByteRange`, and checks that the gap
/// between the ranges is exactly a `<...>` hex string.
pub(crate) fn signatures(file: &[u8]) -> Vec<FoundSignature> {
    let mut found = Vec::new();
    let key = b"/ByteRange";
    let mut at = 0;
    while let Some(position) = file[at..]
        .windows(key.len())
        .position(|window| window == key)
    {
        let start = at + position + key.len();
        at = start;
        let open = start + file[start..].iter().position(|&byte| byte == b'[').unwrap();
        let close = open + file[open..].iter().position(|&byte| byte == b']').unwrap();
        let numbers: Vec<usize> = std::str::from_utf8(&file[open + 1..close])
            .unwrap()
            .split_ascii_whitespace()
            .map(|number| number.parse().unwrap())
            .collect();
        let byte_range: [usize; 4] = numbers.try_into().unwrap();
        let gap = &file[byte_range[0] + byte_range[1]..byte_range[2]];
        assert_eq!(gap.first(), Some(&b'<'), "gap does not start with <");
        assert_eq!(gap.last(), Some(&b'>'), "gap does not end with >");
        let hex = &gap[1..gap.len() - 1];
        let bytes: Vec<u8> = hex
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect();
        found.push(FoundSignature {
            byte_range,
            der: der_prefix(&bytes).to_vec(),
        });
    }
    found
}

/// The DER object at the start of `bytes`, without the placeholder's zero padding.
fn der_prefix(bytes: &[u8]) -> &[u8] {
    let (len, header) = match bytes[1] {
        short @ 0..=0x7F => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7F);
            let len = bytes[2..2 + count]
                .iter()
                .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
            (len, 2 + count)
        }
    };
    &bytes[..header + len]
}

/// Whether validators must be present: under `CI` a missing one fails the test.
fn required() -> bool {
    std::env::var_os("CI").is_some()
}

/// Whether `program` can be run; prints a note (or panics under `CI`) if not.
fn available(program: &str) -> bool {
    static FOUND: OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>> =
        OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    *cache.entry(program.to_owned()).or_insert_with(|| {
        // Found means it runs; each tool answers its own way to a version flag (pdfsig
        // takes `-v` and exits non-zero on `--version`), so only the spawn is judged.
        let found = Command::new(program).arg("-v").output().is_ok();
        if !found {
            assert!(!required(), "validator {program} is missing and CI is set");
            eprintln!("note: validator {program} not found; its checks are skipped");
        }
        found
    })
}

fn pyhanko() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/venv/bin/pyhanko")
        .to_string_lossy()
        .into_owned()
}

/// Trust material written once per process: the test PKI's root and intermediate, and
/// the self-signed certificate the pyHanko-signed fixtures use.
pub(crate) struct Trust {
    pub(crate) roots: PathBuf,
    pub(crate) intermediate: PathBuf,
}

pub(crate) fn trust() -> &'static Trust {
    static TRUST: OnceLock<Trust> = OnceLock::new();
    TRUST.get_or_init(|| {
        let dir = scratch("trust");
        let files = Pki::fixture().write_pem_files(&dir).unwrap();
        let pyhanko_signer = fixture("pyhanko-signer.pem");
        let roots = dir.join("roots.pem");
        let bundle = [
            fs::read(&files.root).unwrap(),
            fs::read(&pyhanko_signer).unwrap(),
        ]
        .concat();
        fs::write(&roots, bundle).unwrap();
        Trust {
            roots,
            intermediate: files.intermediate,
        }
    })
}

/// Whether and how pyHanko (about 0.8 s a call) judges a file too.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PyHanko {
    Skip,
    Strict,
    /// `--no-strict-syntax`: pyHanko refuses hybrid-reference files without it.
    Lenient,
}

/// Checks a signed file with every validator: each of the `expected` signatures is
/// valid for pdfsig and openssl, the last covers the whole file, qpdf finds no error,
/// and (unless skipped) pyHanko judges every signature intact and trusted.
pub(crate) fn validate(path: &Path, expected: usize, pyhanko_mode: PyHanko) {
    let pyhanko_too = pyhanko_mode != PyHanko::Skip;
    let file = fs::read(path).unwrap();
    let found = signatures(&file);
    assert_eq!(
        found.len(),
        expected,
        "{}: signatures found",
        path.display()
    );
    let last = found.last().unwrap();
    assert_eq!(
        last.byte_range[2] + last.byte_range[3],
        file.len(),
        "the last signature covers the whole file"
    );

    if available("qpdf") {
        let output = Command::new("qpdf")
            .arg("--check")
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "qpdf --check {}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.contains("No syntax or stream encoding errors"),
            "qpdf: {text}"
        );
    }

    if available("pdfsig") {
        let output = Command::new("pdfsig").arg(path).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            text.matches("Signature Validation: Signature is Valid.")
                .count(),
            expected,
            "pdfsig: {text}"
        );
        let last_block = text.rsplit("Signature #").next().unwrap();
        assert!(
            last_block.contains("Total document signed"),
            "pdfsig: the last signature covers all: {text}"
        );
    }

    if available("openssl") {
        let dir = path.with_extension("openssl");
        fs::create_dir_all(&dir).unwrap();
        for (index, signature) in found.iter().enumerate() {
            let der = dir.join(format!("{index}.der"));
            let content = dir.join(format!("{index}.bin"));
            fs::write(&der, &signature.der).unwrap();
            fs::write(&content, signature.signed_bytes(&file)).unwrap();
            let output = Command::new("openssl")
                .args([
                    "cms",
                    "-verify",
                    "-binary",
                    "-inform",
                    "DER",
                    "-purpose",
                    "any",
                    "-out",
                    "/dev/null",
                ])
                .arg("-in")
                .arg(&der)
                .arg("-content")
                .arg(&content)
                .arg("-CAfile")
                .arg(&trust().roots)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "openssl cms -verify, signature {index} of {}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    if pyhanko_too && (Path::new(&pyhanko()).exists() || required()) {
        let trust = trust();
        let output = Command::new(pyhanko())
            .args(["sign", "validate", "--no-revocation-check"])
            .args(if pyhanko_mode == PyHanko::Lenient {
                &["--no-strict-syntax"][..]
            } else {
                &[]
            })
            .arg("--trust")
            .arg(&trust.roots)
            .arg("--trust-replace")
            .arg("--other-certs")
            .arg(&trust.intermediate)
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pyhanko validate {}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = text.lines().filter(|line| line.contains(':')).collect();
        assert_eq!(lines.len(), expected, "pyhanko: {text}");
        for line in lines {
            assert!(line.contains(":INTACT:TRUSTED,"), "pyhanko: {line}");
        }
    } else if pyhanko_too {
        eprintln!(
            "note: pyHanko not found at {}; its checks are skipped",
            pyhanko()
        );
    }
}
