//! Tests of the hashing module against GrowthBook's public cross-SDK vectors (shared/reference/growthbook-hashing.md).

use proptest::prelude::*;

use super::*;

/// Hash outputs are multiples of 1/1000 or 1/10000, so an exact match is expected up to rounding.
const HASH_TOLERANCE: f64 = 1e-12;
/// Bucket range ends are sums and products of weights.
const RANGE_TOLERANCE: f64 = 1e-12;

fn check_hash(seed: &str, value: &str, version: HashVersion, expected: f64) {
    let got = hash(seed, value, version);
    assert!(
        (got - expected).abs() < HASH_TOLERANCE,
        "hash({seed:?}, {value:?}, {version:?}) = {got}, expected {expected}"
    );
}

#[test]
fn growthbook_hash_vectors() {
    use HashVersion::{V1, V2};
    let vectors: &[(&str, &str, HashVersion, f64)] = &[
        ("", "a", V1, 0.22),
        ("", "b", V1, 0.077),
        ("b", "a", V1, 0.946),
        ("ef", "d", V1, 0.652),
        ("asdf", "8952klfjas09ujk", V1, 0.549),
        ("", "123", V1, 0.011),
        ("seed", "a", V2, 0.0505),
        ("seed", "b", V2, 0.2696),
        ("foo", "ab", V2, 0.2575),
        ("foo", "def", V2, 0.2019),
        ("89123klj", "8952klfjas09ujkasdf", V2, 0.124),
        ("90850943850283058242805", "123", V2, 0.7516),
        ("()**(%$##$%#$#", "___)((*\":&", V2, 0.0128),
    ];
    for &(seed, value, version, expected) in vectors {
        check_hash(seed, value, version, expected);
    }
}

#[test]
fn fnv32a_known_values() {
    // The FNV-1a 32 offset basis is the hash of the empty string; "a" is FNV's published test value.
    assert_eq!(fnv32a(""), 0x811c_9dc5);
    assert_eq!(fnv32a("a"), 0xe40c_292c);
    assert_eq!(fnv32a("foobar"), 0xbf9c_f968);
}

#[test]
fn fnv32a_hashes_utf16_code_units_not_bytes() {
    // "é" is one UTF-16 unit (0xE9) but two UTF-8 bytes; "😀" is a surrogate pair.
    let by_units = |units: &[u16]| {
        units.iter().fold(0x811c_9dc5_u32, |h, &u| {
            (h ^ u32::from(u)).wrapping_mul(0x0100_0193)
        })
    };
    assert_eq!(fnv32a("é"), by_units(&[0xE9]));
    assert_eq!(fnv32a("a😀"), by_units(&[0x61, 0xD83D, 0xDE00]));
    assert_ne!(fnv32a("é"), by_units(&[0xC3, 0xA9]));
}

fn check_ranges(weights: &[f64], coverage: f64, expected: &[(f64, f64)]) {
    let got = bucket_ranges(weights, coverage);
    assert_eq!(got.len(), expected.len());
    for (g, &(start, end)) in got.iter().zip(expected) {
        assert!(
            (g.start - start).abs() < RANGE_TOLERANCE && (g.end - end).abs() < RANGE_TOLERANCE,
            "weights {weights:?} coverage {coverage}: got {got:?}, expected {expected:?}"
        );
    }
}

#[test]
fn growthbook_bucket_range_vectors() {
    check_ranges(&[0.5, 0.5], 1.0, &[(0.0, 0.5), (0.5, 1.0)]);
    check_ranges(&[0.5, 0.5], 0.5, &[(0.0, 0.25), (0.5, 0.75)]);
    check_ranges(&[0.5, 0.5], 0.0, &[(0.0, 0.0), (0.5, 0.5)]);
    check_ranges(
        &[0.25; 4],
        1.0,
        &[(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)],
    );
    check_ranges(&[0.2, 0.3, 0.5], 1.0, &[(0.0, 0.2), (0.2, 0.5), (0.5, 1.0)]);
    check_ranges(
        &[0.2, 0.3, 0.5],
        0.2,
        &[(0.0, 0.04), (0.2, 0.26), (0.5, 0.6)],
    );
}

#[test]
fn coverage_is_clamped() {
    check_ranges(&[0.5, 0.5], 1.5, &[(0.0, 0.5), (0.5, 1.0)]);
    check_ranges(&[0.5, 0.5], -0.5, &[(0.0, 0.0), (0.5, 0.5)]);
    check_ranges(&[0.5, 0.5], f64::NAN, &[(0.0, 0.0), (0.5, 0.5)]);
}

fn ranges(pairs: &[(f64, f64)]) -> Vec<BucketRange> {
    pairs
        .iter()
        .map(|&(start, end)| BucketRange { start, end })
        .collect()
}

#[test]
fn growthbook_choose_vectors() {
    let halves = ranges(&[(0.0, 0.5), (0.5, 1.0)]);
    for (h, expected) in [
        (0.2, Some(0)),
        (0.5, Some(1)),
        (0.8, Some(1)),
        (0.0, Some(0)),
    ] {
        assert_eq!(choose(h, &halves), expected, "h = {h}");
    }
    let half_coverage = ranges(&[(0.0, 0.25), (0.5, 0.75)]);
    for (h, expected) in [
        (0.2, Some(0)),
        (0.25, None),
        (0.4, None),
        (0.5, Some(1)),
        (0.8, None),
    ] {
        assert_eq!(choose(h, &half_coverage), expected, "h = {h}");
    }
    let with_empty = ranges(&[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0)]);
    assert_eq!(choose(0.5, &with_empty), Some(2));
}

proptest! {
    #[test]
    fn hashing_is_deterministic_and_in_the_unit_interval(seed in ".{0,40}", value in ".{0,80}") {
        for version in [HashVersion::V1, HashVersion::V2] {
            let a = hash(&seed, &value, version);
            let b = hash(&seed, &value, version);
            prop_assert_eq!(a.to_bits(), b.to_bits());
            prop_assert!((0.0..1.0).contains(&a));
        }
    }

    #[test]
    fn choose_weighted_agrees_with_ranges(
        raw in proptest::collection::vec(0.0f64..1.0, 2..6),
        coverage in 0.0f64..=1.0,
        h in 0.0f64..1.0,
    ) {
        let total: f64 = raw.iter().sum();
        prop_assume!(total > 0.0);
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        prop_assert_eq!(
            choose_weighted(h, &weights, coverage),
            choose(h, &bucket_ranges(&weights, coverage))
        );
    }

    #[test]
    fn lowering_coverage_never_moves_a_unit_between_arms(
        raw in proptest::collection::vec(0.0f64..1.0, 2..6),
        high in 0.0f64..=1.0,
        factor in 0.0f64..=1.0,
        unit in "[a-z0-9]{1,24}",
    ) {
        let total: f64 = raw.iter().sum();
        prop_assume!(total > 0.0);
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let low = high * factor;
        let h = hash_v2("seed", &unit);
        let at_low = choose(h, &bucket_ranges(&weights, low));
        let at_high = choose(h, &bucket_ranges(&weights, high));
        // A unit in the experiment at the lower coverage is in the same arm at the higher one.
        if let Some(arm) = at_low {
            prop_assert_eq!(at_high, Some(arm));
        }
    }
}
