//! Signs a big PDF with a software key and reports wall time and peak memory; the
//! benchmark of `cargo xtask bench` for large files.
//!
//! ```text
//! cargo run --release -p pdf-sig --example sign_large -- [--generate MB] [--rounds N] [--floor] IN.pdf OUT.pdf
//! ```
//!
//! - `--generate MB` first writes `IN.pdf`: a PDF of about MB megabytes whose pages each
//!   show a large, incompressible image stream (4 MiB each).
//! - `--rounds N` signs N times (default 5) and prints each time and the median.
//! - `--floor` also times `cp IN OUT && openssl dgst -sha256 IN && sync`, the I/O floor,
//!   in rounds interleaved with the signing ones, and prints the ratio of the medians.
//!
//! Peak RSS is this process's `VmHWM` (from `/proc/self/status`), read at the end: it
//! covers every round, and the generation if asked for.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cms_sign::{
    CmsSigner, EcCurve, KeyAlgorithm, KeyError, SignRequest, SignatureAlgorithm, SignatureScheme,
    SignedDataBuilder,
};
use pdf_sig::{DigestAlgorithm, SignOptions, SignatureContainer};
use test_pki::{KeyKind, Pki, SoftwareKey};

/// The fixture P-256 key, signing like a token would.
struct Key {
    key: &'static SoftwareKey,
    chain: Vec<Vec<u8>>,
}

impl CmsSigner for Key {
    fn key_algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Ec(EcCurve::P256)
    }
    fn certificate(&self) -> &[u8] {
        self.key.cert_der()
    }
    fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, KeyError> {
        Ok(self.key.sign_ecdsa(request.digest)?)
    }
}

/// cms-sign's builder over that key, as a pdf-sig signature container.
struct Container {
    builder: SignedDataBuilder,
    bound: usize,
}

impl Container {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let key = Key {
            key: SoftwareKey::fixture(KeyKind::P256),
            chain: vec![Pki::fixture().intermediate_der().to_vec()],
        };
        let algorithm =
            SignatureAlgorithm::new(SignatureScheme::Ecdsa, cms_sign::DigestAlgorithm::Sha256);
        let builder =
            SignedDataBuilder::new(Arc::new(key), algorithm, cms_sign::SubFilter::CadesDetached)?;
        let bound = builder.size_bound()?;
        Ok(Container { builder, bound })
    }
}

impl SignatureContainer for Container {
    fn digest_algorithm(&self) -> DigestAlgorithm {
        DigestAlgorithm::Sha256
    }
    fn max_len(&self) -> usize {
        self.bound
    }
    fn sign_digest(
        &self,
        digest: &[u8],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.builder.sign(digest)?)
    }
}

