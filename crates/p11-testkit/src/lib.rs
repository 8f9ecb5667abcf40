//! Test kit: a freshly initialised SoftHSM2 token per test, with the keys and
//! certificates it asks for. Not published.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, at `C_Initialize`, and setting an
//! environment variable in a running program is `unsafe` in edition 2024. So the variable
//! is set before the process starts (`[env]` in `.cargo/config.toml` for tests, the
//! xtask for the developer token), and this kit writes the file it names, with an
//! absolute token directory beside it, under a process-wide lock before the first
//! `C_Initialize`.
//!
//! `C_InitToken` on "the free slot" races when several threads do it at once, so token
//! creation is serialised here: pick the uninitialised slot, initialise it, find the new
//! token again by label (SoftHSM2 renumbers slots). After provisioning the kit logs out
//! and closes its sessions, so each test starts from a logged-out token nobody else
//! touches.
//!
//! Keys are imported from the committed fixtures (`fixtures/keys`) unless a test asks for
//! a generated one (RSA-3072 generation takes about a second). Each private key has a
//! public key and an X.509 certificate object with the same `CKA_ID` and `CKA_LABEL`,
//! issued by the fixture root -> intermediate chain of `test-pki`; both CA certificates are
//! on the token too.
//!
//! ```no_run
//! use p11_testkit::{KeyKind, TestToken};
//!
//! let token = TestToken::builder("my_test").key(KeyKind::P256).build();
//! let session = token.module.open_session(token.slot, false)?;
//! session.login(p11_raw::UserType::User, Some(token.user_pin.as_bytes()))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod provision;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use p11_raw::{Module, ObjectHandle, Session, SlotId, UserType};

pub use provision::{KeySpec, Origin, spki_of_public_key};
pub use test_pki::{KeyKind, Pki, SoftwareKey};
pub use verify::{Scheme, verify_prehash};

/// Errors of the kit (it is test support: a boxed error with a message is enough).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The user PIN of every token the kit makes, unless a test chooses another.
pub const USER_PIN: &str = "user-1234";
/// The security officer's PIN of every token the kit makes.
pub const SO_PIN: &str = "so-5678";
/// The CKA_LABEL of the root CA certificate object on each token.
pub const ROOT_CA_LABEL: &str = "root-ca";
/// The CKA_LABEL of the intermediate CA certificate object on each token.
pub const INTERMEDIATE_CA_LABEL: &str = "intermediate-ca";

/// Where to find SoftHSM2: `PKCS11_MODULE` if set, else the first Debian location that
/// exists.
pub fn softhsm_module_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PKCS11_MODULE") {
        return Some(PathBuf::from(path));
    }
    SOFTHSM_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Where Debian and friends install SoftHSM2.
pub const SOFTHSM_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

/// Serialises config writing and token creation in this process.
fn kit_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes the SoftHSM2 configuration that `SOFTHSM2_CONF` names (if its content differs)
/// with an absolute token directory `tokens/` beside it, and creates that directory.
/// Returns the token directory.
///
/// # Errors
/// If `SOFTHSM2_CONF` is unset or the files cannot be written.
pub fn write_softhsm_config() -> Result<PathBuf, Error> {
    let conf = std::env::var_os("SOFTHSM2_CONF").ok_or(
        "SOFTHSM2_CONF is not set: run tests through cargo (it sets it from \
         .cargo/config.toml) or `cargo xtask test`",
    )?;
    write_config_at(Path::new(&conf))
}

fn write_config_at(conf: &Path) -> Result<PathBuf, Error> {
    let dir = conf
        .parent()
        .ok_or("SOFTHSM2_CONF has no parent directory")?;
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let tokens = tokens.canonicalize()?;
    let content = format!(
        "# Written by p11-testkit; SoftHSM2 reads it once per process.\n\
         directories.tokendir = {}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        tokens.display()
    );
    if std::fs::read_to_string(conf).ok().as_deref() != Some(content.as_str()) {
        // Another process may read it at any moment: write beside it, then rename.
        let tmp = dir.join(format!(".softhsm2.conf.{}", std::process::id()));
        std::fs::write(&tmp, &content)?;
        std::fs::rename(&tmp, conf)?;
    }
    Ok(tokens)
}

/// The SoftHSM2 module of this process, opened once after the configuration is written.
///
/// # Panics
/// If SoftHSM2 is not installed or cannot be initialised: tests cannot run without it.
pub fn module() -> Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let _lock = kit_lock();
            write_softhsm_config().unwrap_or_else(|e| panic!("p11-testkit: {e}"));
            let path = softhsm_module_path().unwrap_or_else(|| {
                panic!(
                    "p11-testkit: SoftHSM2 is not installed (apt-get install softhsm2), \
                     or set PKCS11_MODULE to its path"
                )
            });
            Module::open(&path)
                .unwrap_or_else(|e| panic!("p11-testkit: opening {}: {e}", path.display()))
        })
        .clone()
}

/// A key the kit put on a token.
#[derive(Debug, Clone)]
pub struct TestKey {
    /// The key's type.
    pub kind: KeyKind,
    /// `CKA_LABEL` of the private key, its public key and its certificate.
    pub label: String,
    /// `CKA_ID` of the same three objects.
    pub id: Vec<u8>,
    /// The leaf certificate (DER), issued by the fixture intermediate.
    pub cert_der: Vec<u8>,
    /// Whether the private key has `CKA_ALWAYS_AUTHENTICATE`.
    pub always_authenticate: bool,
}

