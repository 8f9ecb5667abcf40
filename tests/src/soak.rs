//! The fault soak: eight threads batch-sign PDFs through the fault proxy while it fails
//! about 1% of the calls and logs the token out, closes every session and removes the
//! token every few seconds; then every input must have ended as a valid signed output or
//! as a failure whose cause is explained, and nothing may be corrupt, partial, changed,
//! panicked, stuck or leaking.
//!
//! [`run`] is the soak (`cargo xtask soak` runs it for minutes, `tests/fault.rs` for
//! about 25 s); [`measure_latency`] is the latency-scaling figure (2 ms per call, one
//! thread against eight). Both need a process of their own: the soak's watchdog ends the
//! process when progress stops, and its memory figures are the process's.
//!
//! # What is judged
//!
//! - Every output the signer reports written is read back: the input's bytes must be
//!   its prefix (an incremental update), and `pdfsign`'s verifier must find exactly one
//!   signature, valid (integrity and the chain to the fixture root) and covering the
//!   whole file. A sample spread over the run is checked by poppler's `pdfsig` too.
//! - A failed input must leave no output; at the end the output directory holds no
//!   leftover (temporary) file; every input hashes as before.
//! - A failure is *explained* when its error names a function and `CK_RV` the proxy
//!   can have caused (a rule injecting that code at that function, or an event whose
//!   lasting state answers it to any call: [`Injected`]) and it came from a second
//!   fault: `p11-session` had already begun a repair within that signature (its log,
//!   kept per thread by [`trace`]), or the final error is a device error after a device
//!   recovery, or the proxy answered a removed token or injected a device error while
//!   the signature ran (the device recovery of another thread, which `p11-session`
//!   waits out without logging it, then the retry's fault). Anything else is
//!   *unexplained* and fails the run: an error naming no `CK_RV`, or a code the proxy
//!   never made that function answer (the library's own state went wrong), a device
//!   that did not come back within the recovery budget although removals are shorter,
//!   or a single fault of a kind the recovery model repairs that was not repaired.
//! - No panic; no deadlock (a watchdog thread ends the process with a report when no
//!   signature completes for `stall_limit`); memory flat: the final VmRSS is at most
//!   the VmRSS after the first minute (a third of the run for runs under three minutes)
//!   plus 10%.

mod latency;
mod report;
pub mod trace;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use p11_fault::{Control, Event, Func};
use p11_raw::{Module, Rv, SlotId};
use p11_session::{Token, TokenQuery};
use pdf_validators::Tool;
use pdfsign::{Pin, SignOptions, Signer};
use sha2::{Digest, Sha256};

pub use latency::{CLI, LatencyConfig, LatencyReport, LatencyRow, measure_latency};
pub use report::{CauseCount, Memory, SoakReport, rss_kib};
pub use verdict::{Injected, Verdict, classify, error_chain};

use crate::{KeyKind, TestToken};

/// The fault proxy of this process, over the test kit's SoftHSM2.
#[derive(Debug)]
pub struct Proxy {
    /// The proxy library.
    pub path: PathBuf,
    /// The proxy, opened as a PKCS#11 module.
    pub module: Module,
    /// Its control handle.
    pub control: Control,
}

/// Opens SoftHSM2 first (through the kit, which owns its initialisation), then the
/// proxy, named to forward to it: the proxy then shares SoftHSM2 and sees the kit's
/// tokens. Once per process.
///
/// # Panics
/// If the proxy cannot be built or opened: nothing here can run without it.
pub fn proxy() -> &'static Proxy {
    static PROXY: OnceLock<Proxy> = OnceLock::new();
    PROXY.get_or_init(|| {
        let softhsm = p11_testkit::module();
        let path = p11_fault::build_proxy();
        let control =
            Control::attach(&path).unwrap_or_else(|e| panic!("attaching to the fault proxy: {e}"));
        control
            .apply(&format!("module {}", softhsm.path().display()))
            .unwrap_or_else(|e| panic!("naming SoftHSM2 to the fault proxy: {e}"));
        let module = Module::open(&path)
            .unwrap_or_else(|e| panic!("opening the fault proxy {}: {e}", path.display()));
        Proxy {
            path,
            module,
            control,
        }
    })
}

