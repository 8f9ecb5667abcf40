//! The command line as parsed, before anything is resolved (PINs read, keys opened):
//! each flag with a short line for `-h` and a newcomer's paragraph for `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sign PDF documents with keys held in PKCS#11 tokens (HSMs, smart cards, SoftHSM2).
///
/// pdfsign adds PAdES signatures to PDFs as incremental updates, so earlier signatures
/// stay valid, and checks signatures with `pdfsign verify`. Keys are named by PKCS#11
/// URIs (RFC 7512), for example:
///
///     pkcs11:token=pdfsign-demo;object=p256?module-path=/usr/lib/softhsm/libsofthsm2.so
///
/// Try `cargo xtask demo` in the source tree for a first signature on a test token.
#[derive(Debug, Parser)]
#[command(
    name = "pdfsign",
    version,
    propagate_version = true,
    after_long_help = EXIT_CODES,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Show more of what happens (repeat for more: -v info, -vv debug, -vvv trace).
    ///
    /// Log messages go to standard error. Without -v only warnings and errors are shown.
    /// The RUST_LOG environment variable, when set, overrides this (for example
    /// RUST_LOG=p11_session=debug). PINs never appear in any log.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Print the result as JSON on standard output, for machines.
    ///
    /// Each command prints one JSON document: `sign` the signature it made, `batch` one
    /// entry per file and a summary, `verify` every signature found, `list` the slots,
    /// tokens and objects. Errors still go to standard error, and the exit code is the
    /// same as without --json.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

const EXIT_CODES: &str = "\
EXIT CODES:
    0  success: everything was signed, or every signature verified
    1  some files failed to sign (batch), or a signature is invalid (verify)
    2  nothing done: bad arguments, bad URI, module, token, key or PIN problem";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sign one PDF.
    ///
    /// Writes a signed copy of INPUT to --output; INPUT is never modified. The output is
    /// written to a temporary file beside it and renamed into place only when complete,
    /// so it never exists half-written.
    ///
    /// Example:
    ///
    ///     pdfsign sign contract.pdf -o contract-signed.pdf \
    ///         --key 'pkcs11:token=pdfsign-demo;object=p256?module-path=/usr/lib/softhsm/libsofthsm2.so' \
    ///         --pin-source file:/run/secrets/pin --reason Approved
    #[command(after_long_help = EXIT_CODES)]
    Sign(SignArgs),
    /// Sign many PDFs with one key, on several threads.
    ///
    /// Each input is signed into --output-dir under its own file name. Inputs are files,
    /// directories (every *.pdf directly inside) or glob patterns (quote them: '*.pdf').
    /// A file that fails is reported and the others are signed; no output is ever left
    /// for a file that failed. The exit code is 1 if any file failed.
    ///
    /// Example:
    ///
    ///     pdfsign batch invoices/ -o signed/ -j 8 --key 'pkcs11:token=hsm;object=invoices'
    #[command(after_long_help = EXIT_CODES)]
    Batch(BatchArgs),
    /// Check every signature of PDFs.
    ///
    /// For each signature: who signed and when, the algorithms, whether the signed bytes
    /// are intact and the signature verifies, whether it covers the whole file (or what
    /// was appended after it), and the certificate chain up to a trust root given with
    /// --trust (each link's signature, validity at the signing time, CA and key-usage
    /// constraints). Revocation is not checked. The exit code is 1 if any signature is
    /// invalid or a file has none.
    ///
    /// Example:
    ///
    ///     pdfsign verify contract-signed.pdf --trust root.pem
    #[command(after_long_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Show the slots, tokens and objects of a PKCS#11 module.
    ///
    /// Without a PIN, lists what anyone can see: slots, tokens and their public objects
    /// (certificates, public keys). With a PIN (from the URI, --pin-source, PDFSIGN_PIN,
    /// or a prompt with --login), also lists the private keys and the subjects of their
    /// certificates: the labels to put in a key URI's object= attribute.
    ///
    /// Example:
    ///
    ///     pdfsign list --module /usr/lib/softhsm/libsofthsm2.so
    ///     pdfsign list --key 'pkcs11:token=pdfsign-demo?module-path=/usr/lib/softhsm/libsofthsm2.so' --login
    #[command(after_long_help = EXIT_CODES)]
    List(ListArgs),
}

