//! `zramctl simulate`: reads the trace and the policy, replays it
//! ([`crate::simulate::replay`]) and prints the summary.

use std::io::Write;

use anyhow::{Context as _, Result, bail};

use crate::{
    cli::SimulateArgs,
    daemon::config::Config,
    policy::PolicyConfig,
    simulate::{Event, LatencyModel, parse_trace, replay},
    size::ByteSize,
};

/// Runs `zramctl simulate`.
pub fn run(a: &SimulateArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(p) = &a.policy {
        return lab(a, p, out);
    }
    let events = if a.trace.as_os_str() == "-" {
        parse_trace(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&a.trace)
            .with_context(|| format!("opening trace {}", a.trace.display()))?;
        parse_trace(std::io::BufReader::new(f))
    }
    .with_context(|| format!("trace {}", a.trace.display()))?;
    let mut cfg = match &a.config {
        Some(p) => {
            let c = Config::load(p)?;
            c.devices
                .into_iter()
                .next()
                .map(|d| d.policy)
                .context("configuration has no device")?
        }
        None => PolicyConfig::default(),
    };
    if let Some(b) = a.budget {
        // A day's budget never allows more than a day's worth at once.
        cfg.budget_bytes_per_day = b.0;
        cfg.budget_burst_bytes = cfg.budget_burst_bytes.min(b.0);
    }
    if !(a.step.is_finite() && a.step > 0.0) {
        bail!("--step must be a positive number of seconds");
    }
    let max_slot = events
        .iter()
        .filter_map(|(_, e)| match *e {
            Event::Read { slot, pages }
            | Event::Write { slot, pages }
            | Event::Discard { slot, pages } => Some(slot.saturating_add(pages)),
            Event::Pressure(_) => None,
        })
        .max()
        .unwrap_or(0);
    let slots = a.slots.unwrap_or(max_slot);
    if slots > 1 << 28 {
        bail!("{slots} slots is too many to simulate (at most 2^28, a 1 TiB device)");
    }
    let mut rounds = Vec::new();
    let s = replay(
        &events,
        cfg,
        slots,
        a.step,
        LatencyModel {
            base_us: a.latency_base_us,
            per_request_us: a.latency_per_request_us,
        },
        |r| {
            if a.verbose {
                rounds.push(r.clone());
            }
        },
    );
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        if a.verbose {
            v["rounds"] = serde_json::to_value(&rounds)?;
        }
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    for r in &rounds {
        writeln!(
            out,
            "t={:>9.1}s {:<11} wrote {:>7} pages in {:>5} ranges  idle-age {:>6}s  batch {:>4}  budget left {}",
            r.t,
            r.trigger,
            r.pages,
            r.ranges,
            r.threshold_secs,
            r.batch,
            ByteSize(r.budget_left_bytes)
        )?;
    }
    let b = |n: u64| ByteSize(n).to_string();
    writeln!(
        out,
        "trace:        {} events over {:.0}s, {} slots, {} policy steps",
        s.events, s.duration_secs, slots, s.steps
    )?;
    writeln!(
        out,
        "written back: {} pages ({}) in {} rounds; peak on backing device {}",
        s.written_back_pages,
        b(s.written_back_bytes),
        s.rounds,
        b(s.peak_written_back_bytes)
    )?;
    writeln!(
        out,
        "refaults:     {} ({} within the refault window), {:.3} per page written back",
        s.refaults, s.recent_refaults, s.refault_ratio
    )?;
    writeln!(
        out,
        "budget:       {} spent of {} allowed ({:.1}%)",
        b(s.budget_spent_bytes),
        b(s.budget_allowed_bytes),
        100.0 * s.budget_spent_bytes as f64 / s.budget_allowed_bytes.max(1) as f64
    )?;
    writeln!(
        out,
        "final:        batch {}, idle-age threshold {}s, {} pages in RAM",
        s.final_batch_size, s.final_idle_age_secs, s.end_ram_pages
    )?;
    Ok(())
}

/// `zramctl simulate --policy NAME`: the policy lab.
fn lab(a: &SimulateArgs, name: &str, out: &mut dyn Write) -> Result<()> {
    use crate::{policy::lab, swaptrace::Trace};
    let policies = lab::policies_named(name).with_context(|| {
        format!("unknown policy {name:?}: expected ours, ours-before, ours-v1, ours-v2, android-mmd, chromeos or all")
    })?;
    if !(a.span_hours.is_finite() && a.span_hours > 0.0) {
        bail!("--span-hours must be a positive number of hours");
    }
    let trace = if a.trace.as_os_str() == "-" {
        Trace::parse(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&a.trace)
            .with_context(|| format!("opening trace {}", a.trace.display()))?;
        Trace::parse(std::io::BufReader::new(f))
    }
    .with_context(|| format!("trace {}", a.trace.display()))?;
    let (info, results) = lab::run(&trace, a.span_hours, policies);
    if a.json {
        let mut v = serde_json::json!({ "trace": info, "results": results });
        if !a.verbose {
            for r in v["results"].as_array_mut().into_iter().flatten() {
                r.as_object_mut().map(|o| o.remove("timeline"));
            }
        }
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", lab::table(&info, &results))?;
    }
    Ok(())
}