/// A `pkcs11:` URI for the P-256 key of `token` through the proxy (no PIN in it).
pub fn proxy_uri(token: &TestToken) -> pdfsign::Pkcs11Uri {
    let text = format!(
        "pkcs11:token={};object={}?module-path={}",
        token.label,
        KeyKind::P256.label(),
        proxy().path.display()
    );
    text.parse()
        .unwrap_or_else(|e| panic!("the URI {text} does not parse: {e}"))
}

/// Which calls the soak's faults hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// Every function the signing stack calls on the token: sessions, login, look-ups,
    /// `C_SignInit`, `C_Sign` (each one fails in about `fault_rate` of its calls).
    AllCalls,
    /// Only `C_SignInit` and `C_Sign`, the calls the recovery table is written for.
    SignPath,
}

impl fmt::Display for FaultScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultScope::AllCalls => "every call of the signing stack",
            FaultScope::SignPath => "C_SignInit and C_Sign",
        })
    }
}

/// What a soak does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long the threads sign.
    pub duration: Duration,
    /// Signing threads sharing one `Signer`.
    pub threads: usize,
    /// The share of calls that fail (0.01: 1%).
    pub fault_rate: f64,
    /// Which calls fail.
    pub fault_scope: FaultScope,
    /// The seed of the fault rules.
    pub seed: u64,
    /// How often the token is logged out behind the signer's back.
    pub logout_period: Duration,
    /// How often every session is closed behind its back.
    pub close_all_period: Duration,
    /// How often the token is removed.
    pub remove_period: Duration,
    /// For how long (shorter than the recovery budget, 10 s by default).
    pub remove_for: Duration,
    /// The watchdog ends the process when no signature completes for this long.
    pub stall_limit: Duration,
    /// How many outputs, spread over the run, `pdfsig` checks too.
    pub pdfsig_samples: usize,
    /// A directory of its own for inputs and outputs (created; removed if the soak
    /// passes).
    pub dir: PathBuf,
}

impl SoakConfig {
    /// The soak: 8 threads, faults at 1% of every call, a logout every 3 s, a
    /// close-all every 5 s, a 500 ms removal every 7 s, a 30 s watchdog, 40 `pdfsig`
    /// samples.
    pub fn new(duration: Duration, dir: PathBuf) -> SoakConfig {
        SoakConfig {
            duration,
            threads: 8,
            fault_rate: 0.01,
            fault_scope: FaultScope::AllCalls,
            seed: 1,
            logout_period: Duration::from_secs(3),
            close_all_period: Duration::from_secs(5),
            remove_period: Duration::from_secs(7),
            remove_for: Duration::from_millis(500),
            stall_limit: Duration::from_secs(30),
            pdfsig_samples: 40,
            dir,
        }
    }

    /// When the memory baseline is taken: after the first minute, or after a third of
    /// a run shorter than three minutes.
    pub fn baseline_at(&self) -> Duration {
        Duration::from_secs(60).min(self.duration / 3)
    }

