//! The `/metrics` text: what the daemon exposes, family by family, in the
//! Prometheus text format of [`super::metrics`].

use zramctl_common::op;

use super::{
    DaemonCore,
    metrics::{Exposition, Kind},
    state::{DevState, ProbeStatus, SKIPS},
};
use crate::{
    platform::page_size,
    policy::Trigger,
    probes::hist::{SlotAgeHistogram, age_bucket_bounds, lat_bucket_bounds},
    sysfs::WritebackLimit,
};

impl DaemonCore {
    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let mut e = Exposition::new();
        e.gauge(
            "zramctl_build_info",
            "zramctl version (always 1).",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        e.counter(
            "zramctl_daemon_steps_total",
            "Policy steps run by the daemon.",
            &[],
            self.steps as f64,
        );
        e.counter(
            "zramctl_config_reloads_total",
            "Configuration reloads (SIGHUP) by result.",
            &[("result", "ok")],
            self.reloads_ok as f64,
        );
        e.counter(
            "zramctl_config_reloads_total",
            "Configuration reloads (SIGHUP) by result.",
            &[("result", "error")],
            self.reloads_failed as f64,
        );
        // Why the probes are down is in the log, not in a label.
        let (up, flavour) = match &self.probe_status {
            ProbeStatus::Up(f) => (1.0, f.as_str()),
            ProbeStatus::Off(_) => (0.0, "none"),
            ProbeStatus::Failed(_) => (0.0, "failed"),
        };
        e.gauge(
            "zramctl_probe_up",
            "1 if the eBPF probes are attached and readable, 0 if the daemon runs on sysfs only.",
            &[],
            up,
        );
        e.gauge(
            "zramctl_probe_info",
            "eBPF probe flavour: tp_btf, raw_tp, fake, none or failed (always 1).",
            &[("flavour", flavour)],
            1.0,
        );
        e.counter(
            "zramctl_probe_read_errors_total",
            "Failed reads of the eBPF maps.",
            &[],
            self.probe_errors_total as f64,
        );
        if let Some(v) = &self.probe_view {
            e.counter(
                "zramctl_probe_latency_starts_dropped_total",
                "Latency starts lost because the in-flight map was full.",
                &[],
                v.lat_start_dropped as f64,
            );
            e.counter(
                "zramctl_probe_latency_unmatched_total",
                "Completions without a recorded start.",
                &[],
                v.lat_unmatched as f64,
            );
            for pd in &v.devices {
                // The backing device's completion latency, labelled with
                // the zram device it backs (the daemon watches no other).
                if let (Some(of), Some(lat)) = (&pd.backing_of, &pd.latency) {
                    for (o, h) in lat.iter().enumerate().take(op::COUNT) {
                        // Every second log2 bucket: 128 us to 8.6 s, and +Inf.
                        let mut buckets: Vec<(Option<f64>, u64)> = Vec::new();
                        for (i, &n) in h.buckets.iter().enumerate() {
                            let hi = lat_bucket_bounds(i).1;
                            let keep = hi.is_some_and(|hi| {
                                let k = hi.trailing_zeros();
                                (17..=33).contains(&k) && k % 2 == 1
                            });
                            match buckets.last_mut() {
                                Some((None, c)) => *c += n,
                                _ => buckets.push((None, n)),
                            }
                            if keep {
                                let last = buckets.last_mut().expect("pushed");
                                last.0 = hi.map(|hi| hi as f64 / 1e9);
                            }
                        }
                        e.histogram(
                            "zramctl_backing_latency_seconds",
                            "Completion latency of the backing device's requests, by operation, since the probes attached.",
                            &[("device", of), ("op", op::NAMES[o])],
                            &buckets,
                            h.sum_ns as f64 / 1e9,
                        );
                    }
                }
                // Slot ages now, from one pass over the slot array in place
                // (at scrape time; steps never read the slots unless a
                // round is due).
                let ages = match (&pd.slots, &self.probes) {
                    (Some(_), Some(p)) => {
                        // On the probes' clock of the last step.
                        let now = v.now_ns;
                        let mut h = SlotAgeHistogram::empty();
                        match p.scan_slots(&pd.name, &mut |_, s| h.add(&s, now)) {
                            Ok(true) => Some(h),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(h) = ages {
                    // One series per age bucket, not cumulative: a sum
                    // over the buckets is the touched slots.
                    for (i, &n) in h.buckets.iter().enumerate() {
                        let (lo, hi) = age_bucket_bounds(i);
                        let hi = hi.map_or_else(|| "+Inf".to_owned(), |hi| hi.to_string());
                        e.gauge(
                            "zramctl_slot_age_slots",
                            "Touched slots last accessed at least age_ge_seconds and less than age_lt_seconds ago.",
                            &[
                                ("device", &pd.name),
                                ("age_ge_seconds", &lo.to_string()),
                                ("age_lt_seconds", &hi),
                            ],
                            n as f64,
                        );
                    }
                    e.gauge(
                        "zramctl_slots_untouched",
                        "Slots not accessed since the probes attached.",
                        &[("device", &pd.name)],
                        h.untouched as f64,
                    );
                }
            }
        } else {
            e.declare(
                "zramctl_backing_latency_seconds",
                "Completion latency of the backing device's requests, by operation, since the probes attached.",
                Kind::Histogram,
            );
        }
        if let Some(ps) = self.last_psi {
            e.gauge(
                "zramctl_memory_pressure_some_ratio",
                "PSI memory some avg10 of the system, as a ratio.",
                &[],
                ps / 100.0,
            );
        }
        for d in &self.devices {
            device_metrics(&mut e, d);
        }
        super::process::expose(&mut e);
        e.render()
    }
}

fn device_metrics(e: &mut Exposition, d: &DevState) {
    let dl: [(&str, &str); 1] = [("device", &d.cfg.name)];
    let l = &dl[..];
    if let Some(s) = &d.stats {
        let m = &s.mm;
        e.gauge(
            "zramctl_initialized",
            "1 if the device is initialised (disksize set).",
            l,
            f64::from(u8::from(s.initialized)),
        );
        e.gauge("zramctl_disksize_bytes", "Disk size.", l, s.disksize as f64);
        e.gauge(
            "zramctl_orig_data_bytes",
            "mm_stat orig_data_size: uncompressed size of the data stored.",
            l,
            m.orig_data_size as f64,
        );
        e.gauge(
            "zramctl_compr_data_bytes",
            "mm_stat compr_data_size: compressed size of the data stored.",
            l,
            m.compr_data_size as f64,
        );
        e.gauge(
            "zramctl_mem_used_bytes",
            "mm_stat mem_used_total: memory used, with allocator overhead.",
            l,
            m.mem_used_total as f64,
        );
        e.gauge(
            "zramctl_mem_limit_bytes",
            "mm_stat mem_limit: memory limit, 0 for none.",
            l,
            m.mem_limit as f64,
        );
        e.gauge(
            "zramctl_mem_used_max_bytes",
            "mm_stat mem_used_max: peak memory used.",
            l,
            m.mem_used_max as f64,
        );
        e.gauge(
            "zramctl_same_pages",
            "mm_stat same_pages: same-filled pages, stored without memory.",
            l,
            m.same_pages as f64,
        );
        e.counter(
            "zramctl_pages_compacted_total",
            "mm_stat pages_compacted: pages freed by compaction.",
            l,
            m.pages_compacted as f64,
        );
        if let Some(h) = m.huge_pages {
            e.gauge(
                "zramctl_huge_pages",
                "mm_stat huge_pages: incompressible pages stored whole.",
                l,
                h as f64,
            );
        }
        if let Some(h) = m.huge_pages_since {
            e.counter(
                "zramctl_huge_pages_stored_total",
                "mm_stat huge_pages_since: huge pages stored since init.",
                l,
                h as f64,
            );
        }
        let io = &s.io;
        e.counter(
            "zramctl_failed_reads_total",
            "io_stat failed_reads.",
            l,
            io.failed_reads as f64,
        );
        e.counter(
            "zramctl_failed_writes_total",
            "io_stat failed_writes.",
            l,
            io.failed_writes as f64,
        );
        e.counter(
            "zramctl_invalid_io_total",
            "io_stat invalid_io.",
            l,
            io.invalid_io as f64,
        );
        e.counter(
            "zramctl_notify_free_total",
            "io_stat notify_free: slot-free notifications from swap.",
            l,
            io.notify_free as f64,
        );
        if let Some(bd) = &s.bd {
            let p = page_size() as f64;
            e.gauge(
                "zramctl_backing_bytes",
                "bd_stat bd_count: data on the backing device.",
                l,
                bd.bd_count as f64 * p,
            );
            e.counter(
                "zramctl_backing_read_bytes_total",
                "bd_stat bd_reads: bytes read back from the backing device.",
                l,
                bd.bd_reads as f64 * p,
            );
            e.counter(
                "zramctl_backing_written_bytes_total",
                "bd_stat bd_writes: bytes written to the backing device.",
                l,
                bd.bd_writes as f64 * p,
            );
        }
        match s.limit {
            Some(WritebackLimit::On { pages_left }) => {
                e.gauge(
                    "zramctl_writeback_limit_enabled",
                    "1 if writeback_limit_enable is set.",
                    l,
                    1.0,
                );
                e.gauge(
                    "zramctl_writeback_limit_bytes",
                    "writeback_limit: what the kernel still lets through.",
                    l,
                    (pages_left * page_size()) as f64,
                );
            }
            Some(WritebackLimit::Off) => {
                e.gauge(
                    "zramctl_writeback_limit_enabled",
                    "1 if writeback_limit_enable is set.",
                    l,
                    0.0,
                );
            }
            _ => {}
        }
        if let Some(b) = s.batch {
            e.gauge(
                "zramctl_writeback_batch_size",
                "writeback_batch_size as set in the kernel.",
                l,
                b as f64,
            );
        }
    }
    if d.cfg.recompress.is_some() {
        let r = &d.recomp;
        e.counter(
            "zramctl_recompress_runs_total",
            "Recompressions of idle pages the daemon ran.",
            l,
            r.runs as f64,
        );
        e.counter(
            "zramctl_recompress_errors_total",
            "Recompressions that failed or could not run.",
            l,
            r.errors as f64,
        );
        e.counter(
            "zramctl_recompress_saved_bytes_total",
            "Compressed bytes saved by recompression (mm_stat compr_data_size drop).",
            l,
            r.saved_bytes as f64,
        );
        if let Some(n) = r.slots {
            e.gauge(
                "zramctl_recompressed_pages",
                "Pages stored with a secondary algorithm (debugfs block_state).",
                l,
                n as f64,
            );
        }
    }
    e.counter(
        "zramctl_device_read_errors_total",
        "Failed reads of the device's sysfs attributes.",
        l,
        d.read_errors_total as f64,
    );
    let p = &d.policy;
    e.counter(
        "zramctl_writeback_pages_total",
        "Pages the daemon wrote back.",
        l,
        d.wb_pages_total as f64,
    );
    for (i, kind) in ["io", "other"].into_iter().enumerate() {
        e.counter(
            "zramctl_writeback_errors_total",
            "Failed writeback rounds: io is EIO from the backing device or a spent limit.",
            &[("device", &d.cfg.name), ("kind", kind)],
            d.errors[i] as f64,
        );
    }
    for t in [Trigger::Period, Trigger::Pressure, Trigger::Utilisation] {
        let n = d.rounds.get(t.as_str()).copied().unwrap_or(0);
        e.counter(
            "zramctl_writeback_rounds_total",
            "Writeback rounds by trigger.",
            &[("device", &d.cfg.name), ("trigger", t.as_str())],
            n as f64,
        );
    }
    for (_, r) in SKIPS {
        let n = d.skips.get(r).copied().unwrap_or(0);
        e.counter(
            "zramctl_writeback_skips_total",
            "Policy steps without writeback, by reason.",
            &[("device", &d.cfg.name), ("reason", r)],
            n as f64,
        );
    }
    e.gauge(
        "zramctl_policy_batch_size",
        "Batch size the policy wants.",
        l,
        p.batch_size() as f64,
    );
    e.gauge(
        "zramctl_policy_batch_size_min",
        "Lower bound of the batch size.",
        l,
        p.config().batch.min as f64,
    );
    e.gauge(
        "zramctl_policy_batch_size_max",
        "Upper bound of the batch size.",
        l,
        p.config().batch.max as f64,
    );
    e.gauge(
        "zramctl_policy_target_p99_seconds",
        "Backing-device p99 completion latency the batch controller aims at.",
        l,
        p.config().batch.target_p99_ns / 1e9,
    );
    if let Some(p99) = d.last_p99_ns {
        e.gauge(
            "zramctl_backing_write_p99_seconds",
            "p99 write completion latency of the backing device over the last window.",
            l,
            p99 / 1e9,
        );
    }
    e.gauge(
        "zramctl_budget_remaining_bytes",
        "Writeback budget left in the token bucket.",
        l,
        p.budget().available_bytes() as f64,
    );
    e.gauge(
        "zramctl_budget_rate_bytes_per_second",
        "Writeback budget refill rate.",
        l,
        p.budget().bytes_per_day() as f64 / 86_400.0,
    );
    e.gauge(
        "zramctl_budget_burst_bytes",
        "Writeback budget bucket size.",
        l,
        p.budget().burst_bytes() as f64,
    );
    e.counter(
        "zramctl_budget_spent_bytes_total",
        "Writeback budget charged.",
        l,
        p.budget().spent_total() as f64,
    );
    e.gauge(
        "zramctl_idle_age_threshold_seconds",
        "Pages idle at least this long are written back.",
        l,
        p.threshold_secs() as f64,
    );
    e.counter(
        "zramctl_refaults_total",
        "Reads of written-back pages (bd_reads deltas until rzram tracepoints count them).",
        l,
        p.refaults_total() as f64,
    );
    e.gauge(
        "zramctl_backoff_seconds",
        "Time left before the next round may start after a failure.",
        l,
        p.backoff_left_ns(d.last_now_ns) as f64 / 1e9,
    );
    if let Some(u) = d.last_utilisation {
        e.gauge(
            "zramctl_utilisation_ratio",
            "mem_used/mem_limit, or orig_data/disksize without a limit.",
            l,
            u,
        );
    }
    if let Some(t) = d.last_round_unix {
        e.gauge(
            "zramctl_last_round_timestamp_seconds",
            "Unix time of the last writeback round.",
            l,
            t,
        );
    }
    e.gauge(
        "zramctl_writeback_active",
        "1 if the device can write back (initialised, backing device set), 0 if only watched.",
        l,
        f64::from(u8::from(d.note.is_none() && d.stats.is_some())),
    );
}
