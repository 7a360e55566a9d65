//! Ours in the lab: the daemon's own policy core ([`crate::policy::Policy`])
//! fed what the daemon feeds it (eBPF slot ages, `bd_stat` reads as the
//! refault count, PSI, zram utilisation) and its decisions carried out as
//! the daemon carries them out (`writeback_limit`, then `page_indexes=`
//! writes of at most a sysfs page each).

use std::collections::HashMap;

use super::{
    Env, LabPolicy, RoundLog,
    kernel::{Errno, Request, Zram},
};
use crate::policy::{
    ColdInput, Inputs, Outcome, Plan, Policy, PolicyConfig, RoundConfig, RoundError,
    cold::{chunk_for_sysfs, ranked_age},
};

/// How the lab runs ours.
#[derive(Clone, Debug, PartialEq)]
pub struct OursConfig {
    pub name: String,
    /// The daemon's policy settings (`policy.round` included).
    pub policy: PolicyConfig,
    /// Utilisation from RAM-resident pages (`orig_data_size` minus
    /// `bd_count`) instead of `orig_data_size` alone.
    pub resident_utilisation: bool,
}

impl OursConfig {
    /// The daemon before the lab's changes (today's defaults, utilisation
    /// from orig_data_size).
    pub fn before() -> Self {
        OursConfig {
            name: "zramctl-before".into(),
            policy: PolicyConfig {
                round: RoundConfig::legacy(),
                ..PolicyConfig::default()
            },
            resident_utilisation: false,
        }
    }
}

impl OursConfig {
    /// The lab's first tuned settings (20 h initial / 4 h floor idle age,
    /// rounds scaled with utilisation, minimum 256, evidence 100), no
    /// huge-page pass: the row the current settings are measured against.
    pub fn v1() -> Self {
        let mut c = Self {
            name: "zramctl-v1".into(),
            ..Self::default()
        };
        c.policy.round.huge_age_factor = None;
        c.policy.round.mature_evidence = false;
        c.policy.round.reread_age_factor = None;
        c.policy.refault.initial_secs = 20 * 3600;
        c.policy.refault.floor_secs = 4 * 3600;
        c.policy.refault.ceiling_secs = crate::policy::RefaultConfig::default().ceiling_secs;
        c
    }
}

impl OursConfig {
    /// The lab's second settings (the huge-page pass at half the idle age,
    /// the threshold falling on any round's evidence, every slot by its
    /// plain age): the row the current settings are measured against.
    pub fn v2() -> Self {
        let mut c = Self {
            name: "zramctl-v2".into(),
            ..Self::default()
        };
        c.policy.round.huge_age_factor = Some(crate::policy::round::HUGE_AGE_FACTOR);
        c.policy.round.mature_evidence = false;
        c.policy.round.reread_age_factor = None;
        c
    }
}

impl Default for OursConfig {
    /// The daemon with the lab's settings: `round_scale_with_utilisation`,
    /// `round_min_pages = 256`, `idle_age_min_evidence_pages = 100`,
    /// `idle_age_mature_evidence`, `round_reread_age_factor = 1.2`,
    /// `round_huge_age_factor = 0`, `idle_age_initial_secs = 72000`,
    /// `idle_age_floor_secs = 14400`.
    fn default() -> Self {
        OursConfig {
            name: "zramctl".into(),
            policy: PolicyConfig {
                round: RoundConfig::tuned(),
                refault: crate::policy::RefaultConfig {
                    initial_secs: 20 * 3600,
                    floor_secs: 4 * 3600,
                    ..Default::default()
                },
                ..PolicyConfig::default()
            },
            resident_utilisation: true,
        }
    }
}

pub struct Ours {
    cfg: OursConfig,
    p: Option<Policy>,
    last_bd_reads: u64,
    /// The daemon's written-back set: slots it offered in a round, with
    /// their access time then; no candidates until touched again.
    offered: HashMap<u64, u64>,
}

impl Ours {
    pub fn new(cfg: OursConfig) -> Self {
        Ours {
            cfg,
            p: None,
            last_bd_reads: 0,
            offered: HashMap::new(),
        }
    }
}

