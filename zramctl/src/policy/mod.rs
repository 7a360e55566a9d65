//! The writeback policy: pure and deterministic. No I/O: the clock (ns) and
//! every input are passed in, and the decision comes back as data for the
//! daemon (or the simulator) to carry out.
//!
//! One [`Policy`] per device. Each [`Policy::tick`] takes what was observed
//! since the last one ([`Inputs`]) and returns a [`Decision`]: whether to run
//! a writeback round now and why ([`Trigger`]), what to write back
//! ([`Plan`]), the `writeback_limit` to set for it, and the batch size. After
//! the round the caller reports what happened with [`Policy::complete`].
//!
//! Pieces: [`budget`] (token bucket, bytes/day), [`batch`] (AIMD on the
//! backing device's p99), [`refault`] (idle-age threshold from refaults),
//! [`cold`] (oldest slots to coalesced page ranges).

pub mod batch;
pub mod budget;
pub mod cold;
pub mod lab;
pub mod refault;
pub mod round;
pub mod suspend;

use std::collections::VecDeque;

use serde::Serialize;

pub use batch::{BatchConfig, BatchController, BatchMove};
pub use budget::Budget;
pub use refault::{RefaultConfig, RefaultController};
pub use round::RoundConfig;
pub use suspend::SuspendLog;

/// Bytes per zram slot the policy accounts in.
pub const PAGE_SIZE: u64 = 4096;

const NS: u64 = 1_000_000_000;

/// Policy settings (the daemon's `[policy]` section, validated).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Writeback budget refill rate.
    pub budget_bytes_per_day: u64,
    /// Token bucket size: the most one burst may write.
    pub budget_burst_bytes: u64,
    /// Most pages one round writes back.
    pub max_pages_per_round: u64,
    /// A round at least this often (if anything is cold and budget is left).
    pub period_ns: u64,
    /// Least time between two rounds started by pressure or utilisation.
    pub min_interval_ns: u64,
    /// PSI memory `some avg10` (percent) at or above which a round starts early.
    pub psi_some_avg10: f64,
    /// zram utilisation (0..1) at or above which a round starts early.
    pub utilisation: f64,
    /// First wait after a failed round; doubles per failure up to the max.
    pub backoff_initial_ns: u64,
    pub backoff_max_ns: u64,
    /// Pages written back within this window count as "recent" for refaults.
    pub refault_window_ns: u64,
    pub batch: BatchConfig,
    pub refault: RefaultConfig,
    /// Round sizing and candidate choice.
    pub round: RoundConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            budget_bytes_per_day: 1 << 30,
            budget_burst_bytes: 256 << 20,
            max_pages_per_round: 65_536,
            period_ns: 300 * NS,
            min_interval_ns: 30 * NS,
            psi_some_avg10: 10.0,
            utilisation: 0.8,
            backoff_initial_ns: 10 * NS,
            backoff_max_ns: 600 * NS,
            refault_window_ns: 3600 * NS,
            batch: BatchConfig::default(),
            refault: RefaultConfig::default(),
            round: RoundConfig::default(),
        }
    }
}

/// zram utilisation for the utilisation trigger: pages resident in zram's
/// RAM over the device's pages. `orig_data_size` counts written-back pages
/// too (upstream zram and rzram alike: writeback frees the RAM but keeps
/// the slot), so `bd_count` (pages on the backing device) comes off it;
/// without that, utilisation never drops after a writeback and the trigger
/// fires at every `min_interval` once it reached the threshold.
pub fn zram_utilisation(orig_data_size: u64, bd_count_pages: u64, disksize: u64) -> f64 {
    if disksize < PAGE_SIZE {
        return 0.0;
    }
    let resident = (orig_data_size / PAGE_SIZE).saturating_sub(bd_count_pages);
    resident as f64 / (disksize / PAGE_SIZE) as f64
}

/// Why a round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Period,
    Pressure,
    Utilisation,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Period => "period",
            Trigger::Pressure => "pressure",
            Trigger::Utilisation => "utilisation",
        }
    }
}

/// Why no round runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// No trigger fired.
    NotDue,
    /// Waiting after a failed round.
    Backoff,
    /// The budget has no whole page left.
    BudgetSpent,
    /// Nothing is older than the threshold.
    NothingCold,
    /// Idle-all mode: the first mark is set; writeback comes next round.
    Marking,
    /// The round would write fewer pages than `RoundConfig::min_pages`.
    TooFew,
}

