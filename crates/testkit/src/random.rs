//! Deterministic test data: a value in [0, 1) per (index, salt), the same on every machine and run.

/// A deterministic value in [0, 1) per (index, salt): a splitmix64-style mix of the two, its top
/// 53 bits scaled into [0, 1) exactly.
pub fn unit_random(i: u64, salt: u64) -> f64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
