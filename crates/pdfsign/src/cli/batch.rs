//! `pdfsign batch`: many files, N worker threads sharing one signer.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pdfsign::{Error, PendingFile, Signer};
use serde::Serialize;

use super::args::{BatchArgs, ProgressArg};
use super::key::open_signer;
use super::report::{one_line, print_json};
use super::{PARTIAL, SUCCESS};

/// One file's outcome.
#[derive(Debug, Serialize)]
struct FileResult {
    input: String,
    output: String,
    signed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    signed: usize,
    failed: usize,
    jobs: usize,
    seconds: f64,
    signatures_per_second: f64,
    startup_seconds: f64,
}

#[derive(Serialize)]
struct Output<'a> {
    files: &'a [FileResult],
    summary: &'a Summary,
}

pub(crate) fn run(args: &BatchArgs, json: bool) -> Result<u8, Error> {
    let inputs = expand_inputs(&args.inputs)?;
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    let outputs = output_paths(&inputs, &args.output_dir)?;
    prepare_output_dir(&args.output_dir)?;

    let started = Instant::now();
    let signer = open_signer(&args.key, &args.signature)?;
    let startup = started.elapsed();
    tracing::info!(
        files = inputs.len(),
        jobs,
        key = signer.description(),
        "signing"
    );

    let display = Display::new(args.progress, json, inputs.len() as u64);
    let begun = Instant::now();
    let results = sign_all(&signer, &inputs, &outputs, jobs, args.force, &display);
    let elapsed = begun.elapsed();
    display.finish();

    let signed = results.iter().filter(|r| r.signed).count();
    let failed = results.len() - signed;
    let summary = Summary {
        signed,
        failed,
        jobs,
        seconds: elapsed.as_secs_f64(),
        signatures_per_second: rate(signed, elapsed),
        startup_seconds: startup.as_secs_f64(),
    };
    if json {
        print_json(&Output {
            files: &results,
            summary: &summary,
        })?;
    } else {
        eprintln!(
            "signed {signed}, failed {failed}, in {:.2} s ({:.1} signatures/s, {jobs} job{}; start-up {:.2} s)",
            summary.seconds,
            summary.signatures_per_second,
            if jobs == 1 { "" } else { "s" },
            summary.startup_seconds
        );
    }
    Ok(if failed == 0 { SUCCESS } else { PARTIAL })
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Files, directories (their `*.pdf`, sorted) and glob patterns, in the order given.
fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| Error::Io {
                during: "listing",
                path: path.to_path_buf(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else if !path.exists() && input.contains(['*', '?', '[']) {
            let pattern = glob::glob(input).map_err(|e| Error::Io {
                during: "reading the glob pattern",
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.msg),
            })?;
            let mut found: Vec<PathBuf> = pattern
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                tracing::warn!(pattern = %input, "the pattern matches no file");
            }
            files.extend(found);
        } else {
            // Not there, or unreadable: reported as that file's failure.
            files.push(path.to_path_buf());
        }
    }
    Ok(files)
}

/// The output of each input: its file name in the output directory. Two inputs with one
/// name would write one output: refused before anything is signed.
fn output_paths(inputs: &[PathBuf], dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut seen: HashMap<&std::ffi::OsStr, &Path> = HashMap::new();
    let mut outputs = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.file_name().ok_or_else(|| Error::Io {
            during: "finding the file name of",
            path: input.clone(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        if let Some(first) = seen.insert(name, input) {
            return Err(Error::Io {
                during: "two inputs would write the same output",
                path: dir.join(name),
                source: std::io::Error::other(format!(
                    "{} and {} have the same file name",
                    first.display(),
                    input.display()
                )),
            });
        }
        outputs.push(dir.join(name));
    }
    Ok(outputs)
}

/// Creates the output directory and checks that files can be made in it, before the
/// token is asked for anything.
fn prepare_output_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        during: "creating the output directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let probe = dir.join(format!(".pdfsign-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|source| Error::Io {
            during: "cannot write into the output directory",
            path: dir.to_path_buf(),
            source,
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Signs every input on `jobs` threads that share `signer`; results in input order.
///
/// A job alone on its CPU would leave it (and the token) idle while it waits for the
/// disk, so with fewer jobs than twice the CPUs each signing thread has a committer
/// thread beside it: it hands over a file complete but for its fsync and rename
/// ([`Signer::sign_file_pending`]) and goes on to the next input. The hand-over holds one
/// file, so at most two files per job are in flight and memory stays flat. With more
/// jobs, the others fill that wait and a hand-over would only cost a thread switch, so
/// each job commits its own files. Measured on 2 CPUs and SoftHSM2, committers make
/// -j 1 about 1.5 (RSA-2048) to 2 (P-256) times as fast, -j 2 and 3 7–14% faster, change
/// nothing at -j 4 and cost about 8% at -j 8.
///
/// A file counts as signed only once it is committed; a failed commit leaves no output.
fn sign_all(
    signer: &Signer,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    jobs: usize,
    force: bool,
    display: &Display,
) -> Vec<FileResult> {
    let next = AtomicUsize::new(0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let background = jobs < 2 * cpus;
    let done: Vec<Outcome> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..jobs.min(inputs.len()).max(1))
            .map(|_| {
                let (handover, committer) = if background {
                    let (handover, pending) = mpsc::sync_channel::<(usize, PendingFile)>(1);
                    let committer = scope.spawn(move || {
                        let mut done = Vec::new();
                        for (index, file) in pending {
                            let result = commit(file, &inputs[index]);
                            display.file_done(&inputs[index], &outputs[index], &result);
                            done.push((index, result));
                        }
                        done
                    });
                    (Some(handover), Some(committer))
                } else {
                    (None, None)
                };
                let next = &next;
                let signing = scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let (Some(input), Some(output)) = (inputs.get(index), outputs.get(index))
                        else {
                            break;
                        };
                        let result = match (sign_one(signer, input, output, force), &handover) {
                            (Ok(file), Some(handover)) => {
                                if handover.send((index, file)).is_err() {
                                    // The committer is gone (it panicked): the file is
                                    // dropped, its temporary file removed, and it is
                                    // reported as not signed.
                                    break;
                                }
                                continue;
                            }
                            (Ok(file), None) => commit(file, input),
                            (Err(error), _) => Err(error),
                        };
                        display.file_done(input, output, &result);
                        done.push((index, result));
                    }
                    done
                });
                (signing, committer)
            })
            .collect();
        let mut done = Vec::new();
        for (signing, committer) in threads {
            done.extend(signing.join().unwrap_or_default());
            if let Some(committer) = committer {
                done.extend(committer.join().unwrap_or_default());
            }
        }
        done
    });
    let mut results: Vec<Option<Result<(), Error>>> = (0..inputs.len()).map(|_| None).collect();
    for (index, result) in done {
        if let Some(slot) = results.get_mut(index) {
            *slot = Some(result);
        }
    }
    inputs
        .iter()
        .zip(outputs)
        .zip(results)
        .map(|((input, output), result)| {
            let error = match result {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(one_line(&e)),
                None => Some("not signed: a worker thread stopped".to_owned()),
            };
            FileResult {
                input: input.display().to_string(),
                output: output.display().to_string(),
                signed: error.is_none(),
                error,
            }
        })
        .collect()
}

