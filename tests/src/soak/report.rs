//! What a soak found, and how it is printed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use p11_fault::{Counters, EventKind, Func};
use p11_raw::Rv;
use p11_session::MetricsSnapshot;

use super::SoakConfig;

/// Memory, from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS when the threads started.
    pub start_kib: u64,
    /// VmRSS at [`SoakConfig::baseline_at`].
    pub baseline_kib: u64,
    /// VmRSS when the threads were done.
    pub end_kib: u64,
    /// The highest VmRSS seen (sampled every 250 ms).
    pub peak_kib: u64,
}

impl Memory {
    /// The most the end may be: the baseline plus 10%.
    pub fn limit_kib(&self) -> u64 {
        self.baseline_kib + self.baseline_kib / 10
    }

    /// Whether memory stayed flat.
    pub fn flat(&self) -> bool {
        self.baseline_kib > 0 && self.end_kib <= self.limit_kib()
    }
}

/// The current resident set size in KiB (0 if it cannot be read).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Everything a soak found.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The configuration it ran with.
    pub config: SoakConfig,
    /// How long the threads actually signed.
    pub elapsed: Duration,
    /// Distinct input files.
    pub inputs: usize,
    /// Signatures made and checked (input prefix, `pdfsign` verifier).
    pub signed: u64,
    /// Inputs that failed to sign.
    pub failed: u64,
    /// Failures by cause (the module's `C_Function: CKR_...`, or the error), with
    /// whether that cause was explained.
    pub failures: BTreeMap<String, CauseCount>,
    /// Unexplained failures.
    pub unexplained: u64,
    /// The first unexplained failures in detail, with what `p11-session` logged.
    pub unexplained_details: Vec<String>,
    /// Outputs that are corrupt or partial, leftover files, changed inputs.
    pub damage: Vec<String>,
    /// Panics caught in the signing threads.
    pub panics: Vec<String>,
    /// Outputs `pdfsig` checked (0 when it is not installed).
    pub pdfsig_checked: usize,
    /// Outputs `pdfsig` did not find valid and whole.
    pub pdfsig_problems: Vec<String>,
    /// `p11-session`'s counters of the token.
    pub metrics: MetricsSnapshot,
    /// The proxy's counters of the token's slot.
    pub proxy: Counters,
    /// Memory over the run.
    pub memory: Memory,
    /// Whether the per-thread log recorder could be installed.
    pub traced: bool,
}

/// How often one cause was met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CauseCount {
    /// Failures explained by a second fault.
    pub explained: u64,
    /// Failures not explained.
    pub unexplained: u64,
}

