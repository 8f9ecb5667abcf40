//! `pdfsign verify`: tampering, appended content, trust, and agreement with pdfsig on
//! every fixture.

use std::path::{Path, PathBuf};

use pdf_validators::{Tool, pdfsig};
use pdfsign_e2e::{
    KeyKind, Scratch, TestToken, key_uri, pdfsign, pin_file, pki_files, run, sample_pdf,
};

/// A signed sample in `scratch`, by a P-256 key on a fresh token.
fn signed_sample(test: &str, scratch: &Scratch) -> PathBuf {
    let token = TestToken::builder(test).key(KeyKind::P256).build();
    let pin = pin_file(scratch.path(), &token.user_pin);
    let output = scratch.join("signed.pdf");
    let out = run(pdfsign()
        .arg("sign")
        .arg(sample_pdf())
        .arg("-o")
        .arg(&output)
        .args(["--key", &key_uri(&token, "p256", &pin)]));
    assert_eq!(out.code, 0, "{}", out.all());
    output
}

fn verify_json(file: &Path, root: &Path) -> (i32, serde_json::Value, String) {
    let out = run(pdfsign()
        .arg("verify")
        .arg(file)
        .arg("--trust")
        .arg(root)
        .arg("--json"));
    let all = out.all();
    (out.code, out.json(), all)
}

#[test]
fn a_tampered_file_is_rejected() {
    let scratch = Scratch::new("verify_tampered");
    let pki = pki_files(scratch.path());
    let signed = std::fs::read(signed_sample("verify_tampered", &scratch)).unwrap();
    // Change one byte of the page's text, inside the first signed range.
    let at = signed.windows(6).position(|w| w == b"sample").unwrap();
    let mut tampered = signed;
    tampered[at] = b'S';
    let file = scratch.join("tampered.pdf");
    std::fs::write(&file, &tampered).unwrap();

    let (code, json, all) = verify_json(&file, &pki.root);
    assert_eq!(code, 1, "{all}");
    let signature = &json[0]["signatures"][0];
    assert_eq!(signature["valid"], false);
    assert_eq!(signature["integrity"], false);
    assert!(
        signature["integrity_problem"]
            .as_str()
            .unwrap()
            .contains("changed"),
        "{all}"
    );
    let human = run(pdfsign().arg("verify").arg(&file));
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains("INVALID") && human.stdout.contains("BROKEN"),
        "{}",
        human.all()
    );
    if Tool::Pdfsig.available() {
        assert!(
            !pdfsig(&file).unwrap()[0].valid,
            "pdfsig agrees it is broken"
        );
    }
}

#[test]
fn a_changed_signature_value_is_rejected() {
    let scratch = Scratch::new("verify_bad_value");
    let pki = pki_files(scratch.path());
    let path = signed_sample("verify_bad_value", &scratch);
    let mut bytes = std::fs::read(&path).unwrap();
    let signature = &pdf_validators::raw_signatures(&bytes)[0];
    // The last bytes of the DER are the ECDSA signature's: flip a hex digit there.
    let [_, gap_start, _, _] = signature.byte_range;
    let at = gap_start + 1 + 2 * signature.der.len() - 3;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, &bytes).unwrap();
    let (code, json, all) = verify_json(&path, &pki.root);
    assert_eq!(code, 1, "{all}");
    assert_eq!(json[0]["signatures"][0]["integrity"], false, "{all}");
}

#[test]
fn appended_content_is_reported() {
    let scratch = Scratch::new("verify_appended");
    let pki = pki_files(scratch.path());
    let path = signed_sample("verify_appended", &scratch);
    let mut bytes = std::fs::read(&path).unwrap();
    let signed_len = bytes.len();
    bytes.extend_from_slice(b"% a comment appended after the signature\n%%EOF\n");
    std::fs::write(&path, &bytes).unwrap();

    let (code, json, all) = verify_json(&path, &pki.root);
    let signature = &json[0]["signatures"][0];
    assert_eq!(signature["integrity"], true, "{all}");
    assert_eq!(signature["coverage"]["whole_file"], false);
    assert_eq!(
        signature["coverage"]["appended_bytes"],
        bytes.len() - signed_len
    );
    assert_eq!(signature["coverage"]["appended_revisions"], 1);
    assert_eq!(signature["coverage"]["appended_signed_later"], false);
    // Appending does not break the signature itself; it is shown, not hidden.
    assert_eq!(code, 0, "{all}");
    let human = run(pdfsign().arg("verify").arg(&path));
    assert!(
        human.stdout.contains("appended after it") && human.stdout.contains("NOT covered"),
        "{}",
        human.all()
    );
    if Tool::Pdfsig.available() {
        let seen = pdfsig(&path).unwrap();
        assert!(
            seen[0].valid && !seen[0].total_document,
            "pdfsig agrees: {seen:?}"
        );
    }
}

#[test]
fn an_untrusted_root_makes_it_invalid() {
    let scratch = Scratch::new("verify_untrusted");
    let path = signed_sample("verify_untrusted", &scratch);
    // pdf-sig's fixture signer is a self-signed certificate unrelated to our chain.
    let other_root = pdfsign_e2e::root().join("fixtures/pdf/pyhanko-signer.pem");
    let (code, json, all) = verify_json(&path, &other_root);
    assert_eq!(code, 1, "{all}");
    let signature = &json[0]["signatures"][0];
    assert_eq!(signature["integrity"], true);
    assert_eq!(
        signature["chain"]["status"]["untrusted"]["reason"]
            .as_str()
            .map(|r| r.contains("no certificate of issuer")),
        Some(true),
        "{all}"
    );
    // Without --trust the chain is shown but not judged.
    let out = run(pdfsign().arg("verify").arg(&path));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("not checked"), "{}", out.all());
}

#[test]
fn a_file_without_signatures_fails() {
    let out = run(pdfsign().arg("verify").arg(sample_pdf()));
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("0 signatures"), "{}", out.all());
}

/// For every PDF fixture (and a file we signed), `pdfsign verify` finds the signatures
/// pdfsig finds and agrees on each one's integrity.
#[test]
fn verify_agrees_with_pdfsig_on_every_fixture() {
    if !Tool::Pdfsig.available() {
        return;
    }
    let scratch = Scratch::new("verify_agrees");
    let mut files: Vec<PathBuf> = std::fs::read_dir(pdfsign_e2e::root().join("fixtures/pdf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    files.push(signed_sample("verify_agrees", &scratch));
    let mut compared = 0;
    for file in &files {
        let theirs = pdfsig(file);
        let out = run(pdfsign().arg("verify").arg(file).arg("--json"));
        let json = out.json();
        let ours: Vec<bool> = json[0]["signatures"]
            .as_array()
            .map(|s| s.iter().map(|s| s["integrity"] == true).collect())
            .unwrap_or_default();
        match theirs {
            Ok(theirs) => {
                let theirs: Vec<bool> = theirs.iter().map(|s| s.valid).collect();
                assert_eq!(
                    ours,
                    theirs,
                    "{}: pdfsign and pdfsig disagree\n{}",
                    file.display(),
                    out.all()
                );
                compared += theirs.len();
            }
            // pdfsig cannot read it: neither finds a valid signature.
            Err(_) => assert!(ours.iter().all(|valid| !valid), "{}", out.all()),
        }
    }
    assert!(compared >= 5, "only {compared} signatures compared");
}
