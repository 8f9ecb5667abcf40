//! House rules as tests: `unsafe` only where it is allowed, each block justified.

use std::path::{Path, PathBuf};

/// The keyword, spelled apart so this file's own patterns are not matches for greps.
const KEYWORD: &str = concat!("un", "safe");

/// The only crates allowed `unsafe`: the FFI layer and the test-only fault module.
const UNSAFE_ALLOWED: &[&str] = &["crates/p11-raw/", "crates/p11-fault/"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_sources() -> Vec<(String, String)> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 10,
        "found only {} Rust files under {}",
        files.len(),
        root.display()
    );
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Lines that use `unsafe` as a keyword (not in comments).
fn unsafe_lines(source: &str) -> Vec<usize> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            ["{", "fn", "impl", "extern"]
                .iter()
                .any(|next| code.contains(&format!("{KEYWORD} {next}")))
                || code.trim_end().ends_with(KEYWORD)
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn no_unsafe_outside_ffi_crates() {
    let offenders: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(path, _)| {
            !UNSAFE_ALLOWED
                .iter()
                .any(|allowed| path.starts_with(allowed))
        })
        .filter(|(path, _)| path != "tests/tidy.rs")
        .flat_map(|(path, source)| {
            unsafe_lines(&source)
                .into_iter()
                .map(move |i| format!("{path}:{}", i + 1))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "unsafe outside p11-raw and p11-fault: {offenders:?}"
    );
}

#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let mut missing = Vec::new();
    let mut blocks = 0;
    for (path, source) in workspace_sources() {
        if !UNSAFE_ALLOWED
            .iter()
            .any(|allowed| path.starts_with(allowed))
        {
            continue;
        }
        let lines: Vec<&str> = source.lines().collect();
        for i in unsafe_lines(&source) {
            // Function declarations marked so carry `# Safety` docs instead; blocks and impls
            // need the comment directly above (through the comment lines).
            let code = lines[i].split("//").next().unwrap_or("");
            if code.contains(&format!("{KEYWORD} fn"))
                || code.contains(&format!("{KEYWORD} extern \"C\" fn"))
            {
                continue;
            }
            blocks += 1;
            // The comment stands above the statement the block is part of, which may
            // start a few lines up (`let x =` on one line, the block on the next).
            let mut start = i;
            while start > 0 {
                let previous = lines[start - 1].trim();
                let continues = !previous.is_empty()
                    && !previous.starts_with("//")
                    && !previous.ends_with([';', '{', '}']);
                if !continues {
                    break;
                }
                start -= 1;
            }
            let justified = lines[start..=i].iter().any(|l| l.contains("SAFETY:"))
                || lines[..start]
                    .iter()
                    .rev()
                    .take_while(|l| l.trim_start().starts_with("//") || l.trim().starts_with("#["))
                    .any(|l| l.trim_start().starts_with("// SAFETY:"));
            if !justified {
                missing.push(format!("{path}:{}", i + 1));
            }
        }
    }
    assert!(
        blocks > 20,
        "expected the FFI crates' unsafe blocks, found {blocks}"
    );
    assert!(
        missing.is_empty(),
        "unsafe without a `// SAFETY:` comment above: {missing:?}"
    );
}

#[test]
fn safe_crates_forbid_unsafe_code() {
    for (path, source) in workspace_sources() {
        let is_root = path.ends_with("src/lib.rs") || path.ends_with("src/main.rs");
        if !is_root
            || UNSAFE_ALLOWED
                .iter()
                .any(|allowed| path.starts_with(allowed))
        {
            continue;
        }
        assert!(
            source.contains("#![forbid(unsafe_code)]"),
            "{path} must start with #![forbid(unsafe_code)]"
        );
    }
}