impl SoakReport {
    /// Every reason the soak fails; empty when it passes.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.traced {
            problems.push(
                "another tracing subscriber was installed: failures cannot be attributed".into(),
            );
        }
        if self.signed == 0 {
            problems.push("nothing was signed".into());
        }
        if self.unexplained > 0 {
            problems.push(format!("{} unexplained failure(s)", self.unexplained));
        }
        problems.extend(self.damage.iter().cloned());
        problems.extend(self.panics.iter().map(|p| format!("panic: {p}")));
        problems.extend(self.pdfsig_problems.iter().cloned());
        if !self.memory.flat() {
            problems.push(format!(
                "memory grew: VmRSS {} KiB at the end > {} KiB (baseline {} KiB + 10%)",
                self.memory.end_kib,
                self.memory.limit_kib(),
                self.memory.baseline_kib
            ));
        }
        problems
    }

    /// Whether the soak passed.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let m = &self.metrics;
        let p = &self.proxy;
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "soak: {seconds:.0} s, {} threads, faults in {:.2}% of the calls of {} (seed {}), \
             a logout every {:?}, a close-all every {:?}, a {:?} removal every {:?}",
            c.threads,
            c.fault_rate * 100.0,
            c.fault_scope,
            c.seed,
            c.logout_period,
            c.close_all_period,
            c.remove_for,
            c.remove_period
        )?;
        writeln!(
            f,
            "  inputs: {} files signed over and over; {} signatures attempted",
            self.inputs,
            self.signed + self.failed
        )?;
        writeln!(
            f,
            "  signed: {} ({:.1}/s), every one verified by pdfsign (prefix, integrity, chain, \
             whole file); pdfsig checked {} of them",
            self.signed,
            self.signed as f64 / seconds.max(1e-9),
            self.pdfsig_checked
        )?;
        writeln!(
            f,
            "  failed: {} ({} unexplained)",
            self.failed, self.unexplained
        )?;
        for (cause, count) in &self.failures {
            writeln!(
                f,
                "    {cause}: {} explained (a second fault), {} unexplained",
                count.explained, count.unexplained
            )?;
        }
        writeln!(
            f,
            "  damage: {} corrupt/partial outputs, leftover files or changed inputs; {} panics",
            self.damage.len(),
            self.panics.len()
        )?;
        writeln!(
            f,
            "  repairs (p11-session): session {}, generation {}, login {}, key {}, context {}, \
             unfit session {}, device {}; retries {}; signatures {}, sign failures {}",
            m.repairs_session,
            m.repairs_generation,
            m.repairs_login,
            m.repairs_key,
            m.repairs_context,
            m.repairs_unfit_session,
            m.repairs_device,
            m.retries,
            m.signatures,
            m.sign_failures
        )?;
        writeln!(
            f,
            "  token (p11-session): {} C_Login, {} key look-ups, sessions opened {} / closed {} \
             / open {}, pool peak {}, {} waits for a session",
            m.logins,
            m.key_lookups,
            m.sessions_opened,
            m.sessions_closed,
            m.sessions_open,
            m.pool_peak,
            m.session_waits
        )?;
        let faults: Vec<String> = p
            .faults_by_code()
            .map(|(rv, n)| format!("{rv} {n}"))
            .collect();
        writeln!(
            f,
            "  proxy: {} calls ({} C_Sign, {} C_Login, {} C_OpenSession); {} faults injected: {}",
            p.total_calls(),
            p.calls(Func::Sign),
            p.calls(Func::Login),
            p.calls(Func::OpenSession),
            p.total_faults(),
            faults.join(", ")
        )?;
        let answers: Vec<String> = [
            Rv::TokenNotPresent,
            Rv::DeviceRemoved,
            Rv::KeyHandleInvalid,
            Rv::ObjectHandleInvalid,
            Rv::SessionHandleInvalid,
        ]
        .into_iter()
        .filter(|rv| p.answers(*rv) > 0)
        .map(|rv| format!("{rv} {}", p.answers(rv)))
        .collect();
        writeln!(
            f,
            "  proxy events: logout {}, close-all {}, remove {}; answers from events: {}",
            p.events(EventKind::Logout),
            p.events(EventKind::CloseAll),
            p.events(EventKind::Remove),
            if answers.is_empty() {
                "none".to_owned()
            } else {
                answers.join(", ")
            }
        )?;
        let mem = &self.memory;
        writeln!(
            f,
            "  memory (VmRSS): start {}, after {:?} {}, end {} (limit {}), peak {}",
            mib(mem.start_kib),
            c.baseline_at(),
            mib(mem.baseline_kib),
            mib(mem.end_kib),
            mib(mem.limit_kib()),
            mib(mem.peak_kib)
        )?;
        for detail in &self.unexplained_details {
            writeln!(f, "  unexplained: {detail}")?;
        }
        for problem in self.damage.iter().chain(&self.pdfsig_problems) {
            writeln!(f, "  damage: {problem}")?;
        }
        for panic in &self.panics {
            writeln!(f, "  panic: {panic}")?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            write!(f, "  verdict: PASS")
        } else {
            write!(f, "  verdict: FAIL: {}", problems.join("; "))
        }
    }
}