/// What to write back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// These inclusive slot ranges (eBPF ages), oldest first.
    Pages(Vec<(u64, u64)>),
    /// `idle <secs>` then `writeback idle` (kernel tracks access times).
    IdleAge(u64),
    /// `writeback idle` (pages untouched since the last `idle all`), then
    /// `idle all` again to mark for the next round.
    IdleAll,
    /// `idle all` only: the first mark of idle-all mode.
    MarkAll,
}

/// How the policy learns which pages are cold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColdInput {
    /// `(slot, age secs)` of slots in RAM, from the eBPF slot ages.
    Slots(Vec<(u64, u64)>),
    /// No eBPF: zram's own idle marking by age (CONFIG_ZRAM_TRACK_ENTRY_ACTIME).
    KernelAge,
    /// No eBPF and no access times: `idle all`, writeback at the next round.
    KernelMarkAll,
}

/// Backing-device completion latency over the last window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyWindow {
    pub p99_ns: f64,
    pub samples: u64,
}

/// What was observed since the last tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    pub psi_some_avg10: Option<f64>,
    pub utilisation: Option<f64>,
    pub latency: Option<LatencyWindow>,
    /// Exact refaults (reads of written-back pages), when something counts them.
    pub refaults: Option<u64>,
    /// Pages read from the backing device since the last tick (bd_stat
    /// bd_reads delta): the refault estimate without an exact count.
    pub bd_reads: Option<u64>,
    pub cold: ColdInput,
}

/// Result of one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// `Ok(trigger)` to run `plan` now; `Err(why not)` otherwise.
    pub run: Result<Trigger, Skip>,
    pub plan: Option<Plan>,
    /// Pages to allow through `writeback_limit` for this round.
    pub limit_pages: u64,
    /// The batch size to set (every tick; the caller writes it when it changed).
    pub batch_size: u64,
    pub batch_move: BatchMove,
    pub threshold_secs: u64,
    /// Before `plan`: `idle <secs>` then `writeback huge_idle`, under the
    /// same limit ([`RoundConfig::huge_age_factor`]); only with `Pages`
    /// and `IdleAge` plans.
    pub huge_idle_secs: Option<u64>,
}

/// How a round failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundError {
    /// EIO from writeback: the backing device failed (or the limit ran out).
    Io,
    /// Anything else (sysfs errors, device gone).
    Other,
    /// ENOSPC: the backing device is full. Not a failure of the device:
    /// no backoff, the next round waits for the period.
    NoSpace,
}

/// What a round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub written_pages: u64,
    pub error: Option<RoundError>,
}

/// The per-device policy state.
#[derive(Clone, Debug)]
pub struct Policy {
    cfg: PolicyConfig,
    budget: Budget,
    batch: BatchController,
    refault: RefaultController,
    last_round_ns: u64,
    backoff_ns: u64,
    backoff_until_ns: u64,
    marked_all_ns: Option<u64>,
    /// (time, pages) of recent rounds, within the refault window.
    recent: VecDeque<(u64, u64)>,
    refaults_pending: u64,
    refaults_total: u64,
    failures_total: u64,
    last_plan: Option<Plan>,
    round: RoundConfig,
    backing_free_pages: Option<u64>,
    suspend: SuspendLog,
    /// When the first pages written back at the current idle-age threshold
    /// went (None: none yet since it last changed): the age of the
    /// evidence for lowering it ([`RoundConfig::mature_evidence`]).
    evidence_since_ns: Option<u64>,
}

impl Policy {
    pub fn new(cfg: PolicyConfig, now_ns: u64) -> Self {
        Policy {
            round: cfg.round.clone(),
            evidence_since_ns: None,
            backing_free_pages: None,
            suspend: SuspendLog::default(),
            budget: Budget::new(cfg.budget_bytes_per_day, cfg.budget_burst_bytes, now_ns),
            batch: BatchController::new(cfg.batch.clone()),
            refault: RefaultController::new(cfg.refault.clone()),
            cfg,
            last_round_ns: now_ns,
            backoff_ns: 0,
            backoff_until_ns: 0,
            marked_all_ns: None,
            recent: VecDeque::new(),
            refaults_pending: 0,
            refaults_total: 0,
            failures_total: 0,
            last_plan: None,
        }
    }

