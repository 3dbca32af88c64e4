//! GrowthBook-compatible hashing: FNV-1a 32 over UTF-16 code units, hash versions 1 and 2, bucket ranges and choosing a bucket.
//!
//! A GrowthBook SDK given the same seed, weights and coverage places a unit in the same arm.
//! Nothing here allocates on the hot path: hashing streams the seed and the value through
//! FNV-1a without building the concatenated string.

/// The FNV-1a 32-bit offset basis.
const FNV_OFFSET: u32 = 0x811c_9dc5;
/// The FNV-1a 32-bit prime.
const FNV_PRIME: u32 = 0x0100_0193;

/// Feeds the UTF-16 code units of `s` into an FNV-1a state.
#[inline]
fn fnv_feed(mut h: u32, s: &str) -> u32 {
    if s.is_ascii() {
        // For ASCII, UTF-16 code units are the bytes; this path avoids decoding.
        for &b in s.as_bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    } else {
        for u in s.encode_utf16() {
            h ^= u32::from(u);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// FNV-1a 32 of a string's UTF-16 code units, as GrowthBook's JavaScript SDK computes it.
pub fn fnv32a(s: &str) -> u32 {
    fnv_feed(FNV_OFFSET, s)
}

/// FNV-1a 32 of the decimal digits of `n`, without allocating.
#[inline]
fn fnv_decimal(n: u32) -> u32 {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        // `rest % 10` is below 10, so the narrowing cannot lose anything.
        digits[i] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut h = FNV_OFFSET;
    for &b in &digits[i..] {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// GrowthBook hash version 1: `(fnv32a(value + seed) % 1000) / 1000`, in [0, 1).
pub fn hash_v1(seed: &str, value: &str) -> f64 {
    let h = fnv_feed(fnv_feed(FNV_OFFSET, value), seed);
    f64::from(h % 1000) / 1000.0
}

/// GrowthBook hash version 2: `(fnv32a(decimal(fnv32a(seed + value))) % 10000) / 10000`, in [0, 1).
pub fn hash_v2(seed: &str, value: &str) -> f64 {
    SeedPrefix::new(seed).hash_v2(value)
}

/// The FNV-1a state after a seed: hashing `seed + value` for many values starts from here, so
/// the seed's characters are hashed once per experiment rather than once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedPrefix(u32);

impl SeedPrefix {
    /// The state after hashing `seed`.
    pub fn new(seed: &str) -> Self {
        Self(fnv_feed(FNV_OFFSET, seed))
    }

    /// [`hash_v2`] of `seed + value` for the seed this prefix was made from.
    #[inline]
    pub fn hash_v2(self, value: &str) -> f64 {
        let inner = fnv_feed(self.0, value);
        f64::from(fnv_decimal(inner) % 10_000) / 10_000.0
    }
}

/// GrowthBook's hash versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashVersion {
    /// The legacy hash (value + seed, 1000 buckets).
    V1,
    /// The double hash (seed + value, 10000 buckets) that liftlab assigns with.
    V2,
}

/// Hashes `value` with `seed` in the given version; the result is in [0, 1).
pub fn hash(seed: &str, value: &str, version: HashVersion) -> f64 {
    match version {
        HashVersion::V1 => hash_v1(seed, value),
        HashVersion::V2 => hash_v2(seed, value),
    }
}

/// A half-open interval [start, end) of the unit interval that one arm owns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketRange {
    /// Inclusive lower end.
    pub start: f64,
    /// Exclusive upper end.
    pub end: f64,
}

impl BucketRange {
    /// True when `h` falls in [start, end).
    pub fn contains(&self, h: f64) -> bool {
        self.start <= h && h < self.end
    }
}

/// The bucket ranges for `weights` and `coverage` (clamped to [0, 1]), as GrowthBook builds them.
///
/// Arm i owns `[start_i, start_i + coverage · w_i)` where `start_i` is the sum of the weights
/// before it, so lowering the coverage shrinks every range from its top and never moves a
/// unit from one arm to another. Weights are taken as given: validation (a sum of 1) happens
/// when the spec is parsed, unlike GrowthBook, which falls back to equal weights.
pub fn bucket_ranges(weights: &[f64], coverage: f64) -> Vec<BucketRange> {
    let coverage = clamp_coverage(coverage);
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|&w| {
            let start = cumulative;
            cumulative += w;
            BucketRange {
                start,
                end: start + coverage * w,
            }
        })
        .collect()
}

/// Coverage clamped to [0, 1]; NaN counts as 0.
#[inline]
pub(crate) fn clamp_coverage(coverage: f64) -> f64 {
    if coverage >= 1.0 {
        1.0
    } else if coverage > 0.0 {
        coverage
    } else {
        0.0
    }
}

/// The first range containing `h`, or `None` when `h` is outside every range (not in the
/// experiment). Empty ranges never contain anything.
pub fn choose(h: f64, ranges: &[BucketRange]) -> Option<usize> {
    ranges.iter().position(|r| r.contains(h))
}

/// [`bucket_ranges`] followed by [`choose`] in one pass, without allocating: the hot path.
#[inline]
pub fn choose_weighted<'a>(
    h: f64,
    weights: impl IntoIterator<Item = &'a f64>,
    coverage: f64,
) -> Option<usize> {
    let coverage = clamp_coverage(coverage);
    let mut cumulative = 0.0;
    for (i, &w) in weights.into_iter().enumerate() {
        let start = cumulative;
        cumulative += w;
        if start <= h && h < start + coverage * w {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests;
