//! Failures: clear messages, the right exit codes, no partial outputs, inputs unchanged.

use std::path::Path;

use pdfsign_e2e::{
    KeyKind, Scratch, TestToken, key_uri, module_path, pdfsign, pin_file, run, sample_pdf, setup,
};

/// Files in `dir`, hidden ones (temporary files) included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn sign_with(uri: &str, output: &Path) -> pdfsign_e2e::Run {
    run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(output)
        .args(["--key", uri]))
}

#[test]
fn bad_uris_are_explained_and_never_echo_the_pin() {
    let scratch = Scratch::new("bad_uris");
    let output = scratch.join("out.pdf");
    let cases = [
        ("pkcs12:token=x", "starts with \"pkcs11:\""),
        ("pkcs11:token=a;token=b", "appears more than once"),
        (
            "pkcs11:object=a b?pin-value=hunter22",
            "must be percent-encoded",
        ),
        ("pkcs11:slot-id=abc", "slot-id must be a decimal number"),
        ("pkcs11:id=%zz", "bad percent-encoding"),
        (
            "pkcs11:token=x?pin-value=hunter22&pin-source=/p",
            "keep one",
        ),
    ];
    for (uri, message) in cases {
        let out = sign_with(uri, &output);
        assert_eq!(out.code, 2, "{uri}: {}", out.all());
        assert!(
            out.stderr.contains("invalid PKCS#11 URI") && out.stderr.contains(message),
            "{uri}: {}",
            out.all()
        );
        assert!(out.stderr.contains("hint:"), "{}", out.all());
        assert!(
            !out.all().contains("hunter22"),
            "the PIN leaked: {}",
            out.all()
        );
    }
    // A vendor attribute it cannot honour is refused, not ignored.
    let out = sign_with(
        &format!(
            "pkcs11:token=x;x-vendor=1?module-path={}",
            module_path().display()
        ),
        &output,
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("x-vendor is not supported"),
        "{}",
        out.all()
    );
    assert!(
        entries(scratch.path()).is_empty(),
        "{:?}",
        entries(scratch.path())
    );
}

#[test]
fn a_missing_module_names_the_path_tried() {
    let scratch = Scratch::new("missing_module");
    let out = sign_with(
        "pkcs11:token=x;object=y?module-path=/nonexistent/libpkcs11.so&pin-value=1234",
        &scratch.join("o.pdf"),
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("PKCS#11 module not found (tried /nonexistent/libpkcs11.so)"),
        "{}",
        out.all()
    );
    let out = sign_with(
        "pkcs11:token=x;object=y?module-name=no-such-module&pin-value=1234",
        &scratch.join("o.pdf"),
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("/usr/lib/pkcs11/libno-such-module.so"),
        "{}",
        out.all()
    );
    assert!(entries(scratch.path()).is_empty());
}

#[test]
fn a_wrong_pin_is_refused_once_with_the_token_flags() {
    let token = TestToken::builder("wrong_pin").key(KeyKind::P256).build();
    let scratch = Scratch::new("wrong_pin");
    let pin = pin_file(scratch.path(), "not-the-pin");
    let output = scratch.join("out.pdf");
    let out = sign_with(&key_uri(&token, "p256", &pin), &output);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("refused the PIN"), "{}", out.all());
    assert!(out.stderr.contains("CKR_PIN_INCORRECT"), "{}", out.all());
    assert!(
        out.stderr.contains("CKF_USER_PIN_COUNT_LOW"),
        "the token's flags: {}",
        out.all()
    );
    assert!(!out.all().contains("not-the-pin"));
    assert!(!output.exists());
    // A batch logs in once, before any file: the wrong PIN fails it as a whole.
    let inputs = scratch.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(sample_pdf(), inputs.join("a.pdf")).unwrap();
    let out = run(pdfsign()
        .arg("batch")
        .arg(&inputs)
        .arg("-o")
        .arg(scratch.join("out"))
        .args(["--key", &key_uri(&token, "p256", &pin)]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        out.stderr.matches("refused the PIN").count(),
        1,
        "{}",
        out.all()
    );
    assert!(entries(&scratch.join("out")).is_empty());
}

