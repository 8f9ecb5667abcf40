//! Tokens: finding one, the process-wide registry that makes every opener of the same
//! token share one state, and the configuration of that state.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use p11_raw::{Limit, Module, RecoveryClass, Rv, Session, SessionHandle, SlotId, TokenInfo};

use crate::error::{Error, PinFlags, Result, TokenName, is_pin_rv};
use crate::key::{KeyQuery, KeyShared};
use crate::login::{LoginState, Pin};
use crate::metrics::Metrics;
use crate::pool::{Pool, PooledSession};

/// How to find a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenQuery {
    /// By `CKA_LABEL` of the token (its `CK_TOKEN_INFO.label`, blanks trimmed). Labels
    /// need not be unique: several matches are an error.
    Label(String),
    /// By serial number (`CK_TOKEN_INFO.serialNumber`, blanks trimmed).
    Serial(String),
    /// By slot id. Slot ids may change when tokens come and go; prefer the serial.
    Slot(SlotId),
}

impl fmt::Display for TokenQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenQuery::Label(label) => write!(f, "label {label:?}"),
            TokenQuery::Serial(serial) => write!(f, "serial {serial:?}"),
            TokenQuery::Slot(slot) => write!(f, "{slot}"),
        }
    }
}

/// How a token's shared state behaves. The configuration given by the first
/// [`Token::open_with`] of a token is the one its state keeps while anyone holds it;
/// later opens get that state, whatever they pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub(crate) pool_size: usize,
    pub(crate) checkout_timeout: Duration,
    pub(crate) device_backoff_initial: Duration,
    pub(crate) device_backoff_max: Duration,
    pub(crate) device_retry_for: Duration,
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            // The token, not this machine's CPUs, is what signs: a network HSM keeps many
            // sessions busy while our threads wait on it. The pool grows lazily, so an
            // idle default costs nothing.
            pool_size: DEFAULT_POOL_SIZE,
            checkout_timeout: Duration::from_secs(30),
            device_backoff_initial: Duration::from_millis(50),
            device_backoff_max: Duration::from_secs(2),
            device_retry_for: Duration::from_secs(10),
        }
    }
}

/// The default bound of the session pool.
pub const DEFAULT_POOL_SIZE: usize = 16;

impl TokenConfig {
    /// The defaults: a pool of up to 16 sessions (opened as needed), a 30 s wait for a
    /// free session, device recovery backing off from 50 ms doubling to 2 s for at most
    /// 10 s.
    pub fn new() -> TokenConfig {
        TokenConfig::default()
    }

    /// The most sessions the pool opens for signing (at least 1). The token's
    /// `ulMaxSessionCount` lowers it (less one, for the session that holds the login),
    /// and so does a `CKR_SESSION_COUNT` answer.
    pub fn pool_size(&mut self, sessions: usize) -> &mut TokenConfig {
        self.pool_size = sessions.max(1);
        self
    }

    /// How long a checkout waits for a free session before failing with
    /// [`Error::PoolExhausted`].
    pub fn checkout_timeout(&mut self, timeout: Duration) -> &mut TokenConfig {
        self.checkout_timeout = timeout;
        self
    }

    /// Device-loss recovery: the first pause, the longest pause (pauses double in
    /// between), and how long to keep trying before [`Error::DeviceLost`].
    pub fn device_recovery(
        &mut self,
        initial: Duration,
        max: Duration,
        total: Duration,
    ) -> &mut TokenConfig {
        self.device_backoff_initial = initial;
        self.device_backoff_max = max.max(initial);
        self.device_retry_for = total;
        self
    }
}

/// What only transitions touch, under [`TokenShared::transition`].
pub(crate) struct Transition {
    /// The session that holds the login: it is opened for the first login, used for
    /// login, logout and key look-ups, and never lent out, so closing pooled sessions
    /// can never close the application's last session (which would log it out).
    pub(crate) anchor: Option<Session>,
}

/// The state of one token, shared by every [`Token`], lease and key for it in the
/// process.
pub(crate) struct TokenShared {
    pub(crate) module: Module,
    registry_key: RegistryKey,
    label: Arc<str>,
    serial: Arc<str>,
    slot: RwLock<SlotId>,
    pub(crate) config: TokenConfig,
    pub(crate) login: LoginState,
    /// Serialises login, logout, re-login, key look-up and device recovery. The
    /// signing hot path never takes it.
    pub(crate) transition: Mutex<Transition>,
    /// Signalled (with `transition`) after each logout.
    pub(crate) logged_out: Condvar,
    /// The user PIN, kept while a re-login may need it.
    pub(crate) kept_pin: Mutex<Option<Arc<Pin>>>,
    pub(crate) pool: Pool,
    /// Keys looked up, by query, so that every opener shares one handle cache.
    pub(crate) keys: Mutex<HashMap<KeyQuery, Weak<KeyShared>>>,
    pub(crate) metrics: Arc<Metrics>,
}

