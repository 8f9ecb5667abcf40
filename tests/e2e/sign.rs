//! `pdfsign sign` with every key type, digest, format and option, judged by pdfsig,
//! qpdf, openssl, pyHanko and `pdfsign verify`.

use pdfsign_e2e::{
    KeyKind, Scratch, TestToken, judge, key_uri, pdfsign, pin_file, pki_files, run, sample_pdf,
    setup,
};

/// Signs the sample with `kind`'s key and `extra` flags; checks everything.
fn sign_and_judge(test: &str, kind: KeyKind, extra: &[&str], expect_algorithm: &str) {
    let (token, scratch, pin) = setup(test, &[kind]);
    let pki = pki_files(scratch.path());
    let output = scratch.join("signed.pdf");
    let before = std::fs::read(sample_pdf()).unwrap();

    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(&output)
        .args([
            "--key",
            &key_uri(&token, kind.label(), &pin),
            "--reason",
            "e2e test",
            "--json",
        ])
        .args(extra));
    assert_eq!(out.code, 0, "{}", out.all());
    let report = out.json();
    let field = extra
        .iter()
        .position(|a| *a == "--field")
        .map_or("Signature1", |i| extra[i + 1]);
    assert_eq!(report["field"], field, "{}", out.all());
    assert_eq!(
        std::fs::read(sample_pdf()).unwrap(),
        before,
        "the input changed"
    );
    let signed = std::fs::read(&output).unwrap();
    assert!(
        signed.starts_with(&before),
        "the output does not start with the input"
    );

    judge(&output, &pki, scratch.path(), true);

    let verified = run(pdfsign()
        .arg("verify")
        .arg(&output)
        .arg("--trust")
        .arg(&pki.root)
        .arg("--json"));
    assert_eq!(verified.code, 0, "{}", verified.all());
    let json = verified.json();
    let signature = &json[0]["signatures"][0];
    assert_eq!(signature["valid"], true, "{}", verified.all());
    assert_eq!(signature["integrity"], true);
    assert_eq!(signature["coverage"]["whole_file"], true);
    assert_eq!(
        signature["chain"]["status"],
        "trusted",
        "{}",
        verified.all()
    );
    assert_eq!(
        signature["chain"]["links"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(signature["chain"]["revocation"], "not checked");
    assert_eq!(signature["reason"], "e2e test");
    assert_eq!(
        signature["signature_algorithm"],
        expect_algorithm,
        "{}",
        verified.all()
    );
}

#[test]
fn sign_rsa2048() {
    sign_and_judge(
        "sign_rsa2048",
        KeyKind::Rsa2048,
        &[],
        "RSA PKCS#1 v1.5 with SHA-256",
    );
}

#[test]
fn sign_rsa2048_pss_sha512() {
    sign_and_judge(
        "sign_rsa2048_pss",
        KeyKind::Rsa2048,
        &["--pss", "--digest", "sha512"],
        "RSASSA-PSS with SHA-512",
    );
}

#[test]
fn sign_rsa3072_pkcs7_visible() {
    sign_and_judge(
        "sign_rsa3072",
        KeyKind::Rsa3072,
        &[
            "--format",
            "pkcs7",
            "--visible",
            "50,50,250,110",
            "--location",
            "Lyon",
            "--field",
            "Approval",
        ],
        "RSA PKCS#1 v1.5 with SHA-256",
    );
}

#[test]
fn sign_p256() {
    sign_and_judge("sign_p256", KeyKind::P256, &[], "ECDSA with SHA-256");
}

#[test]
fn sign_p384_sha384_with_time() {
    sign_and_judge(
        "sign_p384",
        KeyKind::P384,
        &[
            "--digest",
            "sha384",
            "--signing-time",
            "2030-01-02T03:04:05Z",
        ],
        "ECDSA with SHA-384",
    );
}

#[test]
fn sign_p521_sha512() {
    sign_and_judge(
        "sign_p521",
        KeyKind::P521,
        &["--digest", "sha512"],
        "ECDSA with SHA-512",
    );
}

/// Signing a signed file adds a second signature; both stay valid, and verify says the
/// first no longer covers the whole file but a later signature covers what came after.
#[test]
fn countersigning_keeps_the_first_signature() {
    let token = TestToken::builder("countersign")
        .key(KeyKind::P256)
        .key(KeyKind::Rsa2048)
        .build();
    let scratch = Scratch::new("countersign");
    let pki = pki_files(scratch.path());
    let pin = pin_file(scratch.path(), &token.user_pin);
    let first = scratch.join("first.pdf");
    let second = scratch.join("second.pdf");
    for (input, output, key) in [
        (sample_pdf(), &first, "p256"),
        (first.clone(), &second, "rsa2048"),
    ] {
        let out = run(pdfsign()
            .arg("sign")
            .arg(&input)
            .arg("-o")
            .arg(output)
            .args(["--key", &key_uri(&token, key, &pin)]));
        assert_eq!(out.code, 0, "{}", out.all());
    }
    judge(&second, &pki, scratch.path(), false);
    let verified = run(pdfsign()
        .arg("verify")
        .arg(&second)
        .arg("--trust")
        .arg(&pki.root)
        .arg("--json"));
    assert_eq!(verified.code, 0, "{}", verified.all());
    let json = verified.json();
    let signatures = json[0]["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2);
    assert_eq!(signatures[0]["field"], "Signature1");
    assert_eq!(signatures[1]["field"], "Signature2");
    assert_eq!(signatures[0]["coverage"]["whole_file"], false);
    assert_eq!(signatures[0]["coverage"]["appended_revisions"], 1);
    assert_eq!(signatures[0]["coverage"]["appended_signed_later"], true);
    assert_eq!(signatures[1]["coverage"]["whole_file"], true);
}

/// A software key (PKCS#8 PEM) signs through the same path.
#[test]
fn software_key_signs() {
    let scratch = Scratch::new("software_key");
    let pki = pki_files(scratch.path());
    let key = pdfsign_e2e::root().join("fixtures/keys/p384.pem");
    let software = p11_testkit::SoftwareKey::fixture(KeyKind::P384);
    let cert = scratch.join("cert.pem");
    std::fs::write(&cert, software.cert_pem()).unwrap();
    let output = scratch.join("signed.pdf");
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(&output)
        .arg("--key-file")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--chain")
        .arg(&pki.intermediate));
    assert_eq!(out.code, 0, "{}", out.all());
    judge(&output, &pki, scratch.path(), false);
}
