//! The fixture CA chain: a root and an intermediate CA, and leaf issuance.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use der::asn1::OctetString;
use der::pem::LineEnding;
use der::{Decode, Encode, EncodePem};
use p256::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::{Error, fixtures_dir};

/// Subject of the root CA certificate.
const ROOT_SUBJECT: &str = "CN=pdfsign Test Root CA,O=pdfsign tests";
/// Subject of the intermediate CA certificate.
const INTERMEDIATE_SUBJECT: &str = "CN=pdfsign Test Intermediate CA,O=pdfsign tests";
/// Organisation of every leaf certificate.
const LEAF_ORGANIZATION: &str = "pdfsign tests";

/// The fixture CA chain (root and intermediate CA, both P-256), able to issue leaves.
///
/// Built once per process by [`Pki::fixture`]; building it again gives identical bytes.
pub struct Pki {
    root_der: Vec<u8>,
    root_pem: String,
    intermediate_der: Vec<u8>,
    intermediate_pem: String,
    intermediate_key: p256::ecdsa::SigningKey,
}

/// Paths of the PEM files written by [`Pki::write_pem_files`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFiles {
    /// `root.pem`: the root CA certificate (the trust anchor).
    pub root: PathBuf,
    /// `intermediate.pem`: the intermediate CA certificate.
    pub intermediate: PathBuf,
    /// `chain.pem`: intermediate then root.
    pub chain: PathBuf,
}

impl Pki {
    /// The process-wide fixture chain, built on first use from `fixtures/keys/root-ca.pem`
    /// and `fixtures/keys/intermediate-ca.pem`.
    ///
    /// # Panics
    ///
    /// If the committed fixture keys are missing or unreadable: the tests cannot run then.
    pub fn fixture() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| match Pki::build(&fixtures_dir().join("keys")) {
            Ok(pki) => pki,
            Err(e) => panic!("cannot build the fixture PKI: {e}"),
        })
    }

    /// Builds the chain from `root-ca.pem` and `intermediate-ca.pem` in `keys_dir`.
    ///
    /// # Errors
    ///
    /// If a key file is missing or is not a PKCS#8 P-256 key, or the builder fails.
    pub fn build(keys_dir: &Path) -> Result<Pki, Error> {
        let root_key = load_p256(&keys_dir.join("root-ca.pem"))?;
        let intermediate_key = load_p256(&keys_dir.join("intermediate-ca.pem"))?;
        let root_name = Name::from_str(ROOT_SUBJECT)?;
        let intermediate_name = Name::from_str(INTERMEDIATE_SUBJECT)?;

        let root = issue(
            Profile {
                role: Role::Root,
                subject: root_name.clone(),
                issuer: root_name.clone(),
            },
            SerialNumber::from(1u32),
            SubjectPublicKeyInfoOwned::from_key(root_key.verifying_key())?,
            &root_key,
        )?;
        let intermediate = issue(
            Profile {
                role: Role::Intermediate,
                subject: intermediate_name,
                issuer: root_name,
            },
            SerialNumber::from(2u32),
            SubjectPublicKeyInfoOwned::from_key(intermediate_key.verifying_key())?,
            &root_key,
        )?;
        Ok(Pki {
            root_der: root.to_der()?,
            root_pem: root.to_pem(LineEnding::LF)?,
            intermediate_der: intermediate.to_der()?,
            intermediate_pem: intermediate.to_pem(LineEnding::LF)?,
            intermediate_key,
        })
    }

    /// The root CA certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root CA certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The intermediate CA certificate, DER.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// The intermediate CA certificate, PEM.
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    /// The chain above a leaf, DER, nearest first: `[intermediate, root]`.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        vec![self.intermediate_der.clone(), self.root_der.clone()]
    }

    /// The chain above a leaf as one PEM text: intermediate, then root.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate_pem, self.root_pem)
    }

    /// Issues a leaf (signer) certificate, signed by the intermediate CA, for any RSA or EC
    /// public key given as a DER `SubjectPublicKeyInfo`. Subject
    /// `CN=<common_name>,O=pdfsign tests`; the serial number is derived from the name and
    /// the key, so the same inputs give the same certificate. Returns the certificate DER.
    ///
    /// # Panics
    ///
    /// If `spki_der` is not a DER `SubjectPublicKeyInfo`; [`Pki::try_issue_leaf`] returns
    /// an error instead.
    pub fn issue_leaf(&self, common_name: &str, spki_der: &[u8]) -> Vec<u8> {
        match self.try_issue_leaf(common_name, spki_der) {
            Ok(der) => der,
            Err(e) => panic!("cannot issue a leaf certificate for {common_name:?}: {e}"),
        }
    }

    /// [`Pki::issue_leaf`] that reports bad input instead of panicking.
    ///
    /// # Errors
    ///
    /// [`Error::Der`] if `spki_der` is not a DER `SubjectPublicKeyInfo`,
    /// [`Error::Builder`] if the builder refuses it.
    pub fn try_issue_leaf(&self, common_name: &str, spki_der: &[u8]) -> Result<Vec<u8>, Error> {
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)?;
        let subject = Name::from_str(&format!(
            "CN={},O={LEAF_ORGANIZATION}",
            escape_rdn_value(common_name)
        ))?;
        let issuer = Name::from_str(INTERMEDIATE_SUBJECT)?;
        let serial = leaf_serial(common_name, spki_der)?;
        let cert = issue(
            Profile {
                role: Role::Leaf,
                subject,
                issuer,
            },
            serial,
            spki,
            &self.intermediate_key,
        )?;
        Ok(cert.to_der()?)
    }

    /// Writes `root.pem`, `intermediate.pem` and `chain.pem` (intermediate then root)
    /// into `dir`, creating it if needed, for external validators (openssl, pyHanko).
    ///
    /// # Errors
    ///
    /// If the directory or a file cannot be written.
    pub fn write_pem_files(&self, dir: &Path) -> std::io::Result<PemFiles> {
        fs::create_dir_all(dir)?;
        let files = PemFiles {
            root: dir.join("root.pem"),
            intermediate: dir.join("intermediate.pem"),
            chain: dir.join("chain.pem"),
        };
        fs::write(&files.root, &self.root_pem)?;
        fs::write(&files.intermediate, &self.intermediate_pem)?;
        fs::write(&files.chain, self.chain_pem())?;
        Ok(files)
    }
}

