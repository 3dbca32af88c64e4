//! Seeded simulations: false-positive rates, interval coverage, sequential peeking and drift detection.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{ChiSquared, Distribution, Normal};
use statrs::distribution::{Binomial, DiscreteCDF};

use liftlab_stats::{
    sequential, welch_absolute, Alternative, Cusum, CusumParams, Direction, Moments, PageHinkley,
    PageHinkleyParams, SampleStats, DEFAULT_TAU,
};

const ALPHA: f64 = 0.05;
const SIMULATIONS: u32 = 4000;

/// The sufficient statistics of `n` draws from N(mean, sd²), sampled
/// directly: the sample mean is N(mean, sd²/n) and M2 is sd²·χ²(n−1),
/// independently — the same joint law as drawing the n values, at a
/// fraction of the cost.
fn normal_batch(rng: &mut StdRng, n: u32, mean: f64, sd: f64) -> Moments {
    let nf = f64::from(n);
    let batch_mean = Normal::new(mean, sd / nf.sqrt()).unwrap().sample(rng);
    let m2 = sd * sd * ChiSquared::new(nf - 1.0).unwrap().sample(rng);
    let sum = batch_mean * nf;
    Moments::from_sums(u64::from(n), sum, m2 + sum * batch_mean)
}

/// The central 99% interval of Binomial(trials, p), exact.
fn binomial_99(trials: u32, p: f64) -> (u32, u32) {
    let b = Binomial::new(p, u64::from(trials)).unwrap();
    let bound = |q| u32::try_from(b.inverse_cdf(q)).unwrap();
    (bound(0.005), bound(0.995))
}

#[test]
fn fixed_horizon_false_positive_rate_is_alpha() {
    let mut rng = StdRng::seed_from_u64(0x11f7_1ab5);
    let mut rejections = 0;
    for _ in 0..SIMULATIONS {
        // Unequal sizes and spreads, where Welch (not Student) keeps the level.
        let control = SampleStats::from(normal_batch(&mut rng, 30, 5.0, 1.0));
        let treatment = SampleStats::from(normal_batch(&mut rng, 90, 5.0, 3.0));
        let r = welch_absolute(&control, &treatment, ALPHA, Alternative::TwoSided).unwrap();
        if r.p_value < ALPHA {
            rejections += 1;
        }
    }
    let (lo, hi) = binomial_99(SIMULATIONS, ALPHA);
    println!("A/A fixed horizon: {rejections} of {SIMULATIONS} rejected (99% band {lo}..={hi})");
    assert!(lo <= rejections && rejections <= hi);
}

/// Coverage may miss 95% by this much (the brief's ±1.5 percentage points).
const COVERAGE_SLACK: f64 = 0.015;

#[test]
fn confidence_intervals_cover_the_true_difference() {
    let mut rng = StdRng::seed_from_u64(0xc07e_4a9e);
    let true_difference = 0.4;
    let mut covered = 0_u32;
    for _ in 0..SIMULATIONS {
        let control = SampleStats::from(normal_batch(&mut rng, 40, 10.0, 2.0));
        let treatment = SampleStats::from(normal_batch(&mut rng, 25, 10.0 + true_difference, 1.0));
        let r = welch_absolute(&control, &treatment, ALPHA, Alternative::TwoSided).unwrap();
        if r.ci_low <= true_difference && true_difference <= r.ci_high {
            covered += 1;
        }
    }
    let coverage = f64::from(covered) / f64::from(SIMULATIONS);
    println!(
        "95% Welch intervals covered the true difference in {:.2}% of {SIMULATIONS}",
        100.0 * coverage
    );
    assert!((coverage - (1.0 - ALPHA)).abs() <= COVERAGE_SLACK);
}

#[test]
fn sequential_peeking_keeps_the_false_positive_rate() {
    const LOOKS: u32 = 20;
    const PER_LOOK: u32 = 50;
    let mut rng = StdRng::seed_from_u64(0x05e9_0e4c);
    let (mut sequential_rejections, mut naive_rejections) = (0_u32, 0_u32);
    for _ in 0..SIMULATIONS {
        let (mut control, mut treatment) = (Moments::new(), Moments::new());
        let (mut seq_rejected, mut naive_rejected) = (false, false);
        for _ in 0..LOOKS {
            control.merge(&normal_batch(&mut rng, PER_LOOK, 1.0, 1.0));
            treatment.merge(&normal_batch(&mut rng, PER_LOOK, 1.0, 1.0));
            let (a, b) = (SampleStats::from(control), SampleStats::from(treatment));
            let r = welch_absolute(&a, &b, ALPHA, Alternative::TwoSided).unwrap();
            let s = sequential(
                r.estimate,
                r.se,
                a.n + b.n,
                ALPHA,
                DEFAULT_TAU,
                Alternative::TwoSided,
            )
            .unwrap();
            seq_rejected |= s.p_value < ALPHA;
            naive_rejected |= r.p_value < ALPHA;
        }
        sequential_rejections += u32::from(seq_rejected);
        naive_rejections += u32::from(naive_rejected);
    }
    let rate = f64::from(sequential_rejections) / f64::from(SIMULATIONS);
    let naive = f64::from(naive_rejections) / f64::from(SIMULATIONS);
    println!(
        "A/A with {LOOKS} looks: sequential rejected {:.2}%, naive Welch peeking {:.2}%",
        100.0 * rate,
        100.0 * naive
    );
    assert!(rate <= ALPHA, "the confidence sequence lost its level");
    // Peeking at a fixed-horizon test inflates its error well beyond alpha,
    // which is why the sequential analysis exists.
    assert!(naive > 2.0 * ALPHA);
}

