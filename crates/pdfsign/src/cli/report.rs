//! How errors and results reach the user: errors as one line, their causes, a hint.

use std::io::Write;

/// Prints `error` to standard error:
///
/// ```text
/// pdfsign: error: the token "hsm" refused the PIN
///   cause: C_Login: CKR_PIN_INCORRECT
///   hint: token flags: CKF_USER_PIN_COUNT_LOW; tokens lock after a few wrong PINs: ...
/// ```
pub(crate) fn print_error(error: &pdfsign::Error) {
    let mut text = format!("pdfsign: error: {error}\n");
    for cause in causes(error) {
        text.push_str(&format!("  cause: {cause}\n"));
    }
    if let Some(hint) = error.hint() {
        text.push_str(&format!("  hint: {hint}\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The messages of `error`'s sources, outermost first, skipping any that only repeat
/// the message before them.
pub(crate) fn causes(error: &dyn std::error::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut previous = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !previous.contains(&message) {
            out.push(message.clone());
        }
        previous = message;
        source = cause.source();
    }
    out
}

/// An error and its causes on one line, for per-file reports.
pub(crate) fn one_line(error: &pdfsign::Error) -> String {
    let mut text = error.to_string();
    for cause in causes(error) {
        text.push_str(": ");
        text.push_str(&cause);
    }
    if let Some(hint) = error.hint() {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}

/// Prints a JSON document on standard output.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), pdfsign::Error> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| pdfsign::Error::Io {
        during: "writing JSON to",
        path: "standard output".into(),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|source| pdfsign::Error::Io {
            during: "writing to",
            path: "standard output".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_skip_repeats() {
        let error = pdfsign::Error::Uri(pdfsign::UriError::BadSlotId);
        assert_eq!(causes(&error), ["slot-id must be a decimal number"]);
        let line = one_line(&error);
        assert!(line.starts_with("invalid PKCS#11 URI: slot-id must be a decimal number (hint: "));
    }
}