/// A token initialised for one test.
#[derive(Debug)]
pub struct TestToken {
    /// The module (shared by every token in the process).
    pub module: Module,
    /// The token's slot.
    pub slot: SlotId,
    /// The token's label, derived from the test's name.
    pub label: String,
    /// The token's serial number.
    pub serial: String,
    /// The user PIN.
    pub user_pin: String,
    /// The security officer's PIN.
    pub so_pin: String,
    /// The keys on it, in the order asked for.
    pub keys: Vec<TestKey>,
}

impl TestToken {
    /// Starts describing a token for the test `name` (its label is derived from it and
    /// made unique in the token directory).
    pub fn builder(name: &str) -> TokenBuilder {
        TokenBuilder {
            name: name.to_owned(),
            exact_label: false,
            user_pin: USER_PIN.to_owned(),
            keys: Vec::new(),
        }
    }

    /// The first key of `kind`.
    ///
    /// # Panics
    /// If the token has none: a test asked for a key it did not provision.
    pub fn key(&self, kind: KeyKind) -> &TestKey {
        self.keys
            .iter()
            .find(|k| k.kind == kind)
            .unwrap_or_else(|| panic!("token {} has no {kind} key", self.label))
    }

    /// Opens a read-only session and logs the user in (if not already).
    ///
    /// # Errors
    /// The module's error.
    pub fn user_session(&self) -> Result<Session, p11_raw::Error> {
        let session = self.module.open_session(self.slot, false)?;
        match session.login(UserType::User, Some(self.user_pin.as_bytes())) {
            Ok(()) => Ok(session),
            Err(e) if e.rv() == Some(p11_raw::Rv::UserAlreadyLoggedIn) => Ok(session),
            Err(e) => Err(e),
        }
    }

    /// The handle of the private key labelled `label`, found through `session`.
    ///
    /// # Errors
    /// The module's error, or if there is not exactly one such key.
    pub fn private_key(&self, session: &Session, label: &str) -> Result<ObjectHandle, Error> {
        let found = session.find_objects(&[
            p11_raw::Attribute::Class(p11_raw::ObjectClass::PRIVATE_KEY),
            p11_raw::Attribute::Label(label.as_bytes().to_vec()),
        ])?;
        match found.as_slice() {
            [one] => Ok(*one),
            other => Err(format!("{} private keys labelled {label:?}", other.len()).into()),
        }
    }
}

/// Describes a token to provision; [`TokenBuilder::build`] makes it.
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    name: String,
    exact_label: bool,
    user_pin: String,
    keys: Vec<KeySpec>,
}

impl TokenBuilder {
    /// Adds a key imported from the fixtures, labelled after its kind (`"p256"`).
    pub fn key(mut self, kind: KeyKind) -> Self {
        self.keys.push(KeySpec::imported(kind));
        self
    }

    /// Adds a key generated on the token, labelled after its kind.
    pub fn generated_key(mut self, kind: KeyKind) -> Self {
        self.keys.push(KeySpec::generated(kind));
        self
    }

    /// Adds a key described in full.
    pub fn key_spec(mut self, spec: KeySpec) -> Self {
        self.keys.push(spec);
        self
    }

    /// Uses another user PIN than [`USER_PIN`].
    pub fn user_pin(mut self, pin: &str) -> Self {
        self.user_pin = pin.to_owned();
        self
    }

    /// Uses `name` as the token label as is (at most 32 bytes), instead of a unique one
    /// derived from it. For the developer token of `cargo xtask softhsm-setup`.
    pub fn exact_label(mut self) -> Self {
        self.exact_label = true;
        self
    }

    /// Provisions the token.
    ///
    /// # Panics
    /// If provisioning fails: a test cannot go on without its token.
    pub fn build(self) -> TestToken {
        let name = self.name.clone();
        self.try_build()
            .unwrap_or_else(|e| panic!("p11-testkit: token for {name}: {e}"))
    }

    /// Provisions the token in the process's SoftHSM2 module.
    ///
    /// # Errors
    /// Any failure of the module or of the fixtures.
    pub fn try_build(self) -> Result<TestToken, Error> {
        self.try_build_in(&module())
    }

    /// Provisions the token in the given module.
    ///
    /// # Errors
    /// Any failure of the module or of the fixtures.
    pub fn try_build_in(self, module: &Module) -> Result<TestToken, Error> {
        let label = if self.exact_label {
            self.name.clone()
        } else {
            unique_label(&self.name)
        };
        provision::provision(module, &label, &self.user_pin, &self.keys)
    }
}

/// A token label (≤ 32 bytes) derived from the test name, unique across processes and
/// runs sharing a token directory.
fn unique_label(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("-{:x}-{n}", std::process::id());
    let short = name.rsplit("::").next().unwrap_or(name);
    let room = 32 - suffix.len();
    let mut head: String = short.chars().filter(|c| c.is_ascii()).take(room).collect();
    head.truncate(room);
    head + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_and_differ() {
        let a = unique_label("tests::a_very_long_test_name_that_goes_on_and_on");
        let b = unique_label("tests::a_very_long_test_name_that_goes_on_and_on");
        assert!(a.len() <= 32 && b.len() <= 32);
        assert_ne!(a, b);
        assert!(a.starts_with("a_very_long"));
    }
}
