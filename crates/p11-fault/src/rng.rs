//! Deterministic randomness: SplitMix64 as a hash of (stream, call number).
//!
//! A rule's n-th draw is a pure function of its stream and n, not of the order in which
//! threads happen to draw: the rule counts its calls with an atomic, and call n fails
//! or not whatever thread makes it. One seed therefore gives the same faulted call
//! numbers on every run, and no lock is needed.

/// The SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The `n`-th number of the stream `stream`.
pub(crate) fn draw(stream: u64, n: u64) -> u64 {
    mix(stream.wrapping_add(n.wrapping_mul(GAMMA)))
}

/// The `n`-th number of the stream as a fraction in `[0, 1)`, from its top 53 bits.
pub(crate) fn unit(stream: u64, n: u64) -> f64 {
    (draw(stream, n) >> 11) as f64 / (1u64 << 53) as f64
}

/// A stream derived from a seed and a text (FNV-1a of the text, mixed with the seed),
/// so that two rules with the same seed still draw independent numbers.
pub(crate) fn stream(seed: u64, text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix(seed ^ mix(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_repeatable_and_spread() {
        let s = stream(42, "C_Sign CKR_DEVICE_ERROR");
        assert_eq!(draw(s, 7), draw(s, 7));
        assert_ne!(draw(s, 7), draw(s, 8));
        assert_ne!(s, stream(43, "C_Sign CKR_DEVICE_ERROR"));
        assert_ne!(s, stream(42, "C_Sign CKR_GENERAL_ERROR"));
        // About a quarter of 10,000 draws fall under 0.25.
        let hits = (1..=10_000).filter(|&n| unit(s, n) < 0.25).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        assert!((1..=10_000).all(|n| (0.0..1.0).contains(&unit(s, n))));
    }
}
