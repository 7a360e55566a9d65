//! Paired ratios and their spread: every rzram/upstream comparison runs in
//! interleaved rounds (A/B alternating, same data, fresh devices), each
//! round gives one ratio, and a ratio is reported as the median of those
//! per-round ratios with a confidence interval for that median. A target
//! counts as met only when the interval's low end meets it.
//!
//! The interval is the exact, distribution-free one for a median from order
//! statistics: with the ratios sorted, (r[k], r[n+1-k]) for the largest k
//! that keeps the chance of the median falling outside at most 5 % (each
//! round's ratio is above or below the median with probability 1/2, so the
//! count below it is Binomial(n, 1/2)). Below 6 rounds no interval is that
//! sure: it is then the min-max, and its coverage (93.75 % for 5 rounds) is
//! stated. The min-max is always shown too.

use std::{collections::BTreeMap, fmt::Write as _};

/// Per-round ratios of one comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The confidence interval for the median (see the module's comment).
    pub lo: f64,
    pub hi: f64,
    /// The probability that the interval holds the true median.
    pub coverage: f64,
    pub n: usize,
}

/// The 1-based rank k of the interval (r[k], r[n+1-k]) for the median of
/// `n` samples, and its coverage: the interval misses the median when fewer
/// than k samples lie on one side of it, so the coverage is
/// 1 - 2 P(Binomial(n, 1/2) <= k - 1). k is the largest rank with that
/// chance at most 2.5 % a side, or 1 (the min-max) when none has.
pub fn median_interval_rank(n: usize) -> (usize, f64) {
    // cdf[i] = P(Binomial(n, 1/2) <= i).
    let mut cdf = Vec::with_capacity(n + 1);
    let (mut term, mut acc) = (0.5f64.powi(n as i32), 0.0);
    for i in 0..=n {
        acc += term;
        cdf.push(acc);
        term *= (n - i) as f64 / (i + 1) as f64;
    }
    let mut k = 1;
    while k < n.div_ceil(2) && cdf[k] <= 0.025 {
        k += 1;
    }
    (k, 1.0 - 2.0 * cdf[k - 1])
}

impl Spread {
    /// None when no round gave a ratio.
    pub fn of(ratios: &[f64]) -> Option<Spread> {
        let v: Vec<f64> = ratios
            .iter()
            .copied()
            .filter(|r| r.is_finite() && *r > 0.0)
            .collect();
        if v.is_empty() {
            return None;
        }
        let mut sorted = v;
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (k, coverage) = median_interval_rank(n);
        Some(Spread {
            median: super::median(sorted.clone()),
            min: sorted[0],
            max: sorted[n - 1],
            lo: sorted[k - 1],
            hi: sorted[n - k],
            coverage,
            n,
        })
    }

    /// The per-round ratios a / b of two measurements keyed by round (only
    /// rounds where both were measured).
    pub fn paired(a: &BTreeMap<u32, f64>, b: &BTreeMap<u32, f64>) -> Option<Spread> {
        let ratios: Vec<f64> = a
            .iter()
            .filter_map(|(round, &x)| {
                let y = *b.get(round)?;
                (x > 0.0 && y > 0.0).then(|| x / y)
            })
            .collect();
        Spread::of(&ratios)
    }

    /// "**1.02x** (0.97-1.06, 96 % CI of 9 rounds; min-max 0.95-1.10)", or
    /// with the min-max as the interval "**1.02x** (0.95-1.10, 5 rounds,
    /// 94 % CI)".
    pub fn cell(&self) -> String {
        let ci = (self.coverage * 100.0).floor();
        if median_interval_rank(self.n).0 == 1 {
            format!(
                "**{:.2}x** ({:.2}-{:.2}, {} rounds, {ci:.0} % CI)",
                self.median, self.min, self.max, self.n
            )
        } else {
            format!(
                "**{:.2}x** ({:.2}-{:.2}, {ci:.0} % CI of {} rounds; min-max {:.2}-{:.2})",
                self.median, self.lo, self.hi, self.n, self.min, self.max
            )
        }
    }

    /// Whether the target (a lower bound on the ratio) is met: by the low
    /// end of the median's interval, never by the median alone.
    pub fn verdict(&self, target: f64) -> String {
        if self.lo >= target {
            format!("met (low end {:.2}x ≥ {target:.1}x)", self.lo)
        } else if self.median >= target {
            format!(
                "**not met**: median {:.2}x but low end {:.2}x < {target:.1}x",
                self.median, self.lo
            )
        } else {
            format!("**not met**: low end {:.2}x < {target:.1}x", self.lo)
        }
    }

    /// Whether the target (an upper bound on the ratio) is met: by the
    /// high end of the median's interval, never by the median alone.
    pub fn verdict_at_most(&self, target: f64) -> String {
        if self.hi <= target {
            format!("met (high end {:.2}x ≤ {target:.1}x)", self.hi)
        } else if self.median <= target {
            format!(
                "**not met**: median {:.2}x but high end {:.2}x > {target:.1}x",
                self.median, self.hi
            )
        } else {
            format!("**not met**: high end {:.2}x > {target:.1}x", self.hi)
        }
    }
}

pub fn cell(s: Option<&Spread>) -> String {
    s.map_or("-".into(), Spread::cell)
}

pub fn verdict(s: Option<&Spread>, target: Option<f64>) -> String {
    match (s, target) {
        (Some(s), Some(t)) => s.verdict(t),
        (None, Some(_)) => "not measured".into(),
        _ => "-".into(),
    }
}

/// [`Spread::verdict_at_most`], "not measured" without a spread.
pub fn verdict_at_most(s: Option<&Spread>, target: f64) -> String {
    s.map_or("not measured".into(), |s| s.verdict_at_most(target))
}

