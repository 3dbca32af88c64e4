//! Adaptive Gauss–Kronrod (7/15-point) quadrature of vector-valued integrands, for the bandit probabilities.

/// Kronrod abscissae on [−1, 1] (QUADPACK's QK15), the non-negative half in
/// decreasing order; odd indices are the 7-point Gauss nodes.
const XGK: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
/// Kronrod weights matching `XGK`.
const WGK: [f64; 8] = [
    0.022_935_322_010_529_22,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_2,
    0.140_653_259_715_525_9,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_728,
];
/// Gauss weights of the 7-point rule at `XGK[1]`, `XGK[3]`, `XGK[5]` and `XGK[7]` = 0.
const WG: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// One panel's Kronrod estimate and error bound per component.
struct Panel {
    lo: f64,
    hi: f64,
    value: Vec<f64>,
    error: f64,
}

/// The 15 Kronrod nodes of [−1, 1] in the order `kronrod` evaluates them:
/// the centre, then ± each non-zero abscissa.
const NODES: usize = 15;

/// Applies the 15-point Kronrod rule to [lo, hi]; `f(x, out)` overwrites
/// `out` with the K components at x. The error bound per component is
/// QUADPACK's: |K15 − G7| scaled as resasc·min(1, (200·|K15 − G7|/resasc)^1.5),
/// where resasc is the rule applied to |f − mean|; the panel's error is the
/// largest over the components.
fn kronrod(
    lo: f64,
    hi: f64,
    k: usize,
    f: &mut impl FnMut(f64, &mut [f64]),
    values: &mut [f64],
) -> Panel {
    let center = 0.5 * (lo + hi);
    let half = 0.5 * (hi - lo);
    // values[node * k + c]: node 0 is the centre, 2j+1 and 2j+2 are ∓XGK[j].
    f(center, &mut values[..k]);
    for (j, &x) in XGK[..7].iter().enumerate() {
        let (left, right) = (2 * j + 1, 2 * j + 2);
        f(center - half * x, &mut values[left * k..(left + 1) * k]);
        f(center + half * x, &mut values[right * k..(right + 1) * k]);
    }
    let mut value = vec![0.0; k];
    let mut error = 0.0_f64;
    for c in 0..k {
        let at = |node: usize| values[node * k + c];
        let mut kron = WGK[7] * at(0);
        let mut gauss = WG[3] * at(0);
        for j in 0..7 {
            let pair = at(2 * j + 1) + at(2 * j + 2);
            kron += WGK[j] * pair;
            if j % 2 == 1 {
                gauss += WG[j / 2] * pair;
            }
        }
        let mean = 0.5 * kron;
        let mut asc = WGK[7] * (at(0) - mean).abs();
        for (j, w) in WGK[..7].iter().enumerate() {
            asc += w * ((at(2 * j + 1) - mean).abs() + (at(2 * j + 2) - mean).abs());
        }
        let (kron, asc) = (kron * half, asc * half.abs());
        let mut err = (kron - gauss * half).abs();
        if asc > 0.0 && err > 0.0 {
            err = asc * (200.0 * err / asc).powf(1.5).min(1.0);
        }
        value[c] = kron;
        error = error.max(err);
    }
    Panel {
        lo,
        hi,
        value,
        error,
    }
}

/// Integrates the K-component function `f` over the sorted `breakpoints`
/// (at least two), splitting the panel with the largest error until the
/// summed error bound is below `tolerance` or `max_panels` is reached.
pub(crate) fn integrate(
    breakpoints: &[f64],
    k: usize,
    tolerance: f64,
    max_panels: usize,
    mut f: impl FnMut(f64, &mut [f64]),
) -> Vec<f64> {
    let mut buf = vec![0.0; NODES * k];
    let mut panels: Vec<Panel> = breakpoints
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| kronrod(w[0], w[1], k, &mut f, &mut buf))
        .collect();
    while panels.len() < max_panels {
        let total: f64 = panels.iter().map(|p| p.error).sum();
        if total <= tolerance {
            break;
        }
        let Some(worst) =
            (0..panels.len()).max_by(|&a, &b| panels[a].error.total_cmp(&panels[b].error))
        else {
            break;
        };
        let Panel { lo, hi, .. } = panels.swap_remove(worst);
        let mid = 0.5 * (lo + hi);
        if !(lo < mid && mid < hi) {
            break;
        }
        panels.push(kronrod(lo, mid, k, &mut f, &mut buf));
        panels.push(kronrod(mid, hi, k, &mut f, &mut buf));
    }
    let mut sum = vec![0.0; k];
    for p in &panels {
        for (total, v) in sum.iter_mut().zip(&p.value) {
            *total += v;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quadrature of smooth functions is exact to rounding.
    const QUADRATURE: f64 = 1e-13;

    #[test]
    fn integrates_polynomials_and_gaussians() {
        let got = integrate(&[0.0, 1.0], 2, 1e-14, 50, |x, out| {
            out[0] = x.powi(10);
            out[1] = (-x * x / 2.0).exp();
        });
        assert!((got[0] - 1.0 / 11.0).abs() < QUADRATURE);
        // ∫_0^1 e^{−x²/2} dx = √(π/2)·erf(1/√2), the published value 0.855624391892149.
        assert!((got[1] - 0.855_624_391_892_149).abs() < QUADRATURE);
    }
}