type RegistryKey = (PathBuf, String);

/// Module path and token serial to the live shared state. Holding the lock serialises
/// creating a state and tearing one down, so a re-open never overlaps a teardown.
fn registry() -> &'static Mutex<HashMap<RegistryKey, Weak<TokenShared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<RegistryKey, Weak<TokenShared>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step (a panic in
    // the module's code is the only way to poison), so carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A PKCS#11 token, shared: every `Token` for the same module file and token serial in
/// the process, however it was opened, has one login state, one session pool and one
/// key-handle cache. `Clone + Send + Sync`; cheap to clone.
///
/// ```no_run
/// use p11_session::{KeyQuery, Token, TokenQuery};
///
/// let module = p11_raw::Module::open("/usr/lib/softhsm/libsofthsm2.so")?;
/// let token = Token::open(&module, &TokenQuery::Label("signing".into()))?;
/// let lease = token.login(b"1234")?;
/// let key = lease.key(&KeyQuery::Label("signer".into()))?;
/// println!("{:?}, certificate of {} bytes", key.algorithm(), key.certificate_der().len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Token {
    pub(crate) shared: Arc<TokenShared>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.shared.label)
            .field("serial", &self.shared.serial)
            .field("slot", &self.shared.slot())
            .field("login", &self.shared.login)
            .field("pool", &self.shared.pool)
            .finish()
    }
}

impl Token {
    /// Finds a token in `module` and returns the process's shared state for it, creating
    /// it (with the default [`TokenConfig`]) if nobody holds it.
    ///
    /// # Errors
    /// [`Error::TokenNotFound`], [`Error::TokenAmbiguous`], or [`Error::Module`] if the
    /// slots cannot be listed.
    pub fn open(module: &Module, query: &TokenQuery) -> Result<Token> {
        Token::open_with(module, query, &TokenConfig::default())
    }

    /// As [`Token::open`], with a configuration used if this call creates the state.
    ///
    /// # Errors
    /// As [`Token::open`].
    pub fn open_with(module: &Module, query: &TokenQuery, config: &TokenConfig) -> Result<Token> {
        let (slot, info) = find_token(module, query)?;
        let key = registry_key(module, &info, slot);
        loop {
            let mut map = lock(registry());
            match map.get(&key).map(Weak::upgrade) {
                Some(Some(shared)) => return Ok(Token { shared }),
                Some(None) => {
                    // The last holder is tearing the state down (closing its sessions)
                    // and will remove the entry under this lock: let it, then start anew.
                    drop(map);
                    std::thread::yield_now();
                }
                None => {
                    let shared = Arc::new(TokenShared::new(
                        module.clone(),
                        key.clone(),
                        slot,
                        &info,
                        config.clone(),
                    ));
                    map.insert(key, Arc::downgrade(&shared));
                    return Ok(Token { shared });
                }
            }
        }
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// The token's serial number.
    pub fn serial(&self) -> &str {
        &self.shared.serial
    }

    /// The slot the token is in now (it may change after the device comes back).
    pub fn slot(&self) -> SlotId {
        self.shared.slot()
    }

    /// The module.
    pub fn module(&self) -> &Module {
        &self.shared.module
    }

    /// Label, serial and slot, as errors name the token.
    pub fn name(&self) -> TokenName {
        self.shared.name()
    }

    /// The configuration the shared state was created with.
    pub fn config(&self) -> &TokenConfig {
        &self.shared.config
    }

    /// The token's counters. The `Arc` outlives the token, so final figures can be read
    /// after everything else was dropped.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Whether `self` and `other` share one state (the same token of the same module).
    pub fn same_token(&self, other: &Token) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Checks a session out of the pool, for calls this crate does not wrap. It goes
    /// back when dropped.
    ///
    /// # Errors
    /// [`Error::PoolExhausted`] after the configured wait, or the module's error when a
    /// new session cannot be opened.
    pub fn session(&self) -> Result<PooledSession<'_>> {
        self.shared.checkout()
    }

    /// Handles of the idle pooled sessions. For tests that break a session behind the
    /// pool's back; not part of the stable API.
    #[doc(hidden)]
    pub fn debug_idle_session_handles(&self) -> Vec<SessionHandle> {
        self.shared.pool.idle_handles()
    }

