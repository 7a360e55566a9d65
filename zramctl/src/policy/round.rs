//! How big a round is and how its pages are chosen (issue 15's policy
//! gaps, measured in the policy lab): round size scaled with the RAM-resident
//! utilisation, a minimum worth a flash write, a cap at the backing device's
//! free space; more cold candidates than the round writes, so that the
//! kernel's largest-object-first writeback (7.3 `select_pp_slot`) picks the
//! pages that free the most RAM per byte written; the idle-age threshold
//! lowered only on evidence.

/// The [`RoundConfig::huge_age_factor`] the lab measured (row
/// `zramctl-v2`); the tuned settings have the pass off: on the sqlite trace
/// it wrote huge pages at half the idle age that mostly refaulted.
pub const HUGE_AGE_FACTOR: f64 = 0.5;

/// The tuned [`RoundConfig::reread_age_factor`], picked on the lab's
/// traces (1.2, 1.5, 2, 4 and 64 measured; 1.5 loses pgbench, 2 and up
/// lose sqlite by 0.2 % of refaults per GiB, see `docs/daemon.md`).
pub const REREAD_AGE_FACTOR: f64 = 1.2;

/// The idle age (secs) of a round's huge-page pass for an idle-age
/// threshold, or `None` when the pass is off. At least 1 s: `idle 0`
/// would mark every page, the ones touched this second too.
pub fn huge_idle_secs(cfg: &RoundConfig, threshold_secs: u64) -> Option<u64> {
    let f = cfg.huge_age_factor.filter(|f| *f > 0.0)?;
    Some(((threshold_secs as f64 * f.min(1.0)).floor() as u64).max(1))
}

/// Round sizing and selection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundConfig {
    /// Cold candidates offered per page the round may write (oldest first).
    /// The kernel writes the largest objects among them first and stops at
    /// `writeback_limit`; 1 offers exactly the pages to write.
    pub candidate_factor: u64,
    /// Scale the round with the RAM-resident utilisation:
    /// `max_pages_per_round x utilisation`.
    pub scale_with_utilisation: bool,
    /// A round that would write fewer pages is skipped ([`super::Skip::TooFew`]).
    pub min_pages: u64,
    /// The threshold only goes down once at least this many pages were
    /// written back within the refault window (fewer say nothing about a
    /// 1 % refault ratio).
    pub min_evidence_pages: u64,
    /// Huge pages first, at a younger age: when set, a round starts with
    /// `idle <threshold x factor>` and `writeback huge_idle` (under the
    /// round's limit) before its age-chosen pages. A huge page is stored
    /// uncompressed: writing it frees a whole page of RAM per page of
    /// flash, about three times what an average page frees, so it is worth
    /// a younger age. Needs the kernel's per-slot access times
    /// (`CONFIG_ZRAM_TRACK_ENTRY_ACTIME`); in (0, 1]; `None`: off.
    pub huge_age_factor: Option<f64>,
    /// The idle-age threshold falls only on mature evidence: at most once
    /// per threshold (the time since it last changed must be at least the
    /// threshold). A page written back at age T that is still cold says
    /// little until it has stayed cold for about T more: refaults come at
    /// the writeback -> refault age, and a fall judged sooner sees none
    /// yet. Rises stay immediate. `false`: every round may lower it.
    pub mature_evidence: bool,
    /// A slot that has been read before (its eBPF read count is not 0:
    /// a page stored in it came back from zram) ages this many times
    /// slower when candidates are ranked ([`super::cold::ranked_age`]): it
    /// needs `factor` x the threshold of idle time to be written back.
    /// Read-back slots refault several times as often as never-read ones,
    /// and they are freed sooner (less RAM freed per page written).
    /// `None` (or 1): every slot by its plain age.
    pub reread_age_factor: Option<f64>,
}

impl RoundConfig {
    /// What the daemon did before these settings existed.
    pub fn legacy() -> Self {
        RoundConfig {
            candidate_factor: 1,
            scale_with_utilisation: false,
            min_pages: 1,
            min_evidence_pages: 0,
            huge_age_factor: None,
            mature_evidence: false,
            reread_age_factor: None,
        }
    }
}

impl RoundConfig {
    /// The settings the policy lab measured against the anchors
    /// (`docs/bench/POLICY.md`); the daemon takes them from its `[policy]`
    /// keys (`round_*`, `idle_age_min_evidence_pages`). `candidate_factor`
    /// is 1: the daemon marks every offered slot as written back (it does
    /// not see which ones the kernel chose), so offering more than it
    /// writes would hide the unchosen ones until they are touched again.
    pub fn tuned() -> Self {
        RoundConfig {
            candidate_factor: 1,
            scale_with_utilisation: true,
            min_pages: 256,
            min_evidence_pages: 100,
            huge_age_factor: None,
            mature_evidence: true,
            reread_age_factor: Some(REREAD_AGE_FACTOR),
        }
    }
}

impl Default for RoundConfig {
    /// Today's daemon behaviour, until the tuned settings have run through
    /// the VM suite as defaults.
    fn default() -> Self {
        Self::legacy()
    }
}

/// Pages a round may write: the budget's and the round cap's, scaled by
/// utilisation (0..1; unknown counts as 1) when asked, at most the backing
/// device's free pages; 0 below the minimum.
pub fn round_pages(
    cfg: &RoundConfig,
    budget_pages: u64,
    max_pages_per_round: u64,
    utilisation: Option<f64>,
    backing_free_pages: Option<u64>,
) -> u64 {
    let mut cap = max_pages_per_round;
    if cfg.scale_with_utilisation {
        let u = utilisation.unwrap_or(1.0).clamp(0.0, 1.0);
        cap = (max_pages_per_round as f64 * u).ceil() as u64;
    }
    let n = budget_pages
        .min(cap)
        .min(backing_free_pages.unwrap_or(u64::MAX));
    if n < cfg.min_pages.max(1) { 0 } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_cap_and_floor() {
        let c = RoundConfig::tuned();
        assert_eq!(round_pages(&c, 10_000, 4096, Some(0.5), None), 2048);
        assert_eq!(round_pages(&c, 1000, 4096, Some(0.5), None), 1000);
        assert_eq!(round_pages(&c, 10_000, 4096, Some(0.5), Some(300)), 300);
        assert_eq!(
            round_pages(&c, 10_000, 4096, Some(0.01), None),
            0,
            "41 < 256"
        );
        assert_eq!(
            round_pages(&c, 10_000, 4096, None, Some(200)),
            0,
            "backing nearly full"
        );
        let l = RoundConfig::legacy();
        assert_eq!(round_pages(&l, 10_000, 4096, Some(0.01), None), 4096);
        assert_eq!(round_pages(&l, 3, 4096, Some(0.5), None), 3);
    }
}