/// Writes a PDF of about `megabytes` MB: pages each drawing one 1024 x 1024 RGB image
/// (3 MiB) of pseudo-random, incompressible bytes, plus a classic xref table.
fn generate(path: &Path, megabytes: u64) -> std::io::Result<()> {
    const SIDE: u64 = 1024;
    let image_len = SIDE * SIDE * 3;
    let pages = (megabytes * 1_000_000).div_ceil(image_len).max(1);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    let write =
        |out: &mut BufWriter<File>, bytes: &[u8], offset: &mut u64| -> std::io::Result<()> {
            out.write_all(bytes)?;
            *offset += bytes.len() as u64;
            Ok(())
        };
    write(&mut out, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", &mut offset)?;
    // Objects: 1 catalog, 2 pages, then per page: page, content, image.
    let kids: Vec<String> = (0..pages)
        .map(|page| format!("{} 0 R", 3 + 3 * page))
        .collect();
    let fixed = [
        "<</Type/Catalog/Pages 2 0 R>>".to_owned(),
        format!(
            "<</Type/Pages/Count {pages}/Kids[{}]/MediaBox[0 0 612 792]>>",
            kids.join(" ")
        ),
    ];
    for (index, body) in fixed.iter().enumerate() {
        offsets.push(offset);
        write(
            &mut out,
            format!("{} 0 obj\n{body}\nendobj\n", index + 1).as_bytes(),
            &mut offset,
        )?;
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 16];
    for page in 0..pages {
        let (page_id, content_id, image_id) = (3 + 3 * page, 4 + 3 * page, 5 + 3 * page);
        offsets.push(offset);
        let page_body = format!(
            "{page_id} 0 obj\n<</Type/Page/Parent 2 0 R/Contents {content_id} 0 R/Resources<</XObject<</Im0 {image_id} 0 R>>>>>>\nendobj\n"
        );
        write(&mut out, page_body.as_bytes(), &mut offset)?;
        let content = b"q 612 0 0 612 0 90 cm /Im0 Do Q";
        offsets.push(offset);
        write(
            &mut out,
            format!(
                "{content_id} 0 obj\n<</Length {}>>\nstream\n",
                content.len()
            )
            .as_bytes(),
            &mut offset,
        )?;
        write(&mut out, content, &mut offset)?;
        write(&mut out, b"\nendstream\nendobj\n", &mut offset)?;
        offsets.push(offset);
        let header = format!(
            "{image_id} 0 obj\n<</Type/XObject/Subtype/Image/Width {SIDE}/Height {SIDE}/ColorSpace/DeviceRGB/BitsPerComponent 8/Length {image_len}>>\nstream\n"
        );
        write(&mut out, header.as_bytes(), &mut offset)?;
        let mut left = image_len;
        while left > 0 {
            for byte in chunk.iter_mut() {
                // xorshift64: fast, and incompressible enough for the benchmark.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let take = left.min(chunk.len() as u64) as usize;
            write(&mut out, &chunk[..take], &mut offset)?;
            left -= take as u64;
        }
        write(&mut out, b"\nendstream\nendobj\n", &mut offset)?;
    }
    let xref = offset;
    let mut table = format!("xref\n0 {}\n0000000000 65535 f\r\n", offsets.len() + 1);
    for entry in &offsets {
        table.push_str(&format!("{entry:010} 00000 n\r\n"));
    }
    table.push_str(&format!(
        "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
        offsets.len() + 1
    ));
    write(&mut out, table.as_bytes(), &mut offset)?;
    out.flush()?;
    out.get_ref().sync_all()
}

fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn floor(input: &Path, output: &Path) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("cp \"$1\" \"$2\" && openssl dgst -sha256 \"$1\" >/dev/null && sync")
        .arg("floor")
        .arg(input)
        .arg(output)
        .status()?;
    if !status.success() {
        return Err("the floor command failed".into());
    }
    Ok(start.elapsed())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut generate_mb = None;
    let mut rounds = 5usize;
    let mut with_floor = false;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--generate" => {
                generate_mb = Some(args.next().ok_or("--generate needs MB")?.parse::<u64>()?)
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .ok_or("--rounds needs N")?
                    .parse::<usize>()?
                    .max(1)
            }
            "--floor" => with_floor = true,
            _ => paths.push(arg.into()),
        }
    }
    let [input, output] = paths.as_slice() else {
        return Err(
            "usage: sign_large [--generate MB] [--rounds N] [--floor] IN.pdf OUT.pdf".into(),
        );
    };
    if let Some(megabytes) = generate_mb {
        let start = Instant::now();
        generate(input, megabytes)?;
        println!(
            "generated {} ({} bytes) in {:.2?}",
            input.display(),
            fs::metadata(input)?.len(),
            start.elapsed()
        );
    }
    let container = Container::new()?;
    let options = SignOptions::builder().reason("benchmark").build()?;
    let floor_output = output.with_extension("floor.pdf");
    let (mut signing, mut floors) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let _ = fs::remove_file(output);
        let start = Instant::now();
        pdf_sig::sign(input, output, &options, &container)?;
        let elapsed = start.elapsed();
        signing.push(elapsed);
        let mut line = format!("round {round}: sign {elapsed:.3?}");
        if with_floor {
            let _ = fs::remove_file(&floor_output);
            let elapsed = floor(input, &floor_output)?;
            floors.push(elapsed);
            line.push_str(&format!(", floor {elapsed:.3?}"));
        }
        println!("{line}");
    }
    let _ = fs::remove_file(&floor_output);
    let size = fs::metadata(input)?.len();
    let sign_median = median(&mut signing);
    println!("input: {size} bytes; sign median of {rounds}: {sign_median:.3?}");
    if with_floor {
        let floor_median = median(&mut floors);
        println!(
            "floor (cp + openssl dgst -sha256 + sync) median: {floor_median:.3?}; ratio {:.3}",
            sign_median.as_secs_f64() / floor_median.as_secs_f64()
        );
    }
    match peak_rss_kib() {
        Some(kib) => println!(
            "peak RSS (VmHWM): {kib} KiB ({:.1} MB)",
            kib as f64 * 1024.0 / 1e6
        ),
        None => println!("peak RSS: /proc/self/status not readable"),
    }
    Ok(())
}