/// Where the key is: a PKCS#11 URI, or a software key file.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// The signing key, as a PKCS#11 URI (RFC 7512).
    ///
    /// Path attributes select the token (token=LABEL, serial=, slot-id=) and the key
    /// (object=LABEL, id=%01%02 for the CKA_ID, type=private); query attributes name the
    /// module (module-path=/path/to/module.so, or module-name=softhsm2) and the PIN
    /// (pin-source=file:/path, or pin-value=PIN, which works but is unsafe: other users
    /// can see it in the process list). Quote the URI: it contains ';' and '?'.
    /// The certificate (and chain) is read from the token: the certificate object with
    /// the key's CKA_ID. Run `pdfsign list` to see what a token holds.
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "key_file",
        conflicts_with = "key_file"
    )]
    pub(crate) key: Option<String>,

    /// The PKCS#11 module, when the URI has no module-path or module-name.
    ///
    /// A path to the module's shared library, for example
    /// /usr/lib/softhsm/libsofthsm2.so. Defaults to the PKCS11_MODULE environment
    /// variable when that is set.
    #[arg(long, value_name = "PATH")]
    pub(crate) module: Option<PathBuf>,

    /// Read the PIN from this file (a path or a file: URI).
    ///
    /// The file holds the PIN, optionally followed by one line break. Same as the URI's
    /// pin-source attribute, which takes precedence. Without a PIN source, the PIN comes
    /// from the PDFSIGN_PIN environment variable, or is asked for on the terminal
    /// (without echo); with neither, signing fails.
    #[arg(long, value_name = "FILE")]
    pub(crate) pin_source: Option<String>,

    /// The PIN itself (unsafe: other users can see it in the process list).
    ///
    /// Works, but prints a warning; prefer --pin-source or PDFSIGN_PIN. The token is
    /// asked exactly once with it: a wrong PIN is never retried, since tokens lock after
    /// a few failures.
    #[arg(long, value_name = "PIN")]
    pub(crate) pin: Option<String>,

    /// A software private key (unencrypted PKCS#8 PEM) instead of a token's key.
    ///
    /// For tests and for signers without a token. Needs --cert. The key never leaves
    /// this process, but it is only as safe as the file it comes from.
    #[arg(long, value_name = "KEY.pem", requires = "cert")]
    pub(crate) key_file: Option<PathBuf>,

    /// The signer's certificate (PEM), for --key-file, or to use instead of the token's.
    ///
    /// The first certificate in the file is the signer's; any further ones are its
    /// chain (intermediates, nearest first), embedded in the signature so validators can
    /// build the path to their trust root.
    #[arg(long, value_name = "CERT.pem")]
    pub(crate) cert: Option<PathBuf>,

    /// More chain certificates (PEM) to embed in the signature.
    ///
    /// Intermediate CA certificates between the signer's certificate and the root,
    /// nearest first. With a token key, the token's CA certificates are used when this
    /// is not given.
    #[arg(long, value_name = "CHAIN.pem")]
    pub(crate) chain: Option<PathBuf>,
}

/// How the signature is made and what it says.
#[derive(Debug, Clone, Args)]
pub(crate) struct SignatureArgs {
    /// The digest algorithm [default: sha256].
    ///
    /// Hashes the signed bytes of the PDF and the signature's attributes. sha256 is
    /// accepted everywhere; sha384 and sha512 suit P-384 and P-521 keys.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha256, hide_default_value = true)]
    pub(crate) digest: DigestArg,

    /// The PDF signature format [default: pades].
    ///
    /// pades writes /SubFilter /ETSI.CAdES.detached (PAdES baseline B-B, what EU
    /// validators expect); pkcs7 writes the older /adbe.pkcs7.detached, which some old
    /// readers need.
    #[arg(long, value_enum, default_value_t = SubFilterArg::Pades, hide_default_value = true)]
    pub(crate) format: SubFilterArg,

    /// With RSA keys, sign with RSASSA-PSS instead of PKCS#1 v1.5.
    ///
    /// PSS is the modern RSA signature scheme (MGF1 with the same hash, salt as long as
    /// the hash). Off by default, since PKCS#1 v1.5 is what every validator accepts.
    /// Refused for EC keys.
    #[arg(long)]
    pub(crate) pss: bool,

    /// The signer's name shown in the signature [default: the certificate's common name].
    #[arg(long, value_name = "TEXT")]
    pub(crate) name: Option<String>,

    /// Why the document is signed (the signature's /Reason), e.g. "Approved".
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: Option<String>,

    /// Where it is signed (the signature's /Location), e.g. "Lyon, France".
    #[arg(long, value_name = "TEXT")]
    pub(crate) location: Option<String>,

    /// How to reach the signer (the signature's /ContactInfo), e.g. an e-mail address.
    #[arg(long, value_name = "TEXT")]
    pub(crate) contact: Option<String>,

    /// The signing time to claim, RFC 3339 [default: now].
    ///
    /// For example 2025-06-01T12:00:00Z or 2025-06-01T14:00:00+02:00. It is what the
    /// signature claims (/M), not a trusted time-stamp.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) signing_time: Option<std::time::SystemTime>,

    /// The signature field's name [default: Signature1, or the next free number].
    ///
    /// If the document has an empty signature field of that name, it is filled;
    /// otherwise a new field is added.
    #[arg(long, value_name = "NAME")]
    pub(crate) field: Option<String>,

