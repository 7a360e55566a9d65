//! `zramctl trace record`: runs the recorder ([`crate::probes::trace`])
//! and prints what it cost.

use std::{io::Write, time::Duration};

use anyhow::{Context as _, Result, bail};

use crate::{
    cli::{TraceCommand, TraceRecordArgs},
    probes::trace::{RecordOptions, record_while},
};

pub fn run(t: &TraceCommand, out: &mut dyn Write) -> Result<()> {
    match t {
        TraceCommand::Record(a) => record(a, out),
    }
}

fn record(a: &TraceRecordArgs, out: &mut dyn Write) -> Result<()> {
    let device = a
        .device
        .strip_prefix("/dev/")
        .unwrap_or(&a.device)
        .to_string();
    if a.sample_ms == 0 {
        bail!("--sample-ms must be at least 1");
    }
    if a.secs.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
        bail!("--secs must be a positive number of seconds");
    }
    let meta = a
        .meta
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--meta {kv:?}: expected KEY=VALUE (KEY without spaces)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = RecordOptions {
        device,
        output: a.output.clone(),
        cgroup: a.cgroup.clone(),
        sample_every: Duration::from_millis(a.sample_ms),
        meta,
    };
    let (st, status) = record_while(&opts, &a.cmd, a.secs)?;
    writeln!(
        out,
        "{}: {:.1} s, {} events ({} kernel records, {:.0}/s), {} lost to a full ring buffer, {} writes without a size{}; BPF {} runs at {} ns/run",
        a.output.display(),
        st.secs,
        st.events,
        st.records,
        st.records_per_sec,
        st.dropped,
        st.unsized_writes,
        if st.sizes { "" } else { " (sizes not traced)" },
        st.runs,
        st.ns_per_run.map_or("-".into(), |n| format!("{n:.0}")),
    )?;
    if let Some(c) = &st.size_check {
        writeln!(out, "sizes: {}", c.summary())?;
    }
    if let Some(s) = status
        && !s.success()
    {
        bail!("the recorded command failed: {s}");
    }
    Ok(())
}
