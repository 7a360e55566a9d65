//! Stand-in for `zramctl trace record` until the CLI has it:
//! `trace_record DEVICE OUTPUT [--cgroup DIR] [--meta K=V]... [-- CMD...]`.

use std::{path::PathBuf, time::Duration};

use zramctl::trace_record::{RecordOptions, record_while};

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args.iter().position(|a| a == "--") {
        Some(i) => {
            let c = args.split_off(i + 1);
            args.pop();
            c
        }
        None => Vec::new(),
    };
    let mut it = args.into_iter();
    let device = it.next().expect("DEVICE");
    let output = PathBuf::from(it.next().expect("OUTPUT"));
    let (mut cgroup, mut meta) = (None, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cgroup" => cgroup = it.next().map(PathBuf::from),
            "--meta" => {
                let kv = it.next().expect("K=V");
                let (k, v) = kv.split_once('=').expect("K=V");
                meta.push((k.to_string(), v.to_string()));
            }
            o => anyhow::bail!("unknown argument {o}"),
        }
    }
    let opts = RecordOptions {
        device,
        output,
        cgroup,
        sample_every: Duration::from_secs(1),
        meta,
    };
    let (st, status) = record_while(&opts, &cmd, None)?;
    eprintln!(
        "recorded {:.1} s: {} records ({:.0}/s), {} dropped, {} events, {} unsized writes, {} ns per BPF run; command: {status:?}",
        st.secs,
        st.records,
        st.records_per_sec,
        st.dropped,
        st.events,
        st.unsized_writes,
        st.ns_per_run.map_or("-".into(), |n| format!("{n:.0}"))
    );
    if status.is_some_and(|s| !s.success()) {
        anyhow::bail!("the command failed: {status:?}");
    }
    Ok(())
}
