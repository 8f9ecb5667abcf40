use clap::{CommandFactory, Parser};

use super::*;

const URI: &str = "pkcs11:token=t;object=k";

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("pdfsign").chain(args.iter().copied()))
}

fn sign(args: &[&str]) -> SignArgs {
    let mut all = vec!["sign", "in.pdf", "-o", "out.pdf", "--key", URI];
    all.extend_from_slice(args);
    match parse(&all).unwrap().command {
        Command::Sign(sign) => sign,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_flag_has_a_short_and_a_long_help() {
    let command = Cli::command();
    for sub in command.get_subcommands() {
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(
                arg.get_help().is_some(),
                "{} {id} has no help",
                sub.get_name()
            );
        }
    }
}

#[test]
fn test_sign_defaults() {
    let args = sign(&[]);
    assert_eq!(args.input, PathBuf::from("in.pdf"));
    assert_eq!(args.output, PathBuf::from("out.pdf"));
    assert!(!args.force);
    assert_eq!(args.key.key.as_deref(), Some(URI));
    assert_eq!(args.signature.digest, DigestArg::Sha256);
    assert_eq!(args.signature.format, SubFilterArg::Pades);
    assert!(!args.signature.pss);
    assert_eq!(args.signature.page, 1);
    assert!(args.signature.visible.is_none() && args.signature.signing_time.is_none());
    assert!(args.key.pin.is_none() && args.key.pin_source.is_none());
}

#[test]
fn test_digest() {
    assert_eq!(
        sign(&["--digest", "sha384"]).signature.digest,
        DigestArg::Sha384
    );
    assert_eq!(
        sign(&["--digest=sha512"]).signature.digest,
        DigestArg::Sha512
    );
    assert!(parse(&["sign", "a", "-o", "b", "--key", URI, "--digest", "md5"]).is_err());
}

#[test]
fn test_format_and_pss() {
    assert_eq!(
        sign(&["--format", "pkcs7"]).signature.format,
        SubFilterArg::Pkcs7
    );
    assert!(sign(&["--pss"]).signature.pss);
}

#[test]
fn test_texts() {
    let args = sign(&[
        "--reason",
        "Approved",
        "--location",
        "Lyon",
        "--contact",
        "a@b.c",
        "--name",
        "Alice",
        "--field",
        "Approval",
    ]);
    assert_eq!(args.signature.reason.as_deref(), Some("Approved"));
    assert_eq!(args.signature.location.as_deref(), Some("Lyon"));
    assert_eq!(args.signature.contact.as_deref(), Some("a@b.c"));
    assert_eq!(args.signature.name.as_deref(), Some("Alice"));
    assert_eq!(args.signature.field.as_deref(), Some("Approval"));
}

#[test]
fn test_signing_time() {
    let args = sign(&["--signing-time", "2025-06-01T12:00:00Z"]);
    assert_eq!(
        args.signature.signing_time,
        pdfsign::time::parse_rfc3339("2025-06-01T12:00:00Z")
    );
    assert!(
        parse(&[
            "sign",
            "a",
            "-o",
            "b",
            "--key",
            URI,
            "--signing-time",
            "yesterday"
        ])
        .is_err()
    );
}

#[test]
fn test_visible_and_page() {
    let args = sign(&["--visible", "50,50,250,110", "--page", "2"]);
    assert_eq!(args.signature.visible, Some([50.0, 50.0, 250.0, 110.0]));
    assert_eq!(args.signature.page, 2);
    for bad in ["50,50,250", "50,50,40,110", "a,b,c,d", "50,50,250,inf"] {
        assert!(
            parse(&["sign", "a", "-o", "b", "--key", URI, "--visible", bad]).is_err(),
            "{bad}"
        );
    }
    assert!(parse(&["sign", "a", "-o", "b", "--key", URI, "--page", "0"]).is_err());
}

#[test]
fn test_key_sources() {
    let args = sign(&["--pin-source", "file:/run/pin", "--module", "/m.so"]);
    assert_eq!(args.key.pin_source.as_deref(), Some("file:/run/pin"));
    assert_eq!(args.key.module, Some(PathBuf::from("/m.so")));
    // A software key instead of a URI, with its certificate.
    let cli = parse(&[
        "sign",
        "a",
        "-o",
        "b",
        "--key-file",
        "k.pem",
        "--cert",
        "c.pem",
    ])
    .unwrap();
    let Command::Sign(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.key.key_file, Some(PathBuf::from("k.pem")));
    // Neither, both, or a key file without a certificate: refused.
    assert!(parse(&["sign", "a", "-o", "b"]).is_err());
    assert!(
        parse(&[
            "sign",
            "a",
            "-o",
            "b",
            "--key",
            URI,
            "--key-file",
            "k",
            "--cert",
            "c"
        ])
        .is_err()
    );
    assert!(parse(&["sign", "a", "-o", "b", "--key-file", "k.pem"]).is_err());
}

#[test]
fn test_batch() {
    let cli = parse(&[
        "batch", "dir", "a.pdf", "*.pdf", "-o", "out", "-j", "8", "--key", URI,
    ])
    .unwrap();
    let Command::Batch(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.inputs, ["dir", "a.pdf", "*.pdf"]);
    assert_eq!(args.output_dir, PathBuf::from("out"));
    assert_eq!(args.jobs, Some(8));
    assert_eq!(args.progress, ProgressArg::Auto);
    assert!(
        parse(&["batch", "-o", "out", "--key", URI]).is_err(),
        "inputs required"
    );
    assert!(parse(&["batch", "a", "-o", "out", "-j", "0", "--key", URI]).is_err());
    let cli = parse(&[
        "batch",
        "a",
        "-o",
        "out",
        "--key",
        URI,
        "--progress",
        "lines",
    ])
    .unwrap();
    let Command::Batch(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.progress, ProgressArg::Lines);
    assert_eq!(args.jobs, None);
}

#[test]
fn test_verify() {
    let cli = parse(&[
        "verify", "a.pdf", "b.pdf", "--trust", "r1.pem", "--trust", "r2.pem",
    ])
    .unwrap();
    let Command::Verify(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.files.len(), 2);
    assert_eq!(
        args.trust,
        [PathBuf::from("r1.pem"), PathBuf::from("r2.pem")]
    );
    assert!(parse(&["verify"]).is_err());
}

#[test]
fn test_list() {
    let cli = parse(&["list", "--module", "/m.so"]).unwrap();
    let Command::List(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.module, Some(PathBuf::from("/m.so")));
    assert!(!args.login);
    let cli = parse(&["list", "--key", URI, "--login"]).unwrap();
    let Command::List(args) = cli.command else {
        panic!()
    };
    assert!(args.login && args.key.is_some());
    assert!(parse(&["list", "--key", URI, "--module", "/m.so"]).is_err());
}

#[test]
fn test_global_flags() {
    let cli = parse(&["-vv", "verify", "a.pdf", "--json"]).unwrap();
    assert_eq!(cli.verbose, 2);
    assert!(cli.json);
    let cli = parse(&["verify", "a.pdf"]).unwrap();
    assert_eq!(cli.verbose, 0);
    assert!(!cli.json);
}

#[test]
fn help_states_defaults_and_exit_codes() {
    let mut command = Cli::command();
    let sign = command.find_subcommand_mut("sign").unwrap();
    let help = sign.render_long_help().to_string();
    for needle in [
        "[default: sha256]",
        "[default: pades]",
        "[default: now]",
        "EXIT CODES",
        "pkcs11:",
    ] {
        assert!(help.contains(needle), "sign --help lacks {needle:?}");
    }
    let batch = command.find_subcommand_mut("batch").unwrap();
    let help = batch.render_long_help().to_string();
    assert!(help.contains("[default: the number of CPUs]"));
}
