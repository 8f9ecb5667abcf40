//! Resolving the key flags: the PIN from wherever the user keeps it, then the signer.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use pdfsign::{
    Digest, Error, Pin, PinError, Pkcs11Key, Pkcs11Uri, Rect, SignOptions, Signer, SoftwareKey,
    SubFilter,
};

use super::args::{DigestArg, KeyArgs, SignatureArgs, SubFilterArg};

/// The environment variable a PIN may come from.
pub(crate) const PIN_ENV: &str = "PDFSIGN_PIN";

/// Where the PIN may come from, in the order tried.
pub(crate) struct PinSources<'a> {
    /// `--pin-source`.
    pub(crate) flag_source: Option<&'a str>,
    /// `--pin` (unsafe: warns).
    pub(crate) flag_value: Option<&'a str>,
    /// The URI, whose `pin-source` or `pin-value` (unsafe: warns) may hold it.
    pub(crate) uri: Option<&'a Pkcs11Uri>,
    /// The token's label for the prompt, or `None` to never prompt.
    pub(crate) prompt_for: Option<String>,
}

/// The PIN: `--pin-source`, `--pin`, the URI's `pin-source` or `pin-value`, the
/// `PDFSIGN_PIN` environment variable, or a prompt without echo when standard input is a
/// terminal. `None` when none of them gives one.
pub(crate) fn resolve_pin(sources: &PinSources<'_>) -> Result<Option<Pin>, Error> {
    const UNSAFE: &str = "a PIN on the command line is visible to other users of this machine \
                          (process list, shell history); prefer --pin-source or PDFSIGN_PIN";
    if let Some(source) = sources.flag_source {
        return Ok(Some(Pin::from_source(source)?));
    }
    if let Some(value) = sources.flag_value {
        tracing::warn!("{UNSAFE}");
        return Ok(Some(Pin::new(value)));
    }
    if let Some(uri) = sources.uri {
        if let Some(source) = uri.pin_source() {
            return Ok(Some(Pin::from_source(source)?));
        }
        if let Some(value) = uri.pin_value() {
            tracing::warn!("pin-value in the URI: {UNSAFE}");
            return Ok(Some(Pin::new(value)));
        }
    }
    if let Some(value) = std::env::var_os(PIN_ENV) {
        let value = zeroize::Zeroizing::new(value.into_encoded_bytes());
        return Ok(Some(Pin::from_bytes(value.to_vec())));
    }
    match &sources.prompt_for {
        Some(token) if std::io::stdin().is_terminal() => {
            let prompt = format!("PIN for {token}: ");
            let pin = zeroize::Zeroizing::new(
                rpassword::prompt_password(prompt).map_err(PinError::Prompt)?,
            );
            Ok(Some(Pin::new(&pin)))
        }
        _ => Ok(None),
    }
}

/// Parses a URI given on the command line. The error never repeats the text (it may
/// hold a PIN).
pub(crate) fn parse_uri(text: &str) -> Result<Pkcs11Uri, Error> {
    Ok(text.parse::<Pkcs11Uri>()?)
}

/// The module to use when the URI names none: `--module`, else `PKCS11_MODULE`.
pub(crate) fn fallback_module(flag: Option<&PathBuf>) -> Option<PathBuf> {
    flag.cloned()
        .or_else(|| std::env::var_os("PKCS11_MODULE").map(PathBuf::from))
}

/// Opens the signer the key flags describe, with the options the signature flags give.
pub(crate) fn open_signer(key: &KeyArgs, signature: &SignatureArgs) -> Result<Signer, Error> {
    let options = sign_options(signature)?;
    if let Some(key_file) = &key.key_file {
        // clap makes --cert required with --key-file.
        let cert = key.cert.as_deref().ok_or(Error::KeyFile {
            path: key_file.clone(),
            reason: "a software key needs its certificate (--cert)".into(),
        })?;
        let software = SoftwareKey::from_pem_files(key_file, cert, key.chain.as_deref())?;
        return Signer::from_key(
            Arc::new(software),
            &options,
            &format!("software key {}", key_file.display()),
        );
    }
    let Some(text) = &key.key else {
        return Err(PinError::Missing.into());
    };
    let uri = parse_uri(text)?;
    let fallback = fallback_module(key.module.as_ref());
    // The PIN is looked for (and asked for) only once the token is found.
    let mut token_key = Pkcs11Key::open_with(&uri, fallback.as_deref(), |label| {
        resolve_pin(&PinSources {
            flag_source: key.pin_source.as_deref(),
            flag_value: key.pin.as_deref(),
            uri: Some(&uri),
            prompt_for: Some(format!("token {label:?}")),
        })?
        .ok_or_else(|| PinError::Missing.into())
    })?;
    if let Some(cert) = &key.cert {
        let mut certificates = pdfsign::read_certificates(cert)?;
        if certificates.is_empty() {
            return Err(Error::KeyFile {
                path: cert.clone(),
                reason: "holds no CERTIFICATE PEM block".into(),
            });
        }
        let leaf = certificates.remove(0);
        if let Some(chain) = &key.chain {
            certificates.extend(pdfsign::read_certificates(chain)?);
        }
        token_key = token_key.with_certificate(leaf, certificates);
    } else if let Some(chain) = &key.chain {
        let leaf = pdfsign::CmsSigner::certificate(&token_key).to_vec();
        token_key = token_key.with_certificate(leaf, pdfsign::read_certificates(chain)?);
    }
    Signer::from_token_key(token_key, &options, &uri.to_string())
}

/// The library options from the signature flags.
pub(crate) fn sign_options(args: &SignatureArgs) -> Result<SignOptions, Error> {
    let mut builder = SignOptions::builder();
    builder
        .digest(match args.digest {
            DigestArg::Sha256 => Digest::Sha256,
            DigestArg::Sha384 => Digest::Sha384,
            DigestArg::Sha512 => Digest::Sha512,
        })
        .sub_filter(match args.format {
            SubFilterArg::Pades => SubFilter::EtsiCadesDetached,
            SubFilterArg::Pkcs7 => SubFilter::AdbePkcs7Detached,
        })
        .pss(args.pss);
    let page = args.page - 1;
    match args.visible {
        Some([left, bottom, right, top]) => {
            builder.visible(page, Rect::new(left, bottom, right, top));
        }
        None => {
            builder.page(page);
        }
    }
    if let Some(time) = args.signing_time {
        builder.signing_time(time);
    }
    if let Some(name) = &args.name {
        builder.name(name);
    }
    if let Some(reason) = &args.reason {
        builder.reason(reason);
    }
    if let Some(location) = &args.location {
        builder.location(location);
    }
    if let Some(contact) = &args.contact {
        builder.contact_info(contact);
    }
    if let Some(field) = &args.field {
        builder.field_name(field);
    }
    builder.build()
}
