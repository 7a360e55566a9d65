//! Paired ratios and their spread: every rzram/upstream comparison runs in
//! interleaved rounds (A/B alternating, same data, fresh devices), each
//! round gives one ratio, and a ratio is reported as the median of those
//! per-round ratios with their min..max. A target counts as met only when
//! the low end (the worst round) meets it.

use std::{collections::BTreeMap, fmt::Write as _};

/// Per-round ratios of one comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
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
        Some(Spread {
            median: super::median(v.clone()),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(0.0, f64::max),
            n: v.len(),
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

    /// "**1.02x** (0.95-1.10, 5 rounds)".
    pub fn cell(&self) -> String {
        format!(
            "**{:.2}x** ({:.2}-{:.2}, {} rounds)",
            self.median, self.min, self.max, self.n
        )
    }

    /// Whether the target (a lower bound on the ratio) is met: by the low
    /// end of the spread, never by the median alone.
    pub fn verdict(&self, target: f64) -> String {
        if self.min >= target {
            format!("met (low end {:.2}x ≥ {target:.1}x)", self.min)
        } else if self.median >= target {
            format!(
                "**not met**: median {:.2}x but low end {:.2}x < {target:.1}x",
                self.median, self.min
            )
        } else {
            format!("**not met**: low end {:.2}x < {target:.1}x", self.min)
        }
    }

    /// Whether the target (an upper bound on the ratio) is met: by the
    /// high end of the spread, never by the median alone.
    pub fn verdict_at_most(&self, target: f64) -> String {
        if self.max <= target {
            format!("met (high end {:.2}x ≤ {target:.1}x)", self.max)
        } else if self.median <= target {
            format!(
                "**not met**: median {:.2}x but high end {:.2}x > {target:.1}x",
                self.median, self.max
            )
        } else {
            format!("**not met**: high end {:.2}x > {target:.1}x", self.max)
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
        assert!(s.verdict(1.0).starts_with("**not met**: median"));
        assert!(s.verdict(0.9).starts_with("met"));
        assert!(s.verdict(1.1).starts_with("**not met**: low end"));
        assert_eq!(Spread::paired(&a, &BTreeMap::new()), None);
        assert_eq!(ab_order(1, 2, 0), [1, 2]);
        assert_eq!(ab_order(1, 2, 3), [2, 1]);
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
