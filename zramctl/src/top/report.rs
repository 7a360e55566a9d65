//! [`TopReport`]: what one refresh shows, computed from two snapshots of
//! the probes (pure).

use std::collections::BTreeMap;

use serde::Serialize;
use zramctl_common::op;

use crate::probes::{
    Flavour, ProbeHealth, ProgramCost, Role, Snapshot,
    hist::{
        AccessCounts, AccessRates, LatencyHistogram, LatencySummary, RefaultAgeSummary,
        RzramCounts, RzramStats, SlotAgeHistogram, age_bucket_bounds,
    },
};

/// One non-empty slot-age bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgeBucket {
    pub min_secs: u64,
    /// Exclusive; absent for the open last bucket.
    pub max_secs: Option<u64>,
    pub slots: u64,
}

/// Slot ages as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotAges {
    pub slots: u64,
    pub touched: u64,
    pub untouched: u64,
    pub buckets: Vec<AgeBucket>,
}

impl From<&SlotAgeHistogram> for SlotAges {
    fn from(h: &SlotAgeHistogram) -> Self {
        SlotAges {
            slots: h.slots,
            touched: h.touched(),
            untouched: h.untouched,
            buckets: h
                .buckets
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(i, &n)| {
                    let (lo, hi) = age_bucket_bounds(i);
                    AgeBucket {
                        min_secs: lo,
                        max_secs: hi,
                        slots: n,
                    }
                })
                .collect(),
        }
    }
}

/// rzram's writeback and refault events of one device in a report.
#[derive(Clone, Debug, Serialize)]
pub struct RzramReport {
    /// Totals since the probes were attached.
    pub total: RzramCounts,
    /// Over the interval.
    pub interval: RzramCounts,
    /// Pages written back successfully per second, over the interval.
    pub wb_pages_per_sec: f64,
    /// Refaults (reads of written-back pages) per second, over the interval.
    pub refaults_per_sec: f64,
    /// Writeback latency per page over the interval (every status).
    pub wb_latency: LatencySummary,
    /// Backing-device read latency over the interval.
    pub bd_read_latency: LatencySummary,
    /// Time from writeback to refault, over the interval.
    pub refault_age: RefaultAgeSummary,
    /// The interval's histograms for rendering.
    #[serde(skip)]
    pub stats: RzramStats,
}

impl RzramReport {
    fn between(earlier: &RzramStats, later: &RzramStats, secs: f64) -> Self {
        let d = later.since(earlier);
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        RzramReport {
            total: later.counts,
            interval: d.counts,
            wb_pages_per_sec: per_sec(d.counts.wb_written()),
            refaults_per_sec: per_sec(d.counts.refaults),
            wb_latency: d.wb_latency.summary(),
            bd_read_latency: d.bd_read_latency.summary(),
            refault_age: RefaultAgeSummary::from_us(&d.refault_age_us),
            stats: d,
        }
    }
}

/// One device in a report.
#[derive(Clone, Debug, Serialize)]
pub struct TopDevice {
    pub name: String,
    /// `MAJOR:MINOR`.
    pub dev: String,
    pub role: Role,
    /// Totals since the probes were attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessCounts>,
    /// Over the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<AccessRates>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_ages: Option<SlotAges>,
    /// Completions over the interval, by operation (`read`, `write`,
    /// `discard`, `other`; empty ones left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<BTreeMap<&'static str, LatencySummary>>,
    /// The same histograms for rendering.
    #[serde(skip)]
    pub latency_hists: Vec<(&'static str, LatencyHistogram)>,
    #[serde(skip)]
    pub age_hist: Option<SlotAgeHistogram>,
    /// rzram's writeback and refault events, on zram devices only: `null`
    /// ("n/a") on stock zram, or on rzram when its programs are not
    /// attached (see [`TopReport::rzram_probes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rzram: Option<Option<RzramReport>>,
}

/// Cost of one program over the interval.
#[derive(Clone, Debug, Serialize)]
pub struct TopProgram {
    #[serde(flatten)]
    pub cost: ProgramCost,
    pub ns_per_event: Option<f64>,
}

/// What one refresh shows.
#[derive(Clone, Debug, Serialize)]
pub struct TopReport {
    /// Seconds between the two snapshots.
    pub interval_secs: f64,
    pub probes: Flavour,
    pub devices: Vec<TopDevice>,
    /// Per-program cost over the interval (kernel BPF stats).
    pub programs: Vec<TopProgram>,
    /// Totals since attach.
    pub health: ProbeHealth,
    /// "attached", or why rzram's programs are not ("not attached: ...").
    pub rzram_probes: String,
}

impl TopReport {
    /// The report for the interval between two snapshots (and the program
    /// costs read with them). `roles` is parallel to the snapshots' devices.
    pub fn between(
        earlier: &Snapshot,
        later: &Snapshot,
        earlier_costs: &[ProgramCost],
        later_costs: &[ProgramCost],
        roles: &[Role],
        flavour: Flavour,
        rzram_status: Result<(), &str>,
    ) -> Self {
        let secs = later.monotonic_ns.saturating_sub(earlier.monotonic_ns) as f64 / 1e9;
        let devices = later
            .devices
            .iter()
            .zip(&earlier.devices)
            .zip(roles)
            .map(|((d, e), role)| {
                let latency_hists: Vec<(&'static str, LatencyHistogram)> =
                    match (&d.latency, &e.latency) {
                        (Some(l), Some(el)) => (0..op::COUNT)
                            .map(|o| (op::NAMES[o], l[o].since(&el[o])))
                            .collect(),
                        _ => Vec::new(),
                    };
                TopDevice {
                    name: d.spec.name.clone(),
                    dev: format!("{}:{}", d.spec.major, d.spec.minor),
                    role: role.clone(),
                    access: d.access,
                    rates: match (&e.access, &d.access) {
                        (Some(a), Some(b)) => Some(AccessRates::between(a, b, secs)),
                        _ => None,
                    },
                    slot_ages: d.slot_ages.as_ref().map(SlotAges::from),
                    latency: d.latency.as_ref().map(|_| {
                        latency_hists
                            .iter()
                            .filter(|(_, h)| h.count > 0)
                            .map(|(name, h)| (*name, h.summary()))
                            .collect()
                    }),
                    latency_hists,
                    age_hist: d.slot_ages.clone(),
                    rzram: (*role == Role::Zram).then(|| match (&e.rzram, &d.rzram) {
                        (Some(a), Some(b)) => Some(RzramReport::between(a, b, secs)),
                        _ => None,
                    }),
                }
            })
            .collect();
        let programs = later_costs
            .iter()
            .map(|c| {
                let d = earlier_costs
                    .iter()
                    .find(|e| e.program == c.program)
                    .map(|e| c.since(e))
                    .unwrap_or_else(|| c.clone());
                TopProgram {
                    ns_per_event: d.ns_per_event(),
                    cost: d,
                }
            })
            .collect();
        TopReport {
            interval_secs: secs,
            probes: flavour,
            devices,
            programs,
            health: later.health,
            rzram_probes: match rzram_status {
                Ok(()) => "attached".into(),
                Err(why) => format!("not attached: {why}"),
            },
        }
    }
}