    /// Adopts new settings (SIGHUP) and keeps the learned state: budget
    /// left, batch size and threshold (each clamped to the new bounds).
    pub fn reconfigure(&mut self, cfg: PolicyConfig, now_ns: u64) {
        self.budget
            .reconfigure(cfg.budget_bytes_per_day, cfg.budget_burst_bytes, now_ns);
        self.batch.reconfigure(cfg.batch.clone());
        self.refault.reconfigure(cfg.refault.clone());
        self.round = cfg.round.clone();
        self.cfg = cfg;
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Free pages on the backing device (its pages minus `bd_stat`'s
    /// bd_count): rounds never plan more.
    pub fn observe_backing_free(&mut self, pages: Option<u64>) {
        self.backing_free_pages = pages;
    }

    /// Both clocks at a tick (CLOCK_BOOTTIME, CLOCK_MONOTONIC; `tick`'s
    /// `now_ns` is the monotonic one): the policy learns when the machine
    /// slept, for idle ages the kernel measures on boot time.
    pub fn observe_clocks(&mut self, boot_ns: u64, mono_ns: u64) {
        self.suspend.observe(boot_ns, mono_ns);
    }
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    pub fn batch_size(&self) -> u64 {
        self.batch.current()
    }
    pub fn threshold_secs(&self) -> u64 {
        self.refault.threshold_secs()
    }
    pub fn refaults_total(&self) -> u64 {
        self.refaults_total
    }
    pub fn failures_total(&self) -> u64 {
        self.failures_total
    }
    /// Seconds until the backoff ends (0 when none).
    pub fn backoff_left_ns(&self, now_ns: u64) -> u64 {
        self.backoff_until_ns.saturating_sub(now_ns)
    }

    fn recent_written(&mut self, now_ns: u64) -> u64 {
        let window = self.cfg.refault_window_ns;
        while self
            .recent
            .front()
            .is_some_and(|&(t, _)| now_ns.saturating_sub(t) > window)
        {
            self.recent.pop_front();
        }
        self.recent.iter().map(|&(_, n)| n).sum()
    }

    /// Whether a round would start at `now_ns` with these inputs (the
    /// caller can skip collecting slot ages when not).
    pub fn round_due(&self, now_ns: u64, inputs: &Inputs) -> bool {
        self.trigger(now_ns, inputs).is_ok()
    }

    /// One observation step; see [`Decision`].
    pub fn tick(&mut self, now_ns: u64, inputs: &Inputs) -> Decision {
        self.budget.refill(now_ns);
        let refaults = inputs.refaults.or(inputs.bd_reads).unwrap_or(0);
        self.refaults_pending = self.refaults_pending.saturating_add(refaults);
        self.refaults_total = self.refaults_total.saturating_add(refaults);
        let batch_move = match inputs.latency {
            Some(l) => self.batch.update(Some(l.p99_ns), l.samples),
            None => self.batch.update(None, 0),
        };
        let run = self.trigger(now_ns, inputs);
        let mut decision = Decision {
            run: Err(Skip::NotDue),
            plan: None,
            limit_pages: 0,
            batch_size: self.batch.current(),
            batch_move,
            threshold_secs: self.refault.threshold_secs(),
            huge_idle_secs: None,
        };
        let trigger = match run {
            Ok(t) => t,
            Err(skip) => {
                decision.run = Err(skip);
                return decision;
            }
        };
        // A round is due: first learn from the refaults since the last one.
        let written = self.recent_written(now_ns);
        let threshold = if written < self.round.min_evidence_pages {
            // Too few pages written within the window to see a refault
            // ratio. Without refaults: no evidence that younger pages are
            // cold too. With refaults: they are reads of pages written back
            // before the window (bd_reads does not say which), and dividing
            // them by the few recent pages would raise the threshold for
            // pages it did not pick: each raise writes less, the next ratio
            // is higher still, and writeback stops for good.
            self.refault.threshold_secs()
        } else {
            // Mature evidence: the first pages written back at the current
            // threshold have had that long to refault.
            let before = self.refault.threshold_secs();
            let may_fall = !self.round.mature_evidence
                || self
                    .evidence_since_ns
                    .is_some_and(|t| now_ns.saturating_sub(t) >= before.saturating_mul(NS));
            let t = self
                .refault
                .update_or_hold(self.refaults_pending, written, may_fall);
            if t != before {
                self.evidence_since_ns = None;
            }
            t
        };
        self.refaults_pending = 0;
        decision.threshold_secs = threshold;
        let budget_pages = self.budget.available_pages();
        if budget_pages == 0 {
            decision.run = Err(Skip::BudgetSpent);
            self.last_round_ns = now_ns;
            return decision;
        }
        let pages = round::round_pages(
            &self.round,
            budget_pages,
            self.cfg.max_pages_per_round,
            inputs.utilisation,
            self.backing_free_pages,
        );
        if pages == 0 {
            decision.run = Err(Skip::TooFew);
            self.last_round_ns = now_ns;
            return decision;
        }
        // The kernel's ages run on boot time: add the time slept within
        // the window, as mmd does.
        let now_boot = now_ns.saturating_add(self.suspend.gap_ns());
        let kernel_age = |secs: u64| {
            secs + self
                .suspend
                .suspended_within(secs.saturating_mul(NS), now_boot)
                .div_ceil(NS)
        };
        let huge = round::huge_idle_secs(&self.round, threshold).map(kernel_age);
        let (plan, limit) = match &inputs.cold {
            ColdInput::Slots(c) => {
                // More candidates than pages: the kernel writes the largest
                // objects among them first and stops at the limit.
                let offer = pages.saturating_mul(self.round.candidate_factor.max(1));
                let ranges = cold::select_cold(c.iter().copied(), threshold, offer);
                if ranges.is_empty() && huge.is_none() {
                    decision.run = Err(Skip::NothingCold);
                    self.last_round_ns = now_ns;
                    return decision;
                }
                // With the huge pass, the limit is the round's: huge pages
                // younger than the threshold may go too.
                let n = if huge.is_some() {
                    pages
                } else {
                    cold::pages_in(&ranges).min(pages)
                };
                decision.huge_idle_secs = huge;
                (Plan::Pages(ranges), n)
            }
            ColdInput::KernelAge => {
                decision.huge_idle_secs = huge;
                (Plan::IdleAge(kernel_age(threshold)), pages)
            }
            ColdInput::KernelMarkAll => match self.marked_all_ns {
                Some(t) if now_ns.saturating_sub(t) >= threshold.saturating_mul(NS) => {
                    (Plan::IdleAll, pages)
                }
                Some(_) => {
                    decision.run = Err(Skip::NothingCold);
                    self.last_round_ns = now_ns;
                    return decision;
                }
                None => (Plan::MarkAll, 0),
            },
        };
        if plan == Plan::MarkAll {
            decision.run = Err(Skip::Marking);
        } else {
            decision.run = Ok(trigger);
        }
        decision.limit_pages = limit;
        decision.plan = Some(plan.clone());
        self.last_plan = Some(plan);
        decision
    }

    /// Whether a round is due now (what [`Self::tick`] checks first; no
    /// state changes), so a caller builds costly inputs only when it is.
    pub fn trigger(&self, now_ns: u64, inputs: &Inputs) -> Result<Trigger, Skip> {
        if now_ns < self.backoff_until_ns {
            return Err(Skip::Backoff);
        }
        let elapsed = now_ns.saturating_sub(self.last_round_ns);
        if elapsed >= self.cfg.period_ns {
            return Ok(Trigger::Period);
        }
        if elapsed >= self.cfg.min_interval_ns {
            if inputs
                .psi_some_avg10
                .is_some_and(|p| p >= self.cfg.psi_some_avg10)
            {
                return Ok(Trigger::Pressure);
            }
            if inputs
                .utilisation
                .is_some_and(|u| u >= self.cfg.utilisation)
            {
                return Ok(Trigger::Utilisation);
            }
        }
        Err(Skip::NotDue)
    }

    /// Reports the round the last decision asked for (also after
    /// [`Plan::MarkAll`], with 0 pages).
    pub fn complete(&mut self, now_ns: u64, outcome: Outcome) {
        self.budget.charge_pages(outcome.written_pages);
        if outcome.written_pages > 0 {
            self.recent.push_back((now_ns, outcome.written_pages));
            self.evidence_since_ns.get_or_insert(now_ns);
        }
        self.last_round_ns = now_ns;
        match outcome.error {
            Some(RoundError::NoSpace) => {
                self.backoff_ns = 0;
                self.backoff_until_ns = 0;
            }
            Some(_) => {
                self.failures_total += 1;
                self.backoff_ns = if self.backoff_ns == 0 {
                    self.cfg.backoff_initial_ns
                } else {
                    self.backoff_ns.saturating_mul(2)
                }
                .min(self.cfg.backoff_max_ns);
                self.backoff_until_ns = now_ns.saturating_add(self.backoff_ns);
            }
            None => {
                self.backoff_ns = 0;
                self.backoff_until_ns = 0;
                if matches!(self.last_plan, Some(Plan::IdleAll | Plan::MarkAll)) {
                    self.marked_all_ns = Some(now_ns);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
