//! The façade library in-process, where a count inside the process is needed: through
//! the fault proxy, which counts every PKCS#11 call per slot.

use std::sync::{Arc, OnceLock};

use p11_fault::{Control, Func};
use pdfsign::{Error, Pin, Pkcs11Key, Pkcs11Uri, SignOptions, Signer};
use pdfsign_e2e::{KeyKind, Scratch, TestToken, judge, pki_files, sample_pdf};

/// The proxy over the kit's SoftHSM2 (opened first, so the proxy shares it).
fn proxy() -> &'static Control {
    static CONTROL: OnceLock<Control> = OnceLock::new();
    CONTROL.get_or_init(|| {
        let softhsm = p11_testkit::module();
        let control = Control::attach(p11_fault::build_proxy()).unwrap();
        control
            .apply(&format!("module {}", softhsm.path().display()))
            .unwrap();
        control
    })
}

fn proxy_uri(token: &TestToken, object: &str) -> Pkcs11Uri {
    let mut uri = Pkcs11Uri::new();
    uri.set_token(&token.label)
        .set_object(object)
        .set_module_path(&proxy().path().display().to_string());
    uri
}

fn logins(token: &TestToken) -> u64 {
    proxy()
        .counters(Some(token.slot))
        .unwrap()
        .calls(Func::Login)
}

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

#[test]
fn the_signer_is_shared_between_threads() {
    assert_send_sync_clone::<Signer>();
}

#[test]
fn a_wrong_pin_is_tried_exactly_once() {
    let token = TestToken::builder("lib_wrong_pin")
        .key(KeyKind::P256)
        .build();
    let uri = proxy_uri(&token, "p256");
    let before = logins(&token);
    let error = Pkcs11Key::open(&uri, Some(&Pin::new("wrong-pin")), None).unwrap_err();
    match &error {
        Error::WrongPin { flags, .. } => {
            assert!(flags.contains(&"CKF_USER_PIN_COUNT_LOW"), "{flags:?}")
        }
        other => panic!("expected WrongPin, got {other:?}"),
    }
    assert_eq!(logins(&token) - before, 1, "C_Login calls");
    assert!(error.hint().unwrap().contains("CKF_USER_PIN_COUNT_LOW"));
    assert!(!format!("{error:?}").contains("wrong-pin"));
}

