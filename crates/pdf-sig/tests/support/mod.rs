//! Test support: fixtures, scratch directories, a CMS signature container over the
//! fixture keys, and the trust material the independent validators (pdfsig, qpdf,
//! openssl, pyHanko: the `pdf-validators` crate) judge signed files with.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cms_sign::{
    CmsSigner, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm, SignatureScheme,
    SignedDataBuilder,
};
use pdf_sig::{DigestAlgorithm, SignatureContainer, SubFilter};
use pdf_validators::Judge;
pub(crate) use pdf_validators::{PyHanko, signatures};
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

/// Checks a signed file with every validator (see [`Judge`]): it holds exactly
/// `expected` signatures, each valid for pdfsig and openssl, the last covering the whole
/// file; qpdf finds no error; and (unless skipped) pyHanko judges every signature intact
/// and trusted. openssl's inputs go to a directory beside the file.
pub(crate) fn validate(path: &Path, expected: usize, pyhanko: PyHanko) {
    let trust = trust();
    let scratch = path.with_extension("openssl");
    fs::create_dir_all(&scratch).unwrap();
    Judge {
        roots: &trust.roots,
        intermediate: &trust.intermediate,
        scratch: &scratch,
        signatures: Some(expected),
        pyhanko,
    }
    .assert_valid(path);
}