    /// The handle of the session that holds the login, if open. For tests; not part of
    /// the stable API.
    #[doc(hidden)]
    pub fn debug_anchor_handle(&self) -> Option<SessionHandle> {
        lock(&self.shared.transition)
            .anchor
            .as_ref()
            .map(Session::handle)
    }
}

impl TokenShared {
    fn new(
        module: Module,
        registry_key: RegistryKey,
        slot: SlotId,
        info: &TokenInfo,
        config: TokenConfig,
    ) -> TokenShared {
        // One session of the token's allowance holds the login; the pool gets the rest.
        let mut limit = config.pool_size;
        if let Limit::AtMost(max) = info.max_session_count {
            let allowed = usize::try_from(max.saturating_sub(1)).unwrap_or(usize::MAX);
            limit = limit.min(allowed.max(1));
        }
        TokenShared {
            module,
            registry_key,
            label: info.label.as_str().into(),
            serial: info.serial_number.as_str().into(),
            slot: RwLock::new(slot),
            config,
            login: LoginState::new(),
            transition: Mutex::new(Transition { anchor: None }),
            logged_out: Condvar::new(),
            kept_pin: Mutex::new(None),
            pool: Pool::new(limit),
            keys: Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
        }
    }

    pub(crate) fn slot(&self) -> SlotId {
        *self.slot.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_slot(&self, slot: SlotId) {
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = slot;
    }

    pub(crate) fn serial(&self) -> &str {
        &self.serial
    }

    pub(crate) fn name(&self) -> TokenName {
        TokenName {
            label: Arc::clone(&self.label),
            serial: Arc::clone(&self.serial),
            slot: self.slot(),
        }
    }

    /// Wraps a module error for this token; a PIN error gets the token's PIN flags.
    pub(crate) fn pkcs11_error(&self, source: p11_raw::Error) -> Error {
        if is_pin_rv(&source) {
            let flags = self.module.token_info(self.slot()).ok().map(|i| i.flags);
            Error::Pin {
                token: self.name(),
                source,
                flags: PinFlags(flags),
            }
        } else {
            Error::Pkcs11 {
                token: self.name(),
                source,
            }
        }
    }
}

impl Drop for TokenShared {
    fn drop(&mut self) {
        // Nobody holds the state any more, so no lease is out and the token was logged
        // out when the last one went. Close our sessions under the registry lock, so a
        // new state for this token cannot start using the token before we are done.
        let mut map = lock(registry());
        self.pool.drain(self);
        let anchor = self
            .transition
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .anchor
            .take();
        if let Some(anchor) = anchor {
            drop(anchor);
            self.metrics.session_closed();
        }
        if map
            .get(&self.registry_key)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            map.remove(&self.registry_key);
        }
    }
}

/// The registry key: the module's canonical path and the token's serial (label and slot
/// for a token without one).
fn registry_key(module: &Module, info: &TokenInfo, slot: SlotId) -> RegistryKey {
    let id = if info.serial_number.is_empty() {
        format!("{}@{}", info.label, slot)
    } else {
        info.serial_number.clone()
    };
    (module.path().to_path_buf(), id)
}

/// Finds the slot of the one token matching `query`.
pub(crate) fn find_token(module: &Module, query: &TokenQuery) -> Result<(SlotId, TokenInfo)> {
    if let TokenQuery::Slot(slot) = query {
        return match module.token_info(*slot) {
            Ok(info) => Ok((*slot, info)),
            Err(error)
                if matches!(
                    error.rv(),
                    Some(Rv::SlotIdInvalid | Rv::TokenNotPresent | Rv::TokenNotRecognized)
                ) =>
            {
                Err(Error::TokenNotFound {
                    query: query.clone(),
                })
            }
            Err(error) => Err(Error::Module(error)),
        };
    }
    let mut found = Vec::new();
    for slot in module.slots(true).map_err(Error::Module)? {
        // A slot whose token cannot be read (removed meanwhile, unrecognised) is not
        // the one asked for.
        let Ok(info) = module.token_info(slot) else {
            continue;
        };
        let matches = match query {
            TokenQuery::Label(label) => &info.label == label,
            TokenQuery::Serial(serial) => &info.serial_number == serial,
            TokenQuery::Slot(_) => false,
        };
        if matches {
            found.push((slot, info));
        }
    }
    let count = found.len();
    match found.pop() {
        Some(one) if count == 1 => Ok(one),
        Some(_) => Err(Error::TokenAmbiguous {
            query: query.clone(),
            count,
        }),
        None => Err(Error::TokenNotFound {
            query: query.clone(),
        }),
    }
}

/// Whether a module error means the session it came from is dead.
pub(crate) fn session_is_dead(error: &p11_raw::Error) -> bool {
    error.recovery_class() == RecoveryClass::SessionLost
}