    /// The proxy spec of the run, and every code it can make the signer see.
    fn spec(&self) -> (String, Injected) {
        const GENERIC: &[Rv] = &[
            Rv::DeviceError,
            Rv::GeneralError,
            Rv::FunctionFailed,
            Rv::DeviceMemory,
        ];
        const SESSION: &[Rv] = &[Rv::SessionHandleInvalid, Rv::SessionClosed];
        let with = |extra: &[Rv]| -> Vec<Rv> {
            GENERIC
                .iter()
                .chain(SESSION)
                .chain(extra)
                .copied()
                .collect()
        };
        let sign_path = [
            (
                Func::SignInit,
                with(&[
                    Rv::KeyHandleInvalid,
                    Rv::OperationActive,
                    Rv::UserNotLoggedIn,
                ]),
            ),
            (Func::Sign, with(&[Rv::UserNotLoggedIn])),
        ];
        let mut table: Vec<(Func, Vec<Rv>)> = sign_path.into();
        if self.fault_scope == FaultScope::AllCalls {
            // Closing sessions is left alone: a faulted C_CloseSession is not forwarded,
            // so the proxy itself would leak the session and blur the memory figure.
            table.push((Func::OpenSession, GENERIC.to_vec()));
            table.push((Func::GetTokenInfo, GENERIC.to_vec()));
            for function in [
                Func::GetSessionInfo,
                Func::Login,
                Func::FindObjectsInit,
                Func::FindObjects,
                Func::FindObjectsFinal,
                Func::GetAttributeValue,
            ] {
                table.push((function, with(&[])));
            }
        }
        let mut spec = format!("seed {}\n", self.seed);
        let mut injected = Injected::new();
        // What the events' lasting state makes calls answer: dead sessions, lost
        // logins, stale handles, a missing token.
        for rv in [
            Rv::SessionHandleInvalid,
            Rv::SessionClosed,
            Rv::UserNotLoggedIn,
            Rv::ObjectHandleInvalid,
            Rv::KeyHandleInvalid,
            Rv::TokenNotPresent,
            Rv::DeviceRemoved,
        ] {
            injected.event(rv);
        }
        for (function, codes) in &table {
            // Each call of `function` fails with probability `fault_rate`, its codes
            // sharing it equally.
            let p = self.fault_rate / codes.len() as f64;
            for code in codes {
                let name = code.name().unwrap_or("CKR_UNKNOWN");
                spec.push_str(&format!(
                    "fault {} {name} p={p:.6} name=soak-{}-{}\n",
                    function.name(),
                    function.name(),
                    name.trim_start_matches("CKR_"),
                ));
                injected.rule(function.name(), *code);
            }
        }
        spec.push_str(&format!(
            "event logout period={}ms name=soak-logout\n\
             event close-all period={}ms name=soak-close-all\n\
             event remove period={}ms duration={}ms name=soak-remove\n",
            self.logout_period.as_millis(),
            self.close_all_period.as_millis(),
            self.remove_period.as_millis(),
            self.remove_for.as_millis(),
        ));
        (spec, injected)
    }
}

/// One input file.
struct Input {
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: Vec<u8>,
}

/// The fixtures signed besides copies of `fixtures/sample.pdf`: other producers'
/// structures (xref tables and streams, object streams, a hybrid file, an indirect
/// AcroForm), none signed already.
const OTHER_INPUTS: &[&str] = &[
    "lopdf-table.pdf",
    "lopdf-xref-stream.pdf",
    "qpdf-objstm.pdf",
    "handmade-hybrid.pdf",
    "handmade-indirect.pdf",
];

fn make_inputs(dir: &Path) -> Vec<Input> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let fixtures = crate::root().join("fixtures").join("pdf");
    let mut sources: Vec<PathBuf> = (0..6).map(|_| crate::sample_pdf()).collect();
    sources.extend(OTHER_INPUTS.iter().map(|name| fixtures.join(name)));
    sources
        .into_iter()
        .enumerate()
        .map(|(i, source)| {
            let stem = source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = format!("{i:02}-{stem}.pdf");
            let path = dir.join(&name);
            let bytes = std::fs::read(&source)
                .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
            std::fs::write(&path, &bytes)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            let sha256 = Sha256::digest(&bytes).to_vec();
            Input {
                name,
                path,
                bytes,
                sha256,
            }
        })
        .collect()
}

/// Checks one output against its input's bytes.
type Verify<'a> = dyn Fn(&Path, &[u8]) -> Result<(), String> + Sync + 'a;

