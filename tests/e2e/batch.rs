//! `pdfsign batch`: 200 files with `-j 8` for P-256 and RSA-2048 (fewer for the slower
//! key types), every output judged by pdfsig, qpdf and openssl, a few by pyHanko, all by
//! `pdfsign verify`.

use std::path::{Path, PathBuf};

use pdf_validators::Tool;
use pdfsign_e2e::{KeyKind, PkiFiles, judge, key_uri, pdfsign, pki_files, run, sample_pdf, setup};

/// `count` copies of the sample (a few other fixtures mixed in) in `dir/in`.
fn inputs(dir: &Path, count: usize) -> PathBuf {
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    let fixtures = pdfsign_e2e::root().join("fixtures/pdf");
    // Other producers' structures: an xref table without /ID, object streams, an
    // indirect AcroForm with an empty signature field.
    let others = [
        "lopdf-table.pdf",
        "qpdf-objstm.pdf",
        "handmade-indirect.pdf",
        "qpdf-linearized.pdf",
    ];
    for i in 0..count {
        let source = match others.get(i % 50) {
            Some(other) if fixtures.join(other).is_file() => fixtures.join(other),
            _ => sample_pdf(),
        };
        std::fs::copy(source, inputs.join(format!("doc{i:03}.pdf"))).unwrap();
    }
    inputs
}

/// Signs `count` files with `-j jobs`. On this 2-CPU machine, -j 1 to 3 hand each file's
/// fsync and rename to a committer thread; -j 8 commits in the signing jobs.
fn batch(test: &str, kind: KeyKind, count: usize, jobs: usize, pyhanko_samples: usize) {
    let (token, scratch, pin) = setup(test, &[kind]);
    let pki = pki_files(scratch.path());
    let input_dir = inputs(scratch.path(), count);
    let output_dir = scratch.join("out");

    let out = run(pdfsign()
        .arg("batch")
        .arg(&input_dir)
        .arg("-o")
        .arg(&output_dir)
        .args([
            "-j",
            &jobs.to_string(),
            "--json",
            "--key",
            &key_uri(&token, kind.label(), &pin),
        ]));
    assert_eq!(out.code, 0, "{}", out.all());
    let json = out.json();
    assert_eq!(json["summary"]["signed"], count, "{}", out.all());
    assert_eq!(json["summary"]["failed"], 0);
    assert_eq!(json["summary"]["jobs"], jobs);
    assert!(json["summary"]["signatures_per_second"].as_f64().unwrap() > 0.0);

    let outputs: Vec<PathBuf> = (0..count)
        .map(|i| output_dir.join(format!("doc{i:03}.pdf")))
        .collect();
    judge_all(&outputs, &pki, scratch.path());
    for output in outputs
        .iter()
        .step_by(count.div_ceil(pyhanko_samples.max(1)))
        .take(pyhanko_samples)
    {
        if Tool::Pyhanko.available() {
            pdf_validators::pyhanko_validate(output, &pki.root, &pki.intermediate, true).unwrap();
        }
    }
    let verified = run(pdfsign()
        .arg("verify")
        .args(&outputs)
        .arg("--trust")
        .arg(&pki.root));
    assert_eq!(verified.code, 0, "{}", verified.all());
    assert_eq!(
        verified.stdout.matches(": VALID").count(),
        count,
        "{}",
        verified.all()
    );
}

/// Judges outputs on two threads (the machine has two cores).
fn judge_all(outputs: &[PathBuf], pki: &PkiFiles, scratch: &Path) {
    std::thread::scope(|scope| {
        for half in outputs.chunks(outputs.len().div_ceil(2)) {
            scope.spawn(move || {
                for output in half {
                    judge(output, pki, scratch, false);
                }
            });
        }
    });
}

#[test]
fn batch_p256_200_files() {
    batch("batch_p256", KeyKind::P256, 200, 8, 2);
}

#[test]
fn batch_rsa2048_200_files() {
    batch("batch_rsa2048", KeyKind::Rsa2048, 200, 8, 2);
}

#[test]
fn batch_rsa3072_few_files() {
    batch("batch_rsa3072", KeyKind::Rsa3072, 16, 1, 1);
}

#[test]
fn batch_p384_few_files() {
    batch("batch_p384", KeyKind::P384, 16, 2, 1);
}

#[test]
fn batch_p521_few_files() {
    batch("batch_p521", KeyKind::P521, 16, 1, 1);
}

/// A glob and a list of files work as inputs too, and plain lines report progress off a
/// terminal.
#[test]
fn batch_from_a_glob_and_files() {
    let (token, scratch, pin) = setup("batch_glob", &[KeyKind::P256]);
    let input_dir = inputs(scratch.path(), 6);
    let pattern = format!("{}/doc00[0-2].pdf", input_dir.display());
    let out = run(pdfsign()
        .arg("batch")
        .arg(&pattern)
        .arg(input_dir.join("doc005.pdf"))
        .arg("-o")
        .arg(scratch.join("out"))
        .args(["-j", "2", "--key", &key_uri(&token, "p256", &pin)]));
    assert_eq!(out.code, 0, "{}", out.all());
    let lines = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("signed ") && l.contains(" -> "))
        .count();
    assert_eq!(lines, 4, "{}", out.all());
    assert!(out.stderr.contains("signed 4, failed 0"), "{}", out.all());
    let mut written: Vec<String> = std::fs::read_dir(scratch.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["doc000.pdf", "doc001.pdf", "doc002.pdf", "doc005.pdf"]
    );
}
