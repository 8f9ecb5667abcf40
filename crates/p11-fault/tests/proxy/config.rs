//! The spec from the environment, read when the proxy is first used. Environment
//! variables cannot be set safely in a running test, so each test runs itself again
//! as a child process with the variables set, and the child does the checking.

use std::path::{Path, PathBuf};
use std::process::Command;

use p11_fault::{BuildError, CONFIG_ENV, Control, Func, MODULE_ENV, SPEC_ENV};
use p11_raw::{Module, Rv};
use p11_testkit::TestToken;

/// Set in the child: which check to run.
const CHILD: &str = "P11_FAULT_TEST_CHILD";

/// Runs `test` again in a child process, in `mode`, with the spec variables set and
/// `PKCS11_FAULT_MODULE` naming `module` (the proxy this process built, unless a test
/// wants a wrong one).
fn run_child(test: &str, mode: &str, config: &str, spec: &str, module: &Path) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("p11-fault");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{mode}-{}.conf", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD, mode)
        .env(CONFIG_ENV, &file)
        .env(SPEC_ENV, spec)
        .env(MODULE_ENV, module)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child {mode} failed:\n{stdout}\n{stderr}"
    );
    // The child really ran the test (a filter typo would run nothing and pass).
    assert!(stdout.contains("1 passed"), "{stdout}");
}

fn softhsm() -> String {
    p11_testkit::softhsm_module_path()
        .expect("SoftHSM2 is installed")
        .display()
        .to_string()
}

#[test]
fn a_spec_from_the_environment_applies_from_the_first_call() {
    match std::env::var(CHILD).as_deref() {
        Ok("good") => {
            // SoftHSM2 first (the kit owns it), then the proxy, configured only by
            // the environment: no Control::apply.
            let token = TestToken::builder("env_spec_child").build();
            // PKCS11_FAULT_MODULE is honoured: no cargo call in the child.
            let path = p11_fault::build_proxy();
            assert_eq!(
                Some(path.clone().into_os_string()),
                std::env::var_os(MODULE_ENV)
            );
            let module = Module::open(&path).unwrap();
            let answers: Vec<Option<Rv>> = (0..4)
                .map(|_| module.token_info(token.slot).err().and_then(|e| e.rv()))
                .collect();
            assert_eq!(
                answers,
                [None, Some(Rv::DeviceError), None, Some(Rv::DeviceError)]
            );
            let counters = Control::attach(&path).unwrap().counters(None).unwrap();
            assert_eq!(counters.faults(Rv::DeviceError), 2);
            assert_eq!(counters.calls(Func::Initialize), 1);
        }
        Ok(other) => panic!("unexpected child mode {other}"),
        Err(_) => run_child(
            "config::a_spec_from_the_environment_applies_from_the_first_call",
            "good",
            &format!("# from {CONFIG_ENV}\nseed 3\nmodule {}\n", softhsm()),
            "fault C_GetTokenInfo CKR_DEVICE_ERROR every=2",
            &p11_fault::build_proxy(),
        ),
    }
}

#[test]
fn a_bad_spec_from_the_environment_fails_initialize() {
    match std::env::var(CHILD).as_deref() {
        Ok("bad") => {
            let _token = TestToken::builder("env_bad_spec_child").build();
            let err = Module::open(p11_fault::build_proxy()).unwrap_err();
            assert_eq!(err.rv(), Some(Rv::GeneralError), "{err}");
        }
        Ok(other) => panic!("unexpected child mode {other}"),
        Err(_) => run_child(
            "config::a_bad_spec_from_the_environment_fails_initialize",
            "bad",
            &format!("module {}\n", softhsm()),
            "fault C_Sign CKR_DEVICE_ERROR sometimes",
            &p11_fault::build_proxy(),
        ),
    }
}

#[test]
fn a_missing_proxy_is_an_error_not_a_skip() {
    match std::env::var(CHILD).as_deref() {
        Ok("missing") => {
            let wanted = PathBuf::from(std::env::var_os(MODULE_ENV).unwrap());
            assert_eq!(
                p11_fault::try_build_proxy(),
                Err(BuildError::Missing { path: wanted })
            );
            let panicked = std::panic::catch_unwind(p11_fault::build_proxy);
            assert!(panicked.is_err());
        }
        Ok(other) => panic!("unexpected child mode {other}"),
        Err(_) => run_child(
            "config::a_missing_proxy_is_an_error_not_a_skip",
            "missing",
            "",
            "",
            Path::new("/nonexistent/libp11_fault.so"),
        ),
    }
}

#[test]
fn the_proxy_refuses_to_proxy_itself() {
    // In this process the proxy is already initialised with SoftHSM2; naming another
    // module now is refused rather than silently ignored.
    let proxy = crate::support::proxy();
    let err = proxy
        .control
        .apply(&format!("module {}", proxy.path.display()))
        .unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
}
