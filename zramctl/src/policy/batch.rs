//! Writeback batch size from the backing device's completion latency.
//!
//! AIMD with a dead band: while the p99 completion latency of the backing
//! device is under `target * (1 - band)`, the batch grows by `increase`; over
//! `target * (1 + band)` it is cut by `decrease`; in between it holds. After
//! a cut it holds for `cooldown` rounds so one noisy window cannot make it
//! oscillate, and a window with fewer than `min_samples` completions says
//! nothing. The result is always within `[min, max]`.

#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    pub min: u64,
    pub max: u64,
    pub initial: u64,
    /// p99 target, ns.
    pub target_p99_ns: f64,
    /// Relative dead band around the target (0.2 = ±20 %).
    pub band: f64,
    /// Added per round under the band.
    pub increase: u64,
    /// Multiplied by on a cut (0 < decrease < 1).
    pub decrease: f64,
    /// Rounds to hold after a cut.
    pub cooldown: u32,
    /// Completions a window needs to count.
    pub min_samples: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            min: 1,
            max: 256,
            initial: 32,
            target_p99_ns: 5_000_000.0,
            band: 0.2,
            increase: 4,
            decrease: 0.5,
            cooldown: 2,
            min_samples: 16,
        }
    }
}

/// What one update did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchMove {
    Increase,
    Decrease,
    Hold,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchController {
    cfg: BatchConfig,
    current: u64,
    cooldown_left: u32,
}

impl BatchController {
    pub fn new(cfg: BatchConfig) -> Self {
        let current = cfg.initial.clamp(cfg.min, cfg.max);
        BatchController {
            cfg,
            current,
            cooldown_left: 0,
        }
    }

    pub fn current(&self) -> u64 {
        self.current
    }

    pub fn config(&self) -> &BatchConfig {
        &self.cfg
    }

    /// Adopts a new configuration, keeping the current size within its bounds.
    pub fn reconfigure(&mut self, cfg: BatchConfig) {
        self.current = self.current.clamp(cfg.min, cfg.max);
        self.cfg = cfg;
    }

    /// One round: `p99_ns` of the window's completions and how many there were.
    pub fn update(&mut self, p99_ns: Option<f64>, samples: u64) -> BatchMove {
        let c = &self.cfg;
        let mv = match p99_ns {
            Some(p) if p.is_finite() && samples >= c.min_samples => {
                if p > c.target_p99_ns * (1.0 + c.band) {
                    BatchMove::Decrease
                } else if p < c.target_p99_ns * (1.0 - c.band) && self.cooldown_left == 0 {
                    BatchMove::Increase
                } else {
                    BatchMove::Hold
                }
            }
            _ => BatchMove::Hold,
        };
        match mv {
            BatchMove::Decrease => {
                let cut = (self.current as f64 * c.decrease).floor() as u64;
                self.current = cut.clamp(c.min, c.max);
                self.cooldown_left = c.cooldown;
            }
            BatchMove::Increase => {
                self.current = self.current.saturating_add(c.increase).clamp(c.min, c.max);
            }
            BatchMove::Hold => {
                self.cooldown_left = self.cooldown_left.saturating_sub(1);
            }
        }
        mv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl() -> BatchController {
        BatchController::new(BatchConfig {
            min: 2,
            max: 64,
            initial: 32,
            target_p99_ns: 1000.0,
            band: 0.2,
            increase: 4,
            decrease: 0.5,
            cooldown: 2,
            min_samples: 10,
        })
    }

    #[test]
    fn additive_increase_multiplicative_decrease() {
        let mut b = ctl();
        assert_eq!(b.update(Some(500.0), 100), BatchMove::Increase);
        assert_eq!(b.current(), 36);
        assert_eq!(b.update(Some(5000.0), 100), BatchMove::Decrease);
        assert_eq!(b.current(), 18);
    }

    #[test]
    fn dead_band_cooldown_and_thin_windows_hold() {
        let mut b = ctl();
        // Within ±20 % of the target: hold.
        assert_eq!(b.update(Some(1100.0), 100), BatchMove::Hold);
        assert_eq!(b.update(Some(850.0), 100), BatchMove::Hold);
        // Too few samples or none: hold.
        assert_eq!(b.update(Some(1.0), 9), BatchMove::Hold);
        assert_eq!(b.update(None, 1000), BatchMove::Hold);
        assert_eq!(b.current(), 32);
        // After a cut, two rounds of hold before growing again.
        b.update(Some(9999.0), 100);
        assert_eq!(b.current(), 16);
        assert_eq!(b.update(Some(1.0), 100), BatchMove::Hold);
        assert_eq!(b.update(Some(1.0), 100), BatchMove::Hold);
        assert_eq!(b.update(Some(1.0), 100), BatchMove::Increase);
        assert_eq!(b.current(), 20);
    }

    #[test]
    fn stays_within_bounds() {
        let mut b = ctl();
        for _ in 0..50 {
            b.update(Some(1.0), 100);
        }
        assert_eq!(b.current(), 64);
        for _ in 0..50 {
            b.update(Some(1e12), 100);
        }
        assert_eq!(b.current(), 2);
        b.reconfigure(BatchConfig {
            min: 8,
            ..b.config().clone()
        });
        assert_eq!(b.current(), 8);
    }
}
