//! Ours in the lab: the daemon's own policy core ([`crate::policy::Policy`])
//! fed what the daemon feeds it (eBPF slot ages, `bd_stat` reads as the
//! refault count, PSI, zram utilisation) and its decisions carried out as
//! the daemon carries them out (`writeback_limit`, then `page_indexes=`
//! writes of at most a sysfs page each).

use super::{
    Env, LabPolicy, RoundLog,
    kernel::{Errno, Request, Zram},
};
use crate::policy::{
    ColdInput, Inputs, Outcome, Plan, Policy, PolicyConfig, RoundError, cold::chunk_for_sysfs,
};

/// How the lab runs ours.
#[derive(Clone, Debug, PartialEq)]
pub struct OursConfig {
    pub name: String,
    pub policy: PolicyConfig,
}

impl Default for OursConfig {
    fn default() -> Self {
        OursConfig {
            name: "zramctl".into(),
            policy: PolicyConfig::default(),
        }
    }
}

pub struct Ours {
    cfg: OursConfig,
    p: Option<Policy>,
    last_bd_reads: u64,
}

impl Ours {
    pub fn new(cfg: OursConfig) -> Self {
        Ours {
            cfg,
            p: None,
            last_bd_reads: 0,
        }
    }
}

impl LabPolicy for Ours {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn step(&mut self, env: &Env, dev: &mut Zram, log: &mut Vec<RoundLog>) {
        let now = env.now_ns;
        let p = self
            .p
            .get_or_insert_with(|| Policy::new(self.cfg.policy.clone(), now));
        let mm = dev.mm_stat();
        let bd = dev.bd_stat();
        let utilisation = Some(crate::policy::zram_utilisation(
            mm.orig_data_size,
            bd.bd_count,
            dev.disksize(),
        ));
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
            // eBPF slot ages come from jiffies: suspended time does not count.
            let awake_now = now - env.suspend.slept_before(now);
            inputs.cold = ColdInput::Slots(
                dev.resident()
                    .map(|(i, ac, _)| {
                        let awake_ac = ac - env.suspend.slept_before(ac);
                        (i, awake_now.saturating_sub(awake_ac) / 1_000_000_000)
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
            t_ns: now,
            policy_limit_pages: d.limit_pages,
            idle_age_ns: d.threshold_secs * 1_000_000_000,
            ..RoundLog::default()
        };
        for chunk in chunk_for_sysfs(&ranges) {
            let (w, r) = dev.writeback(now, &Request::Pages(chunk));
            entry.pages += w.pages;
            entry.ram_bytes += w.ram_bytes;
            if let Err(e) = r {
                entry.error = Some(e);
                break;
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