    /// Show the signature on the page, in this rectangle: LEFT,BOTTOM,RIGHT,TOP.
    ///
    /// In points (1/72 inch) from the page's lower-left corner, for example
    /// 50,50,250,110 for a 200×60 box near the bottom left. The box shows the signer's
    /// name, the date and the reason. Without it the signature is invisible (it still
    /// shows in the reader's signature panel).
    #[arg(long, value_name = "RECT", value_parser = parse_rect)]
    pub(crate) visible: Option<[f32; 4]>,

    /// The page of the signature's widget, counting from 1 [default: 1].
    #[arg(long, value_name = "N", default_value_t = 1, hide_default_value = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page: u32,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct SignArgs {
    /// The PDF to sign (never modified).
    pub(crate) input: PathBuf,

    /// Where to write the signed PDF.
    ///
    /// Refused if the file exists, unless --force is given; refused if it is the input.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Overwrite the output if it exists.
    #[arg(short, long)]
    pub(crate) force: bool,

    #[command(flatten)]
    pub(crate) key: KeyArgs,

    #[command(flatten)]
    pub(crate) signature: SignatureArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BatchArgs {
    /// The PDFs to sign: files, directories (their *.pdf files) or quoted glob patterns.
    #[arg(required = true, value_name = "INPUT")]
    pub(crate) inputs: Vec<String>,

    /// The directory for the signed PDFs (created if missing).
    ///
    /// Each output has its input's file name. Two inputs with the same file name are
    /// refused before anything is signed.
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output_dir: PathBuf,

    /// How many files to sign at once [default: the number of CPUs].
    ///
    /// The worker threads share one login and one pool of token sessions; a token signs
    /// in parallel up to its session limit. With fewer jobs than twice the CPUs, each
    /// job hands its finished file to a thread of its own that waits for the disk
    /// (fsync, rename), so the job signs the next file meanwhile.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) jobs: Option<u32>,

    /// Overwrite outputs that exist (otherwise those files fail).
    #[arg(short, long)]
    pub(crate) force: bool,

    /// Progress display [default: auto].
    ///
    /// auto shows a progress bar on a terminal and one line per file otherwise;
    /// bar and lines force one of them; none shows only failures and the summary.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto, hide_default_value = true)]
    pub(crate) progress: ProgressArg,

    #[command(flatten)]
    pub(crate) key: KeyArgs,

    #[command(flatten)]
    pub(crate) signature: SignatureArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct VerifyArgs {
    /// The signed PDFs to check.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// A trust root certificate (PEM; repeat the flag or put several in one file).
    ///
    /// Each signature's certificate chain is built from the certificates inside the
    /// signature up to one of these, and checked. Without --trust the chain is shown but
    /// not judged, and the signatures count as valid when their bytes and cryptography
    /// are.
    #[arg(long, value_name = "ROOT.pem")]
    pub(crate) trust: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    /// The PKCS#11 module to list (all its slots).
    ///
    /// Defaults to the PKCS11_MODULE environment variable when that is set.
    #[arg(long, value_name = "PATH", conflicts_with = "key")]
    pub(crate) module: Option<PathBuf>,

    /// List only what this PKCS#11 URI selects (its module, token and objects).
    #[arg(long, value_name = "URI")]
    pub(crate) key: Option<String>,

    /// Log in to list private keys, asking for the PIN on the terminal if none is given.
    ///
    /// A PIN from the URI, --pin-source or PDFSIGN_PIN logs in without this flag.
    #[arg(long)]
    pub(crate) login: bool,

    /// Read the PIN from this file (a path or a file: URI).
    #[arg(long, value_name = "FILE")]
    pub(crate) pin_source: Option<String>,

    /// The PIN itself (unsafe: other users can see it in the process list).
    #[arg(long, value_name = "PIN")]
    pub(crate) pin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DigestArg {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SubFilterArg {
    /// /ETSI.CAdES.detached
    Pades,
    /// /adbe.pkcs7.detached
    Pkcs7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressArg {
    Auto,
    Bar,
    Lines,
    None,
}

fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    pdfsign::time::parse_rfc3339(text)
        .ok_or_else(|| "expected an RFC 3339 time such as 2025-06-01T12:00:00Z".to_owned())
}

fn parse_rect(text: &str) -> Result<[f32; 4], String> {
    let numbers: Vec<f32> = text
        .split(',')
        .map(|n| n.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            "expected four numbers LEFT,BOTTOM,RIGHT,TOP, e.g. 50,50,250,110".to_owned()
        })?;
    let [left, bottom, right, top] = numbers[..] else {
        return Err("expected four numbers LEFT,BOTTOM,RIGHT,TOP, e.g. 50,50,250,110".to_owned());
    };
    if !numbers.iter().all(|n| n.is_finite()) || right <= left || top <= bottom {
        return Err("the rectangle needs RIGHT > LEFT and TOP > BOTTOM".to_owned());
    }
    Ok([left, bottom, right, top])
}

#[cfg(test)]
mod tests;