/// A stream of `len` draws from N(mean, sd²) with the mean raised by
/// `shift` from index `change` on.
fn stream(rng: &mut StdRng, len: usize, change: usize, mean: f64, shift: f64, sd: f64) -> Vec<f64> {
    let noise = Normal::new(0.0, sd).unwrap();
    (0..len)
        .map(|i| mean + if i >= change { shift } else { 0.0 } + noise.sample(rng))
        .collect()
}

/// The in-control length of each simulated stream and the post-change length.
const IN_CONTROL: usize = 1000;
const AFTER_CHANGE: usize = 300;
const STREAMS: u32 = 400;

/// Runs a detector over streams with a 30% upward mean shift (mean 10,
/// sd 3, shift +3) and returns (false-alarm rate per stream, mean delay,
/// detection rate).
fn drift_trial(
    make: impl Fn() -> Box<dyn FnMut(f64) -> Option<(u64, Direction)>>,
    seed: u64,
) -> (f64, f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut false_alarms, mut detected, mut total_delay) = (0_u32, 0_u32, 0_u32);
    for _ in 0..STREAMS {
        let xs = stream(
            &mut rng,
            IN_CONTROL + AFTER_CHANGE,
            IN_CONTROL,
            10.0,
            3.0,
            3.0,
        );
        let mut detector = make();
        let mut alarmed_early = false;
        for x in xs {
            if let Some((index, direction)) = detector(x) {
                let index = usize::try_from(index).unwrap();
                if index < IN_CONTROL {
                    alarmed_early = true;
                } else if !alarmed_early {
                    assert_eq!(direction, Direction::Up);
                    detected += 1;
                    total_delay += u32::try_from(index - IN_CONTROL).unwrap();
                    break;
                }
            }
        }
        false_alarms += u32::from(alarmed_early);
    }
    let streams = f64::from(STREAMS);
    let clean = streams - f64::from(false_alarms);
    (
        f64::from(false_alarms) / streams,
        f64::from(total_delay) / f64::from(detected.max(1)),
        f64::from(detected) / clean,
    )
}

#[test]
fn page_hinkley_detects_a_30_percent_shift_quickly_and_rarely_false_alarms() {
    let params = PageHinkleyParams {
        delta: 1.0,
        lambda: 60.0,
        min_samples: 30,
    };
    let (false_rate, delay, detection) = drift_trial(
        || {
            let mut ph = PageHinkley::new(params).unwrap();
            Box::new(move |x| ph.update(x).map(|s| (s.index, s.direction)))
        },
        0xd21f7,
    );
    println!(
        "Page-Hinkley (delta 1, lambda 60) on N(10, 3^2) -> +30%: false alarms in {:.1}% of {IN_CONTROL}-sample \
         in-control streams, detection {:.1}% within {AFTER_CHANGE}, mean delay {delay:.1} samples",
        100.0 * false_rate,
        100.0 * detection
    );
    assert!(false_rate <= 0.05, "too many false alarms");
    assert!(detection >= 0.99, "missed shifts");
    assert!(delay <= 45.0, "too slow");
}

#[test]
fn cusum_detects_a_30_percent_shift_quickly_and_rarely_false_alarms() {
    let params = CusumParams {
        slack: 0.5,
        threshold: 10.0,
        warmup: 200,
    };
    let (false_rate, delay, detection) = drift_trial(
        || {
            let mut cusum = Cusum::new(params).unwrap();
            Box::new(move |x| cusum.update(x).map(|s| (s.index, s.direction)))
        },
        0xc05e,
    );
    println!(
        "CUSUM (k 0.5 sd, h 10 sd, 200-sample warm-up) on the same streams: false alarms in {:.1}%, detection {:.1}%, \
         mean delay {delay:.1} samples",
        100.0 * false_rate,
        100.0 * detection
    );
    assert!(false_rate <= 0.05, "too many false alarms");
    assert!(detection >= 0.99, "missed shifts");
    assert!(delay <= 30.0, "too slow");
}
