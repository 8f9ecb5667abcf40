//! `pdfsign verify`.

use std::fmt::Write as _;
use std::path::Path;

use pdfsign::{ChainStatus, SignatureReport, VerifyReport};
use serde::Serialize;

use super::args::VerifyArgs;
use super::report::{one_line, print_json};
use super::{FAILURE, PARTIAL, SUCCESS};

#[derive(Serialize)]
struct FileResult<'a> {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten)]
    report: Option<&'a VerifyReport>,
}

pub(crate) fn run(args: &VerifyArgs, json: bool) -> Result<u8, pdfsign::Error> {
    let roots = pdfsign::load_trust_roots(&args.trust)?;
    let mut all_valid = true;
    let mut unreadable = 0;
    let mut results = Vec::new();
    let reports: Vec<_> = args
        .files
        .iter()
        .map(|file| (file, pdfsign::verify_file(file, &roots)))
        .collect();
    for (file, report) in &reports {
        match report {
            Ok(report) => {
                all_valid &= report.all_valid();
                if !json {
                    print!("{}", render(file, report, !roots.is_empty()));
                }
                results.push(FileResult {
                    file: file.display().to_string(),
                    valid: report.all_valid(),
                    error: None,
                    report: Some(report),
                });
            }
            Err(error) => {
                unreadable += 1;
                all_valid = false;
                if !json {
                    eprintln!("pdfsign: error: {}: {}", file.display(), one_line(error));
                }
                results.push(FileResult {
                    file: file.display().to_string(),
                    valid: false,
                    error: Some(one_line(error)),
                    report: None,
                });
            }
        }
    }
    if json {
        print_json(&results)?;
    }
    Ok(if unreadable == args.files.len() {
        FAILURE
    } else if all_valid {
        SUCCESS
    } else {
        PARTIAL
    })
}

/// The human-readable report of one file.
fn render(file: &Path, report: &VerifyReport, trust_given: bool) -> String {
    let mut out = String::new();
    let count = report.signatures.len();
    let _ = writeln!(
        out,
        "{}: {} signature{}",
        file.display(),
        count,
        if count == 1 { "" } else { "s" }
    );
    if count == 0 {
        let _ = writeln!(out, "  no signature to verify: INVALID");
    }
    for signature in &report.signatures {
        render_signature(&mut out, signature, trust_given);
    }
    out
}

fn render_signature(out: &mut String, s: &SignatureReport, trust_given: bool) {
    let verdict = if s.valid { "VALID" } else { "INVALID" };
    let _ = writeln!(out, "  {}: {verdict}", s.field);
    let line = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "    {label:<11} {value}");
    };
    line(out, "signer:", s.signer.as_deref().unwrap_or("(unknown)"));
    let time = match (&s.signing_time, &s.cms_signing_time) {
        (Some(m), _) => format!("{m} (claimed by the signer, /M)"),
        (None, Some(cms)) => format!("{cms} (claimed by the signer, CMS signing-time)"),
        (None, None) => "(none given)".to_owned(),
    };
    line(out, "signed at:", &time);
    let algorithms = match (&s.sub_filter, &s.signature_algorithm) {
        (Some(f), Some(a)) => format!("{f}, {a}"),
        (Some(f), None) => f.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => "(unknown)".to_owned(),
    };
    line(out, "format:", &algorithms);
    for (label, value) in [
        ("name:", &s.name),
        ("reason:", &s.reason),
        ("location:", &s.location),
    ] {
        if let Some(value) = value {
            line(out, label, value);
        }
    }
    let integrity = match (&s.integrity, &s.integrity_problem) {
        (true, _) => "intact: the signed bytes are unchanged and the signature verifies".to_owned(),
        (false, Some(problem)) => format!("BROKEN: {problem}"),
        (false, None) => "BROKEN".to_owned(),
    };
    line(out, "integrity:", &integrity);
    if let Some(c) = &s.coverage {
        let coverage = if c.whole_file {
            "the whole file".to_owned()
        } else {
            format!(
                "all but {} byte(s) appended after it ({} more revision(s)); {}",
                c.appended_bytes,
                c.appended_revisions,
                if c.appended_signed_later {
                    "a later signature covers them"
                } else {
                    "NOT covered by any signature"
                }
            )
        };
        line(out, "covers:", &coverage);
    }
    if let Some(chain) = &s.chain {
        let path: Vec<String> = chain
            .links
            .iter()
            .map(|l| {
                if l.trust_root {
                    format!("{} (trust root)", l.subject)
                } else {
                    l.subject.clone()
                }
            })
            .collect();
        let status = match &chain.status {
            ChainStatus::Trusted => "trusted".to_owned(),
            ChainStatus::NotChecked => "not checked (no --trust root given)".to_owned(),
            ChainStatus::Untrusted { reason } => format!("NOT TRUSTED: {reason}"),
        };
        line(out, "chain:", &status);
        for (i, subject) in path.iter().enumerate() {
            let _ = writeln!(
                out,
                "    {:<11} {}{}",
                "",
                if i == 0 { "" } else { "↳ " },
                subject
            );
        }
        for link in chain.links.iter().filter(|l| !l.problems.is_empty()) {
            let _ = writeln!(
                out,
                "    {:<11} {}: {}",
                "",
                link.subject,
                link.problems.join("; ")
            );
        }
        line(out, "revocation:", chain.revocation);
    } else if trust_given {
        line(
            out,
            "chain:",
            "NOT TRUSTED: the signature's certificates could not be read",
        );
    }
}
