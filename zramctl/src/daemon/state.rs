//! What the daemon keeps per device between steps.

use std::collections::HashMap;

use super::candidates::WrittenBack;

use tracing::{info, warn};

use super::{
    config::DeviceConfig,
    limit::{SavedLimit, limit_record_path},
};
use crate::{
    policy::{Policy, Skip},
    probes::hist::LatencyHistogram,
    sysfs::{BackingDev, BdStat, Device, IoStat, MmStat, Sysfs, WritebackLimit},
};

#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub(super) initialized: bool,
    pub(super) disksize: u64,
    pub(super) mm: MmStat,
    pub(super) io: IoStat,
    pub(super) bd: Option<BdStat>,
    pub(super) limit: Option<WritebackLimit>,
    pub(super) batch: Option<u64>,
    pub(super) backing: bool,
    pub(super) backing_path: Option<std::path::PathBuf>,
}

/// What identifies one life of a device: a reset and a new setup change it
/// (and the eBPF slot array and backing-device watch must follow).
pub(super) type Identity = (bool, u64, Option<std::path::PathBuf>);

/// Per-device state.
pub(super) struct DevState {
    pub(super) cfg: DeviceConfig,
    pub(super) dev: Device,
    pub(super) policy: Policy,
    pub(super) stats: Option<Stats>,
    pub(super) saved_limit: Option<SavedLimit>,
    /// Kernel tracks access times (`idle <secs>` works); learnt on EINVAL.
    pub(super) actime: bool,
    /// slot -> its access time when we wrote it back (left out as candidate
    /// until it is touched again).
    pub(super) written_back: WrittenBack,
    pub(super) last_bd_reads: Option<u64>,
    pub(super) last_backing_write_hist: Option<LatencyHistogram>,
    pub(super) wb_pages_total: u64,
    pub(super) errors: [u64; 2],
    pub(super) rounds: HashMap<&'static str, u64>,
    pub(super) skips: HashMap<&'static str, u64>,
    pub(super) read_errors_total: u64,
    pub(super) last_p99_ns: Option<f64>,
    pub(super) last_round_unix: Option<f64>,
    pub(super) last_utilisation: Option<f64>,
    pub(super) last_now_ns: u64,
    pub(super) note: Option<String>,
    pub(super) identity: Option<Identity>,
    pub(super) recomp: RecompState,
    /// See [`limit_record_path`].
    pub(super) limit_record: Option<std::path::PathBuf>,
}

/// Recompression bookkeeping of one device (see [`recompress_step`]).
#[derive(Default)]
pub(super) struct RecompState {
    pub(super) last_ns: Option<u64>,
    pub(super) runs: u64,
    pub(super) errors: u64,
    pub(super) saved_bytes: u64,
    /// Slots recompressed now, where debugfs shows it (upstream zram).
    pub(super) slots: Option<u64>,
    /// The device cannot recompress: said once, not tried again.
    pub(super) disabled: bool,
}

pub(super) const SKIPS: [(Skip, &str); 6] = [
    (Skip::NotDue, "not_due"),
    (Skip::Backoff, "backoff"),
    (Skip::BudgetSpent, "budget_spent"),
    (Skip::NothingCold, "nothing_cold"),
    (Skip::Marking, "marking"),
    (Skip::TooFew, "too_few"),
];

pub(super) fn skip_name(s: Skip) -> &'static str {
    SKIPS
        .iter()
        .find(|(k, _)| *k == s)
        .map_or("other", |(_, n)| n)
}

impl DevState {
    pub(super) fn new(
        sys: &Sysfs,
        cfg: DeviceConfig,
        now_ns: u64,
    ) -> Result<Self, crate::sysfs::Error> {
        let dev = sys.device(&cfg.name)?;
        let limit_record = limit_record_path(sys, &cfg.name);
        Ok(DevState {
            policy: Policy::new(cfg.policy.clone(), now_ns),
            cfg,
            dev,
            stats: None,
            saved_limit: None,
            actime: true,
            written_back: WrittenBack::default(),
            last_bd_reads: None,
            last_backing_write_hist: None,
            wb_pages_total: 0,
            errors: [0; 2],
            rounds: HashMap::new(),
            skips: HashMap::new(),
            read_errors_total: 0,
            last_p99_ns: None,
            last_round_unix: None,
            last_utilisation: None,
            last_now_ns: now_ns,
            note: None,
            identity: None,
            recomp: RecompState::default(),
            limit_record,
        })
    }

    pub(super) fn read_stats(&self) -> Result<Stats, crate::sysfs::Error> {
        let d = &self.dev;
        let backing_path = match d.backing_dev()? {
            BackingDev::Path(p) => Some(p),
            _ => None,
        };
        Ok(Stats {
            initialized: d.initstate()?,
            disksize: d.disksize()?,
            mm: d.mm_stat()?,
            io: d.io_stat()?,
            bd: d.bd_stat()?,
            limit: Some(d.writeback_limit()?),
            batch: d.writeback_batch_size()?,
            backing: backing_path.is_some(),
            backing_path,
        })
    }

    pub(super) fn set_note(&mut self, note: Option<String>) {
        if note != self.note {
            match &note {
                Some(n) => warn!(device = %self.cfg.name, "{n}"),
                None => info!(device = %self.cfg.name, "writeback possible again"),
            }
            self.note = note;
        }
    }
}

/// Probe state as shown in metrics.
#[derive(Clone, Debug)]
pub enum ProbeStatus {
    Off(String),
    Up(String),
    Failed(String),
}
