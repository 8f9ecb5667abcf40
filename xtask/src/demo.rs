//! `cargo xtask demo`: a first signature on the developer token, checked.
//!
//! Provisions the SoftHSM2 developer token if needed (as `softhsm-setup` does), builds the
//! `pdfsign` binary, signs `fixtures/sample.pdf` with the token's P-256 key, then runs
//! `pdfsign verify` against the fixture root CA. SoftHSM2 reads `SOFTHSM2_CONF` once per
//! process, so the variable is given to each `pdfsign` child, never set here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::{self, TOKEN_LABEL, softhsm_dir};
use crate::{Result, cargo, root, run_checked, target_dir};

pub(crate) fn run(args: &[String]) -> Result {
    let key = match args {
        [] => "p256".to_owned(),
        [flag, key] if flag == "--key" => key.clone(),
        other => {
            return Err(format!(
                "demo takes only --key LABEL (rsa2048, rsa3072, p256, p384, p521), not {other:?}"
            )
            .into());
        }
    };
    setup::ensure_softhsm()?;
    let module =
        p11_testkit::softhsm_module_path().ok_or("libsofthsm2.so not found; set PKCS11_MODULE")?;
    setup::provision(&module)?;

    eprintln!("\nBuilding pdfsign ...");
    run_checked(cargo().args([
        "build",
        "--quiet",
        "--package",
        "pdfsign",
        "--bin",
        "pdfsign",
    ]))?;
    let pdfsign = target_dir().join("debug").join("pdfsign");

    let demo = target_dir().join("demo");
    std::fs::create_dir_all(&demo)?;
    let pin_file = write_pin_file(&demo)?;
    let input = root().join("fixtures").join("sample.pdf");
    let output = demo.join("sample-signed.pdf");
    let trust = softhsm_dir().join("certs").join("root.pem");
    let uri = format!(
        "pkcs11:token={TOKEN_LABEL};object={key}?module-path={}&pin-source=file:{}",
        module.display(),
        pin_file.display()
    );
    let conf = softhsm_dir().join("softhsm2.conf");

    let mut sign = Command::new(&pdfsign);
    sign.arg("sign")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--force")
        .args(["--key", &uri, "--reason", "cargo xtask demo"])
        .env("SOFTHSM2_CONF", &conf);
    show(&sign);
    run_checked(&mut sign)?;

    let mut verify = Command::new(&pdfsign);
    verify
        .arg("verify")
        .arg(&output)
        .arg("--trust")
        .arg(&trust)
        .env("SOFTHSM2_CONF", &conf);
    show(&verify);
    run_checked(&mut verify)?;
    eprintln!(
        "\nThe signed file is {}; open it in a PDF reader to see the signature panel.",
        relative(&output)
    );
    Ok(())
}

/// The token's user PIN in a file only we can read, for the URI's pin-source.
fn write_pin_file(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("pin.txt");
    std::fs::write(&path, format!("{}\n", p11_testkit::USER_PIN))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(path)
}

/// Prints a command as a user would type it (from the workspace root).
fn show(command: &Command) {
    let mut line = format!(
        "\n$ SOFTHSM2_CONF={} {}",
        relative(&softhsm_dir().join("softhsm2.conf")),
        relative(Path::new(command.get_program()))
    );
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        let arg = relative(Path::new(arg.as_ref()));
        if arg.contains([';', '?', '&', ' ']) {
            line.push_str(&format!(" '{arg}'"));
        } else {
            line.push_str(&format!(" {arg}"));
        }
    }
    eprintln!("{line}");
}

fn relative(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}
