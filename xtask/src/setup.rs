//! `cargo xtask softhsm-setup`.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process and cargo forces it to the *test*
//! configuration for everything it runs. So the developer token is provisioned in a child
//! process of ours started with `SOFTHSM2_CONF` pointing at `target/softhsm/`: no
//! environment is changed inside a running program.

use std::path::{Path, PathBuf};
use std::process::Command;

use p11_raw::{Attribute, AttributeType, Module, ObjectClass, UserType};
use p11_testkit::{KeyKind, TestToken};

use crate::{Result, run_checked, target_dir};

/// The hidden subcommand the child runs.
pub(crate) const PROVISION_CHILD: &str = "__provision-developer-token";

/// The developer token's label.
pub(crate) const TOKEN_LABEL: &str = "pdfsign-demo";

/// Where the developer token lives.
pub(crate) fn softhsm_dir() -> PathBuf {
    target_dir().join("softhsm")
}

pub(crate) fn run(args: &[String]) -> Result {
    let module = module_from_args(args)?;
    ensure_softhsm()?;
    let module = match module {
        Some(path) => path,
        None => p11_testkit::softhsm_module_path()
            .ok_or("libsofthsm2.so not found; pass --module PATH or set PKCS11_MODULE")?,
    };
    provision(&module)
}

fn module_from_args(args: &[String]) -> Result<Option<PathBuf>> {
    match args {
        [] => Ok(None),
        [flag, path] if flag == "--module" => Ok(Some(PathBuf::from(path))),
        [flag] if flag.starts_with("--module=") => {
            Ok(Some(PathBuf::from(&flag["--module=".len()..])))
        }
        other => Err(format!("softhsm-setup takes only --module PATH, not {other:?}").into()),
    }
}

/// Provisions (or finds) the developer token in a child process with the developer
/// SoftHSM2 configuration.
pub(crate) fn provision(module: &Path) -> Result {
    let conf = softhsm_dir().join("softhsm2.conf");
    let exe = std::env::current_exe()?;
    run_checked(
        Command::new(exe)
            .arg(PROVISION_CHILD)
            .arg(module)
            .env("SOFTHSM2_CONF", &conf)
            .env("PKCS11_MODULE", module),
    )
}

/// Makes sure SoftHSM2 is installed: installs Debian's package as root, otherwise says
/// the exact command.
pub(crate) fn ensure_softhsm() -> Result {
    if std::env::var_os("PKCS11_MODULE").is_some() || p11_testkit::softhsm_module_path().is_some() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err("SoftHSM2 is not installed. Install it with:\n    \
                    sudo apt-get update && sudo apt-get install -y softhsm2\n\
                    or set PKCS11_MODULE to a libsofthsm2.so"
            .into());
    }
    eprintln!("SoftHSM2 is missing: installing Debian's softhsm2 package");
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "softhsm2"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    p11_testkit::softhsm_module_path()
        .map(|_| ())
        .ok_or_else(|| "softhsm2 installed, yet libsofthsm2.so is not where expected".into())
}

/// The child: runs with the developer `SOFTHSM2_CONF`.
pub(crate) fn provision_child(args: &[String]) -> Result {
    let [module_path] = args else {
        return Err("internal: the provisioning child takes the module path".into());
    };
    p11_testkit::write_softhsm_config()?;
    let module = Module::open(module_path)?;
    let existing = module.slots(true)?.into_iter().find(|&slot| {
        module
            .token_info(slot)
            .is_ok_and(|t| t.label == TOKEN_LABEL)
    });
    let (slot, created) = match existing {
        Some(slot) => (slot, false),
        None => {
            let token = TestToken::builder(TOKEN_LABEL)
                .exact_label()
                .key(KeyKind::Rsa2048)
                .key(KeyKind::Rsa3072)
                .key(KeyKind::P256)
                .key(KeyKind::P384)
                .key(KeyKind::P521)
                .try_build_in(&module)?;
            (token.slot, true)
        }
    };
    let certs = softhsm_dir().join("certs");
    let pem = p11_testkit::Pki::fixture().write_pem_files(&certs)?;

    let conf = std::env::var("SOFTHSM2_CONF")?;
    println!(
        "{} SoftHSM2 token {TOKEN_LABEL:?} ({})",
        if created { "Created" } else { "Found" },
        module.path().display()
    );
    println!();
    println!("    export SOFTHSM2_CONF={conf}");
    println!();
    println!("  token label : {TOKEN_LABEL}");
    println!("  serial      : {}", module.token_info(slot)?.serial_number);
    println!("  user PIN    : {}", p11_testkit::USER_PIN);
    println!("  SO PIN      : {}", p11_testkit::SO_PIN);
    println!("  module      : {}", module.path().display());
    println!("  trust root  : {}", pem.root.display());
    println!("  chain       : {}", pem.chain.display());
    println!();
    println!("Private keys on the token (label, CKA_ID, certificate subject):");
    let session = module.open_session(slot, false)?;
    session.login(UserType::User, Some(p11_testkit::USER_PIN.as_bytes()))?;
    for key in session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
        let values = session.attributes(key, &[AttributeType::Label, AttributeType::Id])?;
        let (label, id) = match (values[0].clone().present(), values[1].clone().present()) {
            (Some(Attribute::Label(l)), Some(Attribute::Id(i))) => (l, i),
            _ => continue,
        };
        let subject = session
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(id.clone()),
            ])?
            .first()
            .map(|&cert| session.attributes(cert, &[AttributeType::Value]))
            .transpose()?
            .and_then(|v| v.into_iter().next()?.present())
            .and_then(|a| match a {
                Attribute::Value(der) => subject_of(&der),
                _ => None,
            })
            .unwrap_or_else(|| "(no certificate)".to_owned());
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "  pkcs11:token={TOKEN_LABEL};object={:<8} id={id}  {subject}",
            String::from_utf8_lossy(&label)
        );
    }
    session.logout()?;
    Ok(())
}

/// The subject of a DER certificate, RFC 4514 style.
fn subject_of(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate().subject().to_string())
}
