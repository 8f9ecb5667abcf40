//! `pdfsign sign`.

use serde::Serialize;

use super::SUCCESS;
use super::args::SignArgs;
use super::key::open_signer;
use super::report::print_json;

#[derive(Serialize)]
struct Signed<'a> {
    input: String,
    output: String,
    field: &'a str,
    signing_time: String,
    byte_range: [u64; 4],
    key: &'a str,
    warnings: &'a [String],
}

pub(crate) fn run(args: &SignArgs, json: bool) -> Result<u8, pdfsign::Error> {
    refuse_existing(&args.output, args.force)?;
    // Check the input before the token is asked for a PIN.
    std::fs::File::open(&args.input).map_err(|source| pdfsign::Error::Io {
        during: "opening",
        path: args.input.clone(),
        source,
    })?;
    let signer = open_signer(&args.key, &args.signature)?;
    let report = signer.sign_file(&args.input, &args.output)?;
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    if json {
        print_json(&Signed {
            input: args.input.display().to_string(),
            output: args.output.display().to_string(),
            field: &report.field_name,
            signing_time: pdfsign::time::format_rfc3339(report.signing_time),
            byte_range: report.byte_range,
            key: signer.description(),
            warnings: &report.warnings,
        })?;
    } else {
        println!(
            "signed {} -> {} (field {}, {})",
            args.input.display(),
            args.output.display(),
            report.field_name,
            pdfsign::time::format_rfc3339(report.signing_time)
        );
    }
    Ok(SUCCESS)
}

/// Refuses an existing output unless `force`.
pub(crate) fn refuse_existing(output: &std::path::Path, force: bool) -> Result<(), pdfsign::Error> {
    if !force && output.exists() {
        return Err(pdfsign::Error::Io {
            during: "refusing to overwrite (use --force)",
            path: output.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    Ok(())
}