/// What the signing threads share.
struct Shared<'a> {
    signer: &'a Signer,
    inputs: &'a [Input],
    out_dir: &'a Path,
    injected: &'a Injected,
    verify: &'a Verify<'a>,
    /// The token's slot, for the proxy's counters.
    slot: SlotId,
    deadline: Instant,
    next_job: AtomicUsize,
    /// Signatures finished, well or not: the watchdog's measure of progress.
    completed: AtomicU64,
    /// When the next output is kept for `pdfsig`, in ms since the start.
    next_sample_ms: AtomicU64,
    sample_every_ms: u64,
    sample_cap: usize,
    start: Instant,
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    signed: u64,
    failed: u64,
    failures: BTreeMap<String, CauseCount>,
    unexplained: u64,
    unexplained_details: Vec<String>,
    damage: Vec<String>,
    panics: Vec<String>,
    samples: Vec<PathBuf>,
}

/// How many unexplained failures are described in full: the first few of each cause.
const DETAILS: usize = 40;
const DETAILS_PER_CAUSE: u64 = 3;

impl Shared<'_> {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this output is kept for `pdfsig`: one every `sample_every_ms`.
    fn take_sample(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_sample_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_sample_ms
                .compare_exchange(
                    due,
                    now + self.sample_every_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            && self.tally().samples.len() < self.sample_cap
    }

    /// What the proxy's counters say of device trouble so far: removed-token answers
    /// and injected device errors. A signature during which it grew met a device event,
    /// even if `p11-session` recovered from it silently (when another thread had already
    /// made the device recovery, the retry is not logged).
    fn device_signals(&self) -> u64 {
        proxy()
            .control
            .counters(Some(self.slot))
            .map(|c| {
                c.answers(Rv::TokenNotPresent)
                    + c.answers(Rv::DeviceRemoved)
                    + c.faults(Rv::DeviceError)
            })
            .unwrap_or(0)
    }

    fn work(&self) {
        while Instant::now() < self.deadline {
            let job = self.next_job.fetch_add(1, Ordering::Relaxed);
            let input = &self.inputs[job % self.inputs.len()];
            let output = self.out_dir.join(format!("{job:07}-{}", input.name));
            let device_before = self.device_signals();
            trace::start();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.signer.sign_file(&input.path, &output)
            }));
            let notes = trace::take();
            let device_event = self.device_signals() != device_before;
            match result {
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-text panic".to_owned());
                    self.tally()
                        .panics
                        .push(format!("signing {}: {message}", input.name));
                }
                Ok(Ok(_report)) => match (self.verify)(&output, &input.bytes) {
                    Ok(()) => {
                        let keep = self.take_sample();
                        let mut tally = self.tally();
                        tally.signed += 1;
                        if keep {
                            tally.samples.push(output);
                        } else {
                            drop(tally);
                            if let Err(e) = std::fs::remove_file(&output) {
                                self.tally()
                                    .damage
                                    .push(format!("cannot remove {}: {e}", output.display()));
                            }
                        }
                    }
                    // The file stays, to be looked at.
                    Err(problem) => self.tally().damage.push(format!(
                        "corrupt output {} (from {}): {problem}",
                        output.display(),
                        input.name
                    )),
                },
                Ok(Err(error)) => {
                    let verdict = classify(&error, &notes, device_event, self.injected);
                    let mut tally = self.tally();
                    tally.failed += 1;
                    if output.exists() {
                        tally.damage.push(format!(
                            "partial output {} left by a failure: {error}",
                            output.display()
                        ));
                    }
                    let count = tally.failures.entry(verdict.cause.clone()).or_default();
                    if verdict.explained {
                        count.explained += 1;
                    } else {
                        count.unexplained += 1;
                        let first_of_cause = count.unexplained <= DETAILS_PER_CAUSE;
                        tally.unexplained += 1;
                        if first_of_cause && tally.unexplained_details.len() < DETAILS {
                            let log: Vec<String> = notes.iter().map(ToString::to_string).collect();
                            tally.unexplained_details.push(format!(
                                "{}: {error} [{}] ({}); p11-session said: [{}]",
                                input.name,
                                error_chain(&error),
                                verdict.why,
                                log.join(" | ")
                            ));
                        }
                    }
                }
            }
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the soak in this process (see the module docs).
///
/// # Panics
/// If the set-up fails (token, proxy, signer, files). A soak that finds problems does
/// not panic: they are in the report. A stall ends the process (exit code 3) with what
/// was found so far.
pub fn run(config: &SoakConfig) -> SoakReport {
    let traced = trace::install();
    let proxy = proxy();
    let test = TestToken::builder("soak").key(KeyKind::P256).build();
    let dir = &config.dir;
    let _ = std::fs::remove_dir_all(dir);
    let inputs = make_inputs(&dir.join("in"));
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", out_dir.display()));
    let pki = crate::pki_files(dir);
    let roots = pdfsign::load_trust_roots(&[&pki.root])
        .unwrap_or_else(|e| panic!("reading the fixture root: {e}"));

    // The signer opens the token through the proxy with the default configuration, as
    // a service would; this handle shares its state, to read the counters.
    let signer = Signer::from_uri(
        &proxy_uri(&test),
        Some(Pin::new(&test.user_pin)),
        &SignOptions::default(),
    )
    .unwrap_or_else(|e| panic!("opening the signer through the proxy: {e}"));
    let token = Token::open(&proxy.module, &TokenQuery::Serial(test.serial))
        .unwrap_or_else(|e| panic!("opening the token through the proxy: {e}"));
    let metrics = token.metrics();
    let slot = token.slot();

    let verify = |output: &Path, input: &[u8]| -> Result<(), String> {
        let bytes = std::fs::read(output).map_err(|e| format!("reading it back: {e}"))?;
        if !bytes.starts_with(input) {
            return Err("the input's bytes are not the output's prefix".into());
        }
        let report = pdfsign::verify_file(output, &roots).map_err(|e| format!("verify: {e}"))?;
        match report.signatures.as_slice() {
            [one] if one.valid && one.coverage.as_ref().is_some_and(|c| c.whole_file) => Ok(()),
            [one] => Err(format!(
                "verify: valid {}, integrity {} ({:?}), whole file {:?}",
                one.valid,
                one.integrity,
                one.integrity_problem,
                one.coverage.as_ref().map(|c| c.whole_file)
            )),
            many => Err(format!("verify: {} signatures, expected one", many.len())),
        }
    };

    let (spec, injected) = config.spec();
    proxy
        .control
        .replace_slot_rules(slot, &spec)
        .unwrap_or_else(|e| panic!("the soak's spec: {e}"));
    proxy.control.reset_counters(Some(slot));

    let start = Instant::now();
    let shared = Shared {
        signer: &signer,
        inputs: &inputs,
        out_dir: &out_dir,
        injected: &injected,
        verify: &verify,
        slot,
        deadline: start + config.duration,
        next_job: AtomicUsize::new(0),
        completed: AtomicU64::new(0),
        next_sample_ms: AtomicU64::new(0),
        sample_every_ms: u64::try_from(
            (config.duration / u32::try_from(config.pdfsig_samples.max(1)).unwrap_or(1))
                .as_millis(),
        )
        .unwrap_or(1000),
        sample_cap: config.pdfsig_samples,
        start,
        tally: Mutex::new(Tally::default()),
    };
    let done = AtomicBool::new(false);
    let mut memory = Memory {
        start_kib: rss_kib(),
        ..Memory::default()
    };
    std::thread::scope(|scope| {
        let watchdog = scope.spawn(|| watch(config, &shared, &done));
        let workers: Vec<_> = (0..config.threads)
            .map(|_| scope.spawn(|| shared.work()))
            .collect();
        for worker in workers {
            if worker.join().is_err() {
                shared
                    .tally()
                    .panics
                    .push("a signing thread died".to_owned());
            }
        }
        memory.end_kib = rss_kib();
        done.store(true, Ordering::Relaxed);
        let (baseline, peak) = watchdog.join().unwrap_or((0, 0));
        memory.baseline_kib = baseline;
        memory.peak_kib = peak.max(memory.end_kib);
    });
    let elapsed = start.elapsed();

    // Quiet again: no faults, the token back.
    let _ = proxy.control.replace_slot_rules(slot, "");
    let _ = proxy.control.trigger(Event::Insert, Some(slot));
    let counters = proxy.control.counters(Some(slot)).unwrap_or_default();
    let snapshot = metrics.snapshot();

    let mut tally = std::mem::take(&mut *shared.tally());
    for input in &inputs {
        match std::fs::read(&input.path) {
            Ok(bytes) if Sha256::digest(&bytes).as_slice() == input.sha256.as_slice() => {}
            Ok(_) => tally.damage.push(format!("input {} changed", input.name)),
            Err(e) => tally
                .damage
                .push(format!("input {} unreadable: {e}", input.name)),
        }
    }
    let kept: BTreeSet<&PathBuf> = tally.samples.iter().collect();
    let mut leftovers = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&out_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if !kept.contains(&path)
                && !tally
                    .damage
                    .iter()
                    .any(|d| d.contains(&*path.to_string_lossy()))
            {
                leftovers.push(format!("leftover file {}", path.display()));
            }
        }
    }
    tally.damage.extend(leftovers);

    let mut pdfsig_problems = Vec::new();
    let mut pdfsig_checked = 0;
    if Tool::Pdfsig.available() {
        for sample in &tally.samples {
            pdfsig_checked += 1;
            match pdf_validators::pdfsig(sample) {
                Ok(found) if found.len() == 1 && found[0].valid && found[0].total_document => {}
                Ok(found) => {
                    pdfsig_problems.push(format!("pdfsig on {}: {found:?}", sample.display()))
                }
                Err(e) => pdfsig_problems.push(e),
            }
        }
    }

    let report = SoakReport {
        config: config.clone(),
        elapsed,
        inputs: inputs.len(),
        signed: tally.signed,
        failed: tally.failed,
        failures: tally.failures,
        unexplained: tally.unexplained,
        unexplained_details: tally.unexplained_details,
        damage: tally.damage,
        panics: tally.panics,
        pdfsig_checked,
        pdfsig_problems,
        metrics: snapshot,
        proxy: counters,
        memory,
        traced,
    };
    drop((signer, token));
    if report.passed() {
        let _ = std::fs::remove_dir_all(dir);
    }
    report
}

/// The watchdog: samples VmRSS every 250 ms (returns the baseline and the peak) and
/// ends the process if no signature completes for `stall_limit`.
fn watch(config: &SoakConfig, shared: &Shared<'_>, done: &AtomicBool) -> (u64, u64) {
    let mut baseline = 0;
    let mut peak = 0;
    let mut last = 0;
    let mut last_change = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let rss = rss_kib();
        peak = peak.max(rss);
        if baseline == 0 && shared.start.elapsed() >= config.baseline_at() {
            baseline = rss;
        }
        let completed = shared.completed.load(Ordering::Relaxed);
        if completed != last {
            last = completed;
            last_change = Instant::now();
        } else if last_change.elapsed() >= config.stall_limit && !done.load(Ordering::Relaxed) {
            let tally = shared.tally();
            eprintln!(
                "soak: WATCHDOG: no signature completed for {:?} (deadlock?) after {:?}: \
                 {} signed, {} failed, {} unexplained; ending the process",
                config.stall_limit,
                shared.start.elapsed(),
                tally.signed,
                tally.failed,
                tally.unexplained
            );
            for detail in &tally.unexplained_details {
                eprintln!("  unexplained: {detail}");
            }
            std::process::exit(3);
        }
    }
    (baseline, peak)
}
