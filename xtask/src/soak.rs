//! `cargo xtask soak`: the fault soak and the latency-scaling figure of issue 8.
//!
//! Builds, in release, the soak program (`tests/examples/soak.rs` of `pdfsign-e2e`), the
//! fault proxy and the `pdfsign` binary, then runs the program on a token directory of
//! its own (`target/softhsm-soak/`, wiped first: `SOFTHSM2_CONF` must name it before the
//! program starts). What the soak judges is in `pdfsign_e2e::soak`.

use std::path::PathBuf;

use crate::{Result, cargo, path_with_venv, run_checked, setup, target_dir};

/// Options handed to the soak program as they are.
const PASSED_ON: &[&str] = &[
    "--minutes",
    "--seconds",
    "--threads",
    "--seed",
    "--faults",
    "--rounds",
];

pub(crate) fn run(args: &[String]) -> Result {
    let mut program_args = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            flag if PASSED_ON.contains(&flag) => {
                let value = words
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                program_args.push(flag.to_owned());
                program_args.push(value.clone());
            }
            "--latency" | "--no-latency" => program_args.push(word.clone()),
            other => {
                return Err(format!(
                    "soak: unknown option {other:?}; run `cargo xtask` for the list"
                )
                .into());
            }
        }
    }

    setup::ensure_softhsm()?;
    for build in [
        &["--package", "pdfsign-e2e", "--example", "soak"][..],
        &["--package", "p11-fault", "--lib"],
        &["--package", "pdfsign", "--bin", "pdfsign"],
    ] {
        run_checked(cargo().args(["build", "--release", "--quiet"]).args(build))?;
    }
    let release = target_dir().join("release");
    let program = release.join("examples").join("soak");
    let proxy = release.join(format!(
        "{}p11_fault{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let pdfsign = release.join(format!("pdfsign{}", std::env::consts::EXE_SUFFIX));
    for built in [&program, &proxy, &pdfsign] {
        if !built.is_file() {
            return Err(format!("cargo built no {}", built.display()).into());
        }
    }

    let tokens = target_dir().join("softhsm-soak");
    if tokens.exists() {
        std::fs::remove_dir_all(&tokens)
            .map_err(|e| format!("cannot wipe {}: {e}", tokens.display()))?;
    }
    let conf: PathBuf = tokens.join("softhsm2.conf");
    run_checked(
        std::process::Command::new(&program)
            .args(&program_args)
            .env("SOFTHSM2_CONF", &conf)
            .env("PKCS11_FAULT_MODULE", &proxy)
            .env("PDFSIGN_BIN", &pdfsign)
            .env("PATH", path_with_venv())
            .env_remove("PKCS11_FAULT_CONFIG")
            .env_remove("PKCS11_FAULT_SPEC"),
    )
}
