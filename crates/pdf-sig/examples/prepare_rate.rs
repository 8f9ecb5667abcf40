//! scratch
use std::time::Instant;

use pdf_sig::{ContainerSpec, DigestAlgorithm, SignOptions};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(20000, |s| s.parse().unwrap());
    let pdf = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/sample.pdf"
    ))
    .unwrap();
    let options = SignOptions::default();
    let spec = ContainerSpec::new(DigestAlgorithm::Sha256, 3000);
    let container = vec![0x30u8; 1500];
    let t = Instant::now();
    for _ in 0..n {
        let p = pdf_sig::prepare_bytes(&pdf, &options, spec).unwrap();
        std::hint::black_box(p.digest());
        let (out, _) = p.finish(&container).unwrap();
        std::hint::black_box(out);
    }
    println!("{:.2} us/op", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