/// A number with `decimals` decimals, "-" for none.
pub fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// A fraction as a percentage: "12.5 %".
pub fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// "**median** (min-max)" of per-round values that may be zero or negative
/// (a fraction, unlike a [`Spread`]'s ratios), formatted by `f`; "-" for
/// none.
pub fn range_cell(v: Option<&BTreeMap<u32, f64>>, f: impl Fn(f64) -> String) -> String {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return "-".into();
    };
    let all: Vec<f64> = v.values().copied().collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("**{}** ({}-{})", f(super::median(all)), f(lo), f(hi))
}

/// The per-round values of one measurement: "r0 r1 r2" as `a / b / c`.
pub fn rounds_list(v: &BTreeMap<u32, f64>, decimals: usize) -> String {
    let mut s = String::new();
    for (i, x) in v.values().enumerate() {
        if i > 0 {
            s.push_str(" / ");
        }
        let _ = write!(s, "{x:.decimals$}");
    }
    s
}

/// The median of the values of a per-round map.
pub fn median_of(v: &BTreeMap<u32, f64>) -> Option<f64> {
    (!v.is_empty()).then(|| super::median(v.values().copied().collect()))
}

/// The order two devices run in within round `round`: alternating, so a
/// drift over the run (the host's other work, the guest's page cache)
/// favours neither.
pub fn ab_order<T: Copy>(a: T, b: T, round: u32) -> [T; 2] {
    if round.is_multiple_of(2) {
        [a, b]
    } else {
        [b, a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_pairs_rounds_and_judges_by_the_low_end() {
        let a: BTreeMap<u32, f64> = [(0, 10.0), (1, 12.0), (2, 9.0), (3, 5.0)].into();
        let b: BTreeMap<u32, f64> = [(0, 10.0), (1, 10.0), (2, 10.0)].into();
        let s = Spread::paired(&a, &b).unwrap();
        assert_eq!(s.n, 3);
        assert_eq!(s.median, 1.0);
        assert_eq!(s.min, 0.9);
        assert_eq!(s.max, 1.2);
        // Three rounds: the interval is the min-max.
        assert_eq!((s.lo, s.hi), (0.9, 1.2));
        assert!(s.verdict(1.0).starts_with("**not met**: median"));
        assert!(s.verdict(0.9).starts_with("met"));
        assert!(s.verdict(1.1).starts_with("**not met**: low end"));
        assert_eq!(Spread::paired(&a, &BTreeMap::new()), None);
        assert_eq!(ab_order(1, 2, 0), [1, 2]);
        assert_eq!(ab_order(1, 2, 3), [2, 1]);
    }

    #[test]
    fn the_median_interval_is_exact_from_order_statistics() {
        // k and coverage, by hand: 1 - 2 P(Binomial(n, 1/2) <= k - 1).
        let (k, c) = median_interval_rank(5);
        assert_eq!(k, 1);
        assert!((c - (1.0 - 2.0 / 32.0)).abs() < 1e-12);
        let (k, c) = median_interval_rank(9);
        assert_eq!(k, 2);
        assert!((c - (1.0 - 2.0 * 10.0 / 512.0)).abs() < 1e-12);
        assert_eq!(median_interval_rank(12).0, 3);
        assert_eq!(median_interval_rank(1), (1, 0.0));
        for n in 1..40 {
            let (k, c) = median_interval_rank(n);
            assert!(k <= n.div_ceil(2), "n {n} k {k}");
            assert!(n < 6 || c >= 0.95, "n {n} coverage {c}");
        }

        // Nine rounds, one slow: the interval drops the extremes, the
        // verdict goes by its low end, and the cell shows both.
        let r = [1.04, 0.88, 1.03, 1.05, 1.02, 1.06, 1.03, 1.01, 1.09];
        let s = Spread::of(&r).unwrap();
        assert_eq!(
            (s.median, s.lo, s.hi, s.min, s.max),
            (1.03, 1.01, 1.06, 0.88, 1.09)
        );
        assert!(s.verdict(1.0).starts_with("met (low end 1.01x"));
        assert!(
            s.verdict(1.02)
                .starts_with("**not met**: median 1.03x but low end 1.01x")
        );
        assert_eq!(
            s.cell(),
            "**1.03x** (1.01-1.06, 96 % CI of 9 rounds; min-max 0.88-1.09)"
        );
        let five = Spread::of(&r[..5]).unwrap();
        assert_eq!(five.cell(), "**1.03x** (0.88-1.05, 5 rounds, 93 % CI)");
        assert!(
            five.verdict(1.0)
                .starts_with("**not met**: median 1.03x but low end 0.88x")
        );
    }

    #[test]
    fn cells_judge_upper_bounds_by_the_high_end() {
        let s = Spread::of(&[1.0, 1.05, 1.2]).unwrap();
        assert!(s.verdict_at_most(1.2).starts_with("met (high end 1.20x"));
        assert!(s.verdict_at_most(1.1).starts_with("**not met**: median"));
        assert!(s.verdict_at_most(1.0).starts_with("**not met**: high end"));
        assert_eq!(verdict_at_most(None, 1.1), "not measured");
        let v: BTreeMap<u32, f64> = [(0, -0.5), (1, 0.0), (2, 0.25)].into();
        assert_eq!(range_cell(Some(&v), pct), "**0.0 %** (-50.0 %-25.0 %)");
        assert_eq!(range_cell(None, pct), "-");
        assert_eq!(num(Some(1234.56), 0), "1235");
        assert_eq!(num(Some(0.456), 2), "0.46");
        assert_eq!(num(None, 1), "-");
    }
}