#[test]
fn an_unknown_key_lists_the_labels_there_are() {
    let (token, scratch, pin) = setup("unknown_key", &[KeyKind::P256, KeyKind::Rsa2048]);
    let output = scratch.join("out.pdf");
    let out = sign_with(&key_uri(&token, "p999", &pin), &output);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("no private key on token"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr
            .contains("private keys on the token: p256, rsa2048"),
        "{}",
        out.all()
    );
    // No object named and two keys: ambiguous, with the labels.
    let uri = format!(
        "pkcs11:token={}?module-path={}&pin-source=file:{}",
        token.label,
        module_path().display(),
        pin.display()
    );
    let out = sign_with(&uri, &output);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("2 private keys") && out.stderr.contains("add object="),
        "{}",
        out.all()
    );
    // An unknown token lists the tokens present.
    let uri = format!(
        "pkcs11:token=no-such-token;object=p256?module-path={}&pin-source=file:{}",
        module_path().display(),
        pin.display()
    );
    let out = sign_with(&uri, &output);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("no token matches") && out.stderr.contains(&token.label),
        "{}",
        out.all()
    );
    assert!(!output.exists());
}

#[test]
fn unreadable_input_and_unwritable_output() {
    let (token, scratch, pin) = setup("unreadable", &[KeyKind::P256]);
    let uri = key_uri(&token, "p256", &pin);
    // A missing input: exit 2 before the token is asked.
    let out = run(pdfsign()
        .arg("sign")
        .arg(scratch.join("missing.pdf"))
        .arg("-o")
        .arg(scratch.join("o.pdf"))
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("opening") && out.stderr.contains("missing.pdf"),
        "{}",
        out.all()
    );
    // Not a PDF.
    let text = scratch.join("text.pdf");
    std::fs::write(&text, "hello").unwrap();
    let out = run(pdfsign()
        .arg("sign")
        .arg(&text)
        .arg("-o")
        .arg(scratch.join("o.pdf"))
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("not a PDF"), "{}", out.all());
    // An output directory nobody can write into (even root, in /proc).
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg("/proc/self/signed.pdf")
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("temporary output file"),
        "{}",
        out.all()
    );
    let out = run(pdfsign()
        .arg("batch")
        .arg(sample_pdf())
        .arg("-o")
        .arg("/proc/self")
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("cannot write into the output directory"),
        "{}",
        out.all()
    );
    // An output directory under a file.
    let out = run(pdfsign()
        .arg("batch")
        .arg(sample_pdf())
        .arg("-o")
        .arg(text.join("out"))
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("creating the output directory"),
        "{}",
        out.all()
    );
    assert_eq!(entries(scratch.path()), ["pin.txt", "text.pdf"]);
    // An existing output is kept unless --force.
    let existing = scratch.join("existing.pdf");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(&existing)
        .args(["--key", &uri]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--force"), "{}", out.all());
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
}