impl LabPolicy for Ours {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn step(&mut self, env: &Env, dev: &mut Zram, log: &mut Vec<RoundLog>) {
        let boot = env.now_ns;
        // The daemon's clock is monotonic: it stops while the machine sleeps.
        let now = boot - env.suspend.slept_before(boot);
        let p = self
            .p
            .get_or_insert_with(|| Policy::new(self.cfg.policy.clone(), now));
        p.observe_clocks(boot, now);
        let mm = dev.mm_stat();
        let bd = dev.bd_stat();
        p.observe_backing_free(Some(dev.backing_pages().saturating_sub(bd.bd_count)));
        let utilisation = Some(if self.cfg.resident_utilisation {
            crate::policy::zram_utilisation(mm.orig_data_size, bd.bd_count, dev.disksize())
        } else {
            mm.orig_data_size as f64 / dev.disksize().max(1) as f64
        });
        let bd_reads = bd.bd_reads.saturating_sub(self.last_bd_reads);
        self.last_bd_reads = bd.bd_reads;
        let mut inputs = Inputs {
            psi_some_avg10: env.psi_some_avg10,
            utilisation,
            latency: None,
            refaults: None,
            bd_reads: Some(bd_reads),
            cold: ColdInput::Slots(Vec::new()),
        };
        if p.round_due(now, &inputs) {
            // The daemon's candidates: every slot with data its eBPF ages
            // know, but the ones it offered in a round and that were not
            // touched since. Slots the kernel's huge pass wrote back are
            // candidates until offered once (the kernel skips them then).
            // eBPF slot ages come from jiffies: suspended time does not count.
            let offered = &mut self.offered;
            let reread = self.cfg.policy.round.reread_age_factor;
            offered.retain(|i, ac| dev.ac_ns(*i) == Some(*ac));
            inputs.cold = ColdInput::Slots(
                dev.stored()
                    .filter(|(i, _, _)| !offered.contains_key(i))
                    .map(|(i, ac, _)| {
                        let awake_ac = ac - env.suspend.slept_before(ac);
                        let age = now.saturating_sub(awake_ac) / 1_000_000_000;
                        (i, ranked_age(age, dev.probe_reads(i), reread))
                    })
                    .collect(),
            );
        }
        let d = p.tick(now, &inputs);
        let (Ok(_), Some(plan)) = (d.run, d.plan) else {
            return;
        };
        let Plan::Pages(ranges) = plan else {
            // The lab feeds eBPF ages, so plans are page ranges.
            return;
        };
        dev.set_writeback_limit(Some(d.limit_pages));
        let mut entry = RoundLog {
            t_ns: boot,
            policy_limit_pages: d.limit_pages,
            idle_age_ns: d.threshold_secs * 1_000_000_000,
            ..RoundLog::default()
        };
        let mut go_on = true;
        if let Some(secs) = d.huge_idle_secs {
            // The kernel's ages run on boot time (the policy added the
            // time slept).
            dev.mark_idle(boot, Some(secs.saturating_mul(1_000_000_000)));
            let (w, r) = dev.writeback(boot, &Request::HugeIdle);
            entry.pages += w.pages;
            entry.ram_bytes += w.ram_bytes;
            match r {
                Ok(()) => {}
                Err(Errno::Eio) if dev.writeback_limit() == 0 => go_on = false,
                Err(e) => {
                    entry.error = Some(e);
                    go_on = false;
                }
            }
        }
        for chunk in chunk_for_sysfs(&ranges) {
            if !go_on {
                break;
            }
            let (w, r) = dev.writeback(boot, &Request::Pages(chunk.clone()));
            entry.pages += w.pages;
            entry.ram_bytes += w.ram_bytes;
            match r {
                Ok(()) => {}
                // The limit spent is the end of the round, not a failure.
                Err(Errno::Eio) if dev.writeback_limit() == 0 => break,
                Err(e) => {
                    entry.error = Some(e);
                    break;
                }
            }
            // Marked as the daemon marks: whole chunks sent.
            for (a, b) in chunk {
                for i in a..=b {
                    if let Some(ac) = dev.ac_ns(i) {
                        self.offered.insert(i, ac);
                    }
                }
            }
        }
        dev.set_writeback_limit(None);
        p.complete(
            now,
            Outcome {
                written_pages: entry.pages,
                error: entry.error.map(|e| match e {
                    Errno::Eio => RoundError::Io,
                    Errno::Enospc => RoundError::NoSpace,
                }),
            },
        );
        log.push(entry);
    }
}