/// Reads a PKCS#8 PEM P-256 key as an ECDSA signing key.
fn load_p256(path: &Path) -> Result<p256::ecdsa::SigningKey, Error> {
    let pem = fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let secret = p256::SecretKey::from_pkcs8_pem(&pem).map_err(|e| Error::BadKeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(p256::ecdsa::SigningKey::from(secret))
}

/// Builds and signs one certificate (ECDSA P-256 with SHA-256, deterministic).
fn issue(
    profile: Profile,
    serial: SerialNumber,
    spki: SubjectPublicKeyInfoOwned,
    signer: &p256::ecdsa::SigningKey,
) -> Result<Certificate, Error> {
    let builder = CertificateBuilder::new(profile, serial, validity()?, spki)?;
    Ok(builder.build::<_, p256::ecdsa::DerSignature>(signer)?)
}

/// The fixed validity of every fixture certificate: 2025-01-01 to 2045-01-01 (UTCTime).
fn validity() -> Result<Validity, Error> {
    let not_before = der::DateTime::new(2025, 1, 1, 0, 0, 0)?;
    let not_after = der::DateTime::new(2045, 1, 1, 0, 0, 0)?;
    Ok(Validity::new(Time::from(not_before), Time::from(not_after)))
}

/// A positive 16-byte serial number derived from the leaf's name and key.
fn leaf_serial(common_name: &str, spki_der: &[u8]) -> Result<SerialNumber, Error> {
    let mut hash = Sha256::new();
    hash.update(b"pdfsign test-pki leaf\0");
    hash.update(common_name.as_bytes());
    hash.update(b"\0");
    hash.update(spki_der);
    let digest = hash.finalize();
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&digest[..16]);
    // Positive (high bit clear) and without a leading zero byte, so it encodes in 16 bytes.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(SerialNumber::new(&serial)?)
}

/// Escapes an attribute value for an RFC 4514 string.
fn escape_rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Which certificate of the chain a profile makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Intermediate,
    Leaf,
}

/// The certificate profile of DESIGN.md ("Tests").
struct Profile {
    role: Role,
    subject: Name,
    issuer: Name,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let (constraints, usage) = match self.role {
            Role::Root => (
                BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
                KeyUsages::KeyCertSign | KeyUsages::CRLSign,
            ),
            Role::Intermediate => (
                BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
                KeyUsages::KeyCertSign | KeyUsages::CRLSign,
            ),
            Role::Leaf => (
                BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            ),
        };
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let issuer_ski = SubjectKeyIdentifier::try_from(issuer_spk)?;
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer_ski.0.as_bytes())?),
            ..Default::default()
        };

        let mut extensions = Vec::with_capacity(4);
        let ext = (true, &constraints).to_extension(tbs.subject(), &extensions)?;
        extensions.push(ext);
        let ext = (true, &KeyUsage(usage)).to_extension(tbs.subject(), &extensions)?;
        extensions.push(ext);
        let ext = (false, &ski).to_extension(tbs.subject(), &extensions)?;
        extensions.push(ext);
        let ext = (false, &aki).to_extension(tbs.subject(), &extensions)?;
        extensions.push(ext);
        Ok(extensions)
    }
}
