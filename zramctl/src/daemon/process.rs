//! The standard `process_*` metrics of the daemon itself (what every
//! Prometheus client library exports), from `/proc/self`: its CPU time,
//! resident and virtual memory, open file descriptors and start time, so
//! its footprint shows next to what it manages.

use super::metrics::Exposition;

/// What `/proc/self/stat` and `/proc/self/fd` say of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
}

/// Parses `/proc/PID/stat` (`utime`, `stime`, `starttime`, `vsize`, `rss`
/// are fields 14, 15, 22, 23, 24); `boot_time` is `btime` of
/// `/proc/stat`, `tck` clock ticks per second.
pub fn parse_stat(stat: &str, tck: f64, page: u64, boot_time: f64) -> Option<ProcessStats> {
    // Fields after `(comm)`, which may hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field n of stat is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / tck,
        start_time_seconds: boot_time + num(22)? as f64 / tck,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        open_fds: 0,
    })
}

/// This process, now; `None` where /proc cannot be read.
pub fn read_self() -> Option<ProcessStats> {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let mut s = parse_stat(
        &std::fs::read_to_string("/proc/self/stat").ok()?,
        tck,
        page,
        boot,
    )?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    Some(s)
}

/// Adds the `process_*` families.
pub fn expose(e: &mut Exposition) {
    let Some(s) = read_self() else {
        return;
    };
    e.counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        &[],
        s.cpu_seconds,
    );
    e.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        &[],
        s.resident_bytes as f64,
    );
    e.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        &[],
        s.virtual_bytes as f64,
    );
    e.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        &[],
        s.start_time_seconds,
    );
    e.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        &[],
        s.open_fds as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_comm() {
        // A comm with a space and a parenthesis; utime 250, stime 50,
        // starttime 1000 ticks, vsize 1 GiB, rss 2560 pages.
        let stat = "4242 (zram ctl)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1073741824 2560 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_bytes, 1 << 30);
        assert_eq!(s.resident_bytes, 2560 * 4096);
        assert!(parse_stat("garbage", 100.0, 4096, 0.0).is_none());
    }

    #[test]
    fn reads_itself() {
        let s = read_self().expect("/proc/self");
        assert!(s.resident_bytes > 0 && s.open_fds > 0 && s.start_time_seconds > 1e9);
    }
}