/// What became of one input, by its index.
type Outcome = (usize, Result<(), Error>);

/// Makes a signed file durable and puts it in place; its warnings are logged.
fn commit(file: PendingFile, input: &Path) -> Result<(), Error> {
    let report = file.commit()?;
    for warning in &report.warnings {
        tracing::warn!(file = %input.display(), "{warning}");
    }
    Ok(())
}

/// Signs one input up to its commit.
fn sign_one(
    signer: &Signer,
    input: &Path,
    output: &Path,
    force: bool,
) -> Result<PendingFile, Error> {
    super::sign::refuse_existing(output, force)?;
    signer.sign_file_pending(input, output)
}

/// Progress: a bar on a terminal, a line per file otherwise.
enum Display {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

impl Display {
    fn new(choice: ProgressArg, json: bool, total: u64) -> Display {
        let terminal = std::io::stderr().is_terminal();
        match choice {
            ProgressArg::None => Display::Quiet,
            ProgressArg::Lines => Display::Lines,
            ProgressArg::Bar => Display::bar(total),
            ProgressArg::Auto if terminal => Display::bar(total),
            ProgressArg::Auto if json => Display::Quiet,
            ProgressArg::Auto => Display::Lines,
        }
    }

    fn bar(total: u64) -> Display {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} signed ({per_sec}, ETA {eta})",
        ) {
            bar.set_style(style);
        }
        Display::Bar(bar)
    }

    fn file_done(&self, input: &Path, output: &Path, result: &Result<(), Error>) {
        match (self, result) {
            (Display::Bar(bar), Ok(())) => bar.inc(1),
            (Display::Bar(bar), Err(e)) => {
                bar.suspend(|| eprintln!("FAILED {}: {}", input.display(), one_line(e)));
                bar.inc(1);
            }
            (Display::Lines, Ok(())) => {
                eprintln!("signed {} -> {}", input.display(), output.display())
            }
            (Display::Lines | Display::Quiet, Err(e)) => {
                eprintln!("FAILED {}: {}", input.display(), one_line(e))
            }
            (Display::Quiet, Ok(())) => {}
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_names_and_refuse_clashes() {
        let inputs = [PathBuf::from("a/x.pdf"), PathBuf::from("b/y.pdf")];
        let outputs = output_paths(&inputs, Path::new("out")).unwrap();
        assert_eq!(
            outputs,
            [PathBuf::from("out/x.pdf"), PathBuf::from("out/y.pdf")]
        );
        let clash = [PathBuf::from("a/x.pdf"), PathBuf::from("b/x.pdf")];
        let err = output_paths(&clash, Path::new("out")).unwrap_err();
        assert!(one_line(&err).contains("a/x.pdf and b/x.pdf have the same file name"));
    }

    #[test]
    fn inputs_from_directories_globs_and_files() {
        let dir = std::env::temp_dir().join(format!("pdfsign-batch-inputs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["b.pdf", "a.PDF", "notes.txt", "sub/c.pdf"] {
            std::fs::write(dir.join(name), b"%PDF-").unwrap();
        }
        let d = dir.display();
        let found = expand_inputs(&[d.to_string()]).unwrap();
        assert_eq!(found, [dir.join("a.PDF"), dir.join("b.pdf")]);
        let found = expand_inputs(&[format!("{d}/*/*.pdf"), format!("{d}/missing.pdf")]).unwrap();
        assert_eq!(found, [dir.join("sub/c.pdf"), dir.join("missing.pdf")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