/// A batch with an encrypted PDF, a broken one and a missing one among good ones: those
/// fail with a reason, the others are signed, exit 1, no output for a failed input, and
/// every input is unchanged.
#[test]
fn a_batch_signs_what_it_can() {
    let (token, scratch, pin) = setup("batch_failures", &[KeyKind::P256]);
    let inputs = scratch.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let fixtures = pdfsign_e2e::root().join("fixtures/pdf");
    std::fs::copy(
        fixtures.join("qpdf-encrypted.pdf"),
        inputs.join("encrypted.pdf"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("broken-truncated.pdf"),
        inputs.join("truncated.pdf"),
    )
    .unwrap();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        std::fs::copy(sample_pdf(), inputs.join(name)).unwrap();
    }
    let before: Vec<(String, Vec<u8>)> = entries(&inputs)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(inputs.join(&n)).unwrap()))
        .collect();
    let output = scratch.join("out");
    let out = run(pdfsign()
        .arg("batch")
        .arg(&inputs)
        .arg(inputs.join("missing.pdf"))
        .arg("-o")
        .arg(&output)
        .args(["-j", "3", "--json", "--key", &key_uri(&token, "p256", &pin)]));
    assert_eq!(out.code, 1, "{}", out.all());
    let json = out.json();
    assert_eq!(json["summary"]["signed"], 3);
    assert_eq!(json["summary"]["failed"], 3);
    let error_of = |name: &str| {
        json["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .and_then(|f| f["error"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        error_of("encrypted.pdf").contains("encrypted"),
        "{}",
        out.all()
    );
    assert!(
        error_of("encrypted.pdf").contains("qpdf --decrypt"),
        "a hint: {}",
        out.all()
    );
    assert!(
        error_of("truncated.pdf").contains("startxref"),
        "{}",
        out.all()
    );
    assert!(
        error_of("missing.pdf").contains("opening the input"),
        "{}",
        out.all()
    );
    assert_eq!(entries(&output), ["a.pdf", "b.pdf", "c.pdf"]);
    for (name, bytes) in before {
        assert_eq!(
            std::fs::read(inputs.join(&name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
    // Without --json the failures are reported on standard error, one line each.
    let again = run(pdfsign()
        .arg("batch")
        .arg(&inputs)
        .arg("-o")
        .arg(scratch.join("out2"))
        .args(["--key", &key_uri(&token, "p256", &pin)]));
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr.matches("FAILED ").count(),
        2,
        "{}",
        again.all()
    );
    assert!(
        again.stderr.contains("signed 3, failed 2"),
        "{}",
        again.all()
    );
}

#[test]
fn no_pin_and_no_terminal_is_a_clear_error() {
    let token = TestToken::builder("no_pin").key(KeyKind::P256).build();
    let scratch = Scratch::new("no_pin");
    let uri = format!(
        "pkcs11:token={};object=p256?module-path={}",
        token.label,
        module_path().display()
    );
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(scratch.join("o.pdf"))
        .args(["--key", &uri])
        .stdin(std::process::Stdio::null()));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("a PIN is needed") && out.stderr.contains("PDFSIGN_PIN"),
        "{}",
        out.all()
    );
    // The environment variable works, and the flag works but warns.
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(scratch.join("o.pdf"))
        .args(["--key", &uri])
        .env("PDFSIGN_PIN", &token.user_pin));
    assert_eq!(out.code, 0, "{}", out.all());
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(scratch.join("o2.pdf"))
        .args(["--key", &uri, "--pin", &token.user_pin]));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("WARN") && out.stderr.contains("visible to other users"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains(&token.user_pin));
}

/// A file whose last step fails (here the rename: with --force, an output name taken by
/// a directory) is reported with the reason and leaves nothing behind, whether a
/// committer thread did that step (-j 1) or the job itself (-j 64: more jobs than twice
/// the CPUs of any machine this runs on); the other files are signed.
#[test]
fn a_failed_commit_leaves_no_output() {
    let (token, scratch, pin) = setup("batch_commit_fails", &[KeyKind::P256]);
    let inputs = scratch.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        std::fs::copy(sample_pdf(), inputs.join(name)).unwrap();
    }
    for jobs in ["1", "64"] {
        let output = scratch.join(&format!("out-{jobs}"));
        std::fs::create_dir_all(output.join("b.pdf")).unwrap();
        std::fs::write(output.join("b.pdf/keep"), b"kept").unwrap();
        let out = run(pdfsign()
            .arg("batch")
            .arg(&inputs)
            .arg("-o")
            .arg(&output)
            .args(["-j", jobs, "--force", "--json"])
            .args(["--key", &key_uri(&token, "p256", &pin)]));
        assert_eq!(out.code, 1, "-j {jobs}: {}", out.all());
        let json = out.json();
        assert_eq!(json["summary"]["signed"], 2, "-j {jobs}: {}", out.all());
        assert_eq!(json["summary"]["failed"], 1, "-j {jobs}: {}", out.all());
        let failed = json["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["signed"] == false)
            .unwrap();
        assert!(
            failed["input"].as_str().unwrap().ends_with("b.pdf"),
            "-j {jobs}: {}",
            out.all()
        );
        assert!(
            failed["error"].as_str().unwrap().contains("renaming"),
            "-j {jobs}: {}",
            out.all()
        );
        // No temporary file is left, and the directory in the way is untouched.
        assert_eq!(entries(&output), ["a.pdf", "b.pdf", "c.pdf"], "-j {jobs}");
        assert_eq!(std::fs::read(output.join("b.pdf/keep")).unwrap(), b"kept");
        for name in ["a.pdf", "c.pdf"] {
            assert!(std::fs::read(output.join(name)).unwrap().len() > 1110);
        }
    }
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        assert_eq!(
            std::fs::read(inputs.join(name)).unwrap(),
            std::fs::read(sample_pdf()).unwrap()
        );
    }
}