/// Eight threads sign through clones of one signer: one C_Login in all, every output
/// valid.
#[test]
fn eight_threads_one_login() {
    let token = TestToken::builder("lib_threads")
        .key(KeyKind::Rsa2048)
        .build();
    let uri = proxy_uri(&token, "rsa2048");
    let before = logins(&token);
    let signer = Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &SignOptions::default(),
    )
    .unwrap();
    let input = std::fs::read(sample_pdf()).unwrap();
    let outputs: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let signer = signer.clone();
                let input = &input;
                scope.spawn(move || {
                    (0..10)
                        .map(|_| signer.sign_bytes(input).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(outputs.len(), 80);
    assert_eq!(
        logins(&token) - before,
        1,
        "one C_Login for 80 signatures on 8 threads"
    );
    let scratch = Scratch::new("lib_threads");
    let pki = pki_files(scratch.path());
    for (i, output) in outputs.iter().enumerate().step_by(20) {
        assert!(output.starts_with(&input));
        let path = scratch.join(&format!("out{i}.pdf"));
        std::fs::write(&path, output).unwrap();
        judge(&path, &pki, scratch.path(), false);
        let report =
            pdfsign::verify_file(&path, &pdfsign::load_trust_roots(&[&pki.root]).unwrap()).unwrap();
        assert!(report.all_valid(), "{report:?}");
    }
}

/// Two-phase signing: prepare, then sign the digest elsewhere (here the same key through
/// `Signer::container`), then finish.
#[test]
fn two_phase_signing() {
    let token = TestToken::builder("lib_two_phase")
        .key(KeyKind::P384)
        .build();
    let scratch = Scratch::new("lib_two_phase");
    let pki = pki_files(scratch.path());
    let mut uri = proxy_uri(&token, "p384");
    uri.set_module_path(&pdfsign_e2e::module_path().display().to_string());
    let mut options = SignOptions::builder();
    options.digest(pdfsign::Digest::Sha384).reason("two phases");
    let signer = Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &options.build().unwrap(),
    )
    .unwrap();

    let output = scratch.join("two-phase.pdf");
    let prepared = signer.prepare_file(sample_pdf(), &output).unwrap();
    assert_eq!(prepared.digest().len(), 48);
    assert!(!output.exists(), "nothing appears before finish");
    let container = signer
        .container(prepared.digest(), prepared.signing_time())
        .unwrap();
    assert!(container.len() <= prepared.capacity());
    let report = prepared.finish_with_container(&container).unwrap();
    assert_eq!(report.field_name, "Signature1");
    judge(&output, &pki, scratch.path(), true);

    // Dropping a prepared file leaves nothing behind.
    let abandoned = scratch.join("abandoned.pdf");
    drop(signer.prepare_file(sample_pdf(), &abandoned).unwrap());
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("abandoned"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Signed but not committed: no output until the commit, which another thread may do.
    let pending_output = scratch.join("pending.pdf");
    let pending = signer
        .sign_file_pending(sample_pdf(), &pending_output)
        .unwrap();
    assert_eq!(pending.output(), pending_output);
    assert!(
        !pending_output.exists(),
        "nothing appears before the commit"
    );
    let report = std::thread::spawn(move || pending.commit().unwrap())
        .join()
        .unwrap();
    assert_eq!(report.field_name, "Signature1");
    judge(&pending_output, &pki, scratch.path(), false);
}

/// A key restricted by CKA_ALLOWED_MECHANISMS to hash-and-sign mechanisms is signed
/// with those; one that allows nothing usable is refused before anything is signed.
#[test]
fn allowed_mechanisms_choose_the_mechanism() {
    use p11_raw::MechanismType;
    use p11_testkit::KeySpec;
    let token = TestToken::builder("lib_allowed")
        .key_spec(
            KeySpec::imported(KeyKind::Rsa2048)
                .label("combined")
                .allowed_mechanisms(&[MechanismType::SHA256_RSA_PKCS]),
        )
        .key_spec(
            KeySpec::imported(KeyKind::P256)
                .label("none")
                .allowed_mechanisms(&[MechanismType::SHA256]),
        )
        .build();
    let scratch = Scratch::new("lib_allowed");
    let pki = pki_files(scratch.path());
    let mut uri = proxy_uri(&token, "combined");
    uri.set_module_path(&pdfsign_e2e::module_path().display().to_string());
    let signer = Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &SignOptions::default(),
    )
    .unwrap();
    let output = scratch.join("combined.pdf");
    signer.sign_file(sample_pdf(), &output).unwrap();
    judge(&output, &pki, scratch.path(), false);

    uri.set_object("none");
    let key = Pkcs11Key::open(&uri, Some(&Pin::new(&token.user_pin)), None).unwrap();
    let error = Signer::from_key(Arc::new(key), &SignOptions::default(), "restricted").unwrap_err();
    assert!(
        matches!(error, Error::Cms(cms_error) if cms_error.to_string().contains("does not allow")),
        "refused up front"
    );
}

/// `sign_bytes` with a token key starts the token's signature (`C_SignInit`) before it
/// lays out the PDF and finishes it (`C_Sign`) after: one of each per signature. A PDF
/// refused in between costs the waiting session, closed rather than reused, and nothing
/// else: no `C_Sign`, and the next PDF signs.
#[test]
fn sign_bytes_starts_the_signature_first_and_a_refused_pdf_costs_its_session() {
    let token = TestToken::builder("lib_started").key(KeyKind::P256).build();
    let uri = proxy_uri(&token, "p256");
    let signer = Signer::from_uri(
        &uri,
        Some(Pin::new(&token.user_pin)),
        &SignOptions::default(),
    )
    .unwrap();
    let calls = |func| proxy().counters(Some(token.slot)).unwrap().calls(func);
    let input = std::fs::read(sample_pdf()).unwrap();
    let before = [Func::SignInit, Func::Sign, Func::CloseSession].map(calls);
    signer.sign_bytes(&input).unwrap();
    let after = [Func::SignInit, Func::Sign, Func::CloseSession].map(calls);
    assert_eq!(
        [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2]
        ],
        [1, 1, 0]
    );

    let error = signer.sign_bytes(b"%PDF-1.7 and nothing else").unwrap_err();
    assert!(matches!(error, Error::Pdf(_)), "{error:?}");
    let refused = [Func::SignInit, Func::Sign, Func::CloseSession].map(calls);
    assert_eq!(
        [
            refused[0] - after[0],
            refused[1] - after[1],
            refused[2] - after[2]
        ],
        [1, 0, 1],
        "started, never signed, its session closed"
    );

    let signed = signer.sign_bytes(&input).unwrap();
    assert!(signed.starts_with(&input));
    let scratch = Scratch::new("lib_started");
    let pki = pki_files(scratch.path());
    let path = scratch.join("out.pdf");
    std::fs::write(&path, &signed).unwrap();
    judge(&path, &pki, scratch.path(), false);
}
