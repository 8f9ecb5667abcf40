//! `pdfsign list`: public objects without a PIN, private keys with their certificates'
//! subjects with one.

use pdfsign_e2e::{KeyKind, module_path, pdfsign, run, setup};

#[test]
fn list_without_and_with_a_pin() {
    let (token, _scratch, pin) = setup("list", &[KeyKind::P256, KeyKind::Rsa2048]);
    let uri = format!(
        "pkcs11:token={}?module-path={}",
        token.label,
        module_path().display()
    );

    let out = run(pdfsign().args(["list", "--key", &uri, "--json"]));
    assert_eq!(out.code, 0, "{}", out.all());
    let json = out.json();
    let slots = json["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "the URI selects one token: {}", out.all());
    let listed = &slots[0]["token"];
    assert_eq!(listed["label"], token.label.as_str());
    assert_eq!(listed["logged_in"], false);
    let objects = listed["objects"].as_array().unwrap();
    assert!(
        objects.iter().all(|o| o["type"] != "private"),
        "{}",
        out.all()
    );
    let p256_cert = objects
        .iter()
        .find(|o| o["type"] == "cert" && o["label"] == "p256")
        .unwrap();
    assert!(
        p256_cert["subject"].as_str().unwrap().contains("CN="),
        "{}",
        out.all()
    );

    let out = run(pdfsign()
        .args(["list", "--key", &uri, "--json", "--pin-source"])
        .arg(&pin));
    assert_eq!(out.code, 0, "{}", out.all());
    let json = out.json();
    let listed = &json["slots"][0]["token"];
    assert_eq!(listed["logged_in"], true);
    let private: Vec<&serde_json::Value> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "private")
        .collect();
    assert_eq!(private.len(), 2, "{}", out.all());
    let p256 = private.iter().find(|o| o["label"] == "p256").unwrap();
    assert_eq!(p256["key"], "EC P-256");
    assert_eq!(p256["subject"], p256_cert["subject"]);
    let rsa = private.iter().find(|o| o["label"] == "rsa2048").unwrap();
    assert_eq!(rsa["key"], "RSA-2048");
    // The URI it shows names that key.
    assert!(
        p256["uri"].as_str().unwrap().contains(";object=p256;"),
        "{}",
        out.all()
    );

    // Human output, the whole module.
    let out = run(pdfsign().arg("list").arg("--module").arg(module_path()));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!("token {:?}", token.label)),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains("not logged in"), "{}", out.all());

    // Selecting one object by type and label.
    let one = format!(
        "pkcs11:token={};object=p256;type=cert?module-path={}",
        token.label,
        module_path().display()
    );
    let out = run(pdfsign().args(["list", "--key", &one, "--json"]));
    let json = out.json();
    let objects = json["slots"][0]["token"]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{}", out.all());
    assert_eq!(objects[0]["type"], "cert");

    // A wrong PIN: exit 2 with the flags, never a listing.
    let out = run(pdfsign().args(["list", "--key", &uri, "--pin", "wrong-pin"]));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("refused the PIN"), "{}", out.all());
    assert!(out.stdout.is_empty());
}
