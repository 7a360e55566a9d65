//! Refault feedback on the idle-age threshold.
//!
//! A refault is a read of a page soon after it was written back: the policy
//! picked a page that was not cold. Per round, `refaults / written` (pages
//! written back in the recent window) above `high` multiplies the threshold
//! by `up`; below `low` it is multiplied by `down` toward the floor; in
//! between it holds. The threshold stays within `[floor, ceiling]` and is
//! monotone in the refault count: more refaults never give a lower threshold.
//!
//! Refault counts are an input: rzram tracepoints will give them exactly;
//! without them the daemon uses the `bd_stat` bd_reads delta (every read of
//! a written-back page is a backing-device read).

#[derive(Clone, Debug, PartialEq)]
pub struct RefaultConfig {
    pub initial_secs: u64,
    pub floor_secs: u64,
    pub ceiling_secs: u64,
    /// Refault ratio above which the threshold rises.
    pub high: f64,
    /// Refault ratio below which it falls.
    pub low: f64,
    /// Factor on a rise (> 1).
    pub up: f64,
    /// Factor on a fall (< 1).
    pub down: f64,
}

impl Default for RefaultConfig {
    fn default() -> Self {
        RefaultConfig {
            initial_secs: 3600,
            floor_secs: 300,
            ceiling_secs: 7 * 86_400,
            high: 0.05,
            low: 0.01,
            up: 2.0,
            down: 0.9,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RefaultController {
    cfg: RefaultConfig,
    threshold_secs: u64,
}

impl RefaultController {
    pub fn new(cfg: RefaultConfig) -> Self {
        let t = cfg.initial_secs.clamp(cfg.floor_secs, cfg.ceiling_secs);
        RefaultController {
            cfg,
            threshold_secs: t,
        }
    }

    pub fn threshold_secs(&self) -> u64 {
        self.threshold_secs
    }

    pub fn reconfigure(&mut self, cfg: RefaultConfig) {
        self.threshold_secs = self.threshold_secs.clamp(cfg.floor_secs, cfg.ceiling_secs);
        self.cfg = cfg;
    }

    /// The refault ratio of one window.
    pub fn ratio(refaults: u64, written: u64) -> f64 {
        refaults as f64 / written.max(1) as f64
    }

    /// One round: refaults seen and pages written back in the recent window.
    pub fn update(&mut self, refaults: u64, written: u64) -> u64 {
        let c = &self.cfg;
        let r = Self::ratio(refaults, written);
        let t = self.threshold_secs as f64;
        let next = if r > c.high {
            (t * c.up).ceil().max(t + 1.0)
        } else if r < c.low {
            (t * c.down).floor()
        } else {
            t
        };
        let next = if next >= c.ceiling_secs as f64 {
            c.ceiling_secs
        } else {
            next as u64
        };
        self.threshold_secs = next.clamp(c.floor_secs, c.ceiling_secs);
        self.threshold_secs
    }
}

impl RefaultController {
    /// [`Self::update`], but without the fall unless `may_fall`: the
    /// threshold rises or holds (mature evidence, see
    /// [`super::RoundConfig::mature_evidence`]). Still monotone in the
    /// refault count.
    pub fn update_or_hold(&mut self, refaults: u64, written: u64, may_fall: bool) -> u64 {
        let before = self.threshold_secs;
        let next = self.update(refaults, written);
        if next < before && !may_fall {
            self.threshold_secs = before;
        }
        self.threshold_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_refaults_raise_few_lower_toward_the_floor() {
        let mut r = RefaultController::new(RefaultConfig {
            initial_secs: 1000,
            floor_secs: 600,
            ceiling_secs: 3000,
            ..RefaultConfig::default()
        });
        assert_eq!(r.update(10, 100), 2000);
        assert_eq!(r.update(10, 100), 3000, "capped at the ceiling");
        assert_eq!(r.update(2, 100), 3000, "2 % is in the band: hold");
        assert_eq!(r.update(0, 100), 2700);
        for _ in 0..100 {
            r.update(0, 0);
        }
        assert_eq!(r.threshold_secs(), 600, "the floor");
    }

    #[test]
    fn held_falls_keep_the_threshold_but_rises_go_through() {
        let mut r = RefaultController::new(RefaultConfig {
            initial_secs: 1000,
            floor_secs: 600,
            ceiling_secs: 3000,
            ..RefaultConfig::default()
        });
        assert_eq!(r.update_or_hold(0, 100, false), 1000, "no fall yet");
        assert_eq!(
            r.update_or_hold(10, 100, false),
            2000,
            "a rise goes through"
        );
        assert_eq!(r.update_or_hold(2, 100, false), 2000, "in the band: hold");
        assert_eq!(r.update_or_hold(0, 100, true), 1800, "mature: falls");
    }
}
