//! Command-line interface (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::size::ByteSize;

/// Inspect and drive zram writeback: status, idle marking, writeback, limits.
///
/// Works on upstream zram (`zramN`) and on rzram (`rzramN`), the Rust driver
/// with asynchronous writeback. DEVICE may be given as `zram0`, `/dev/zram0`
/// or `/sys/block/zram0`.
#[derive(Debug, Parser)]
#[command(
    name = "zramctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Root of the sysfs tree to work on (the directory holding `block/`).
    #[arg(
        long,
        global = true,
        env = "ZRAMCTL_SYSFS_ROOT",
        default_value = "/sys",
        value_name = "DIR"
    )]
    pub sysfs_root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show devices: size, algorithm, memory use, ratio, backing device, writeback state.
    Status(StatusArgs),
    /// Write pages from RAM to the backing device, and report how many went.
    Writeback(WritebackArgs),
    /// Mark pages idle, to be picked by `writeback --idle`.
    Idle(IdleArgs),
    /// Limit how much writeback may write (flash wear budget), or lift the limit.
    Limit(LimitArgs),
    /// Set how many writeback requests may be in flight at once.
    Batch(BatchArgs),
    /// Configure an unused device: backing device, algorithm, then size.
    Setup(SetupArgs),
    /// Reset a device: free its memory and detach its backing device.
    ///
    /// A backing file set up by `setup --backing-file` is taken down too, in
    /// order: dm-crypt, dm-integrity, the loop device; the file is kept
    /// unless --delete-backing-file.
    Reset(ResetArgs),
    /// Recompress stored pages with a secondary (stronger) algorithm.
    ///
    /// Needs recompression in the kernel (upstream CONFIG_ZRAM_MULTI_COMP,
    /// or an rzram with recomp_algorithm/recompress) and an algorithm set up
    /// before disksize (`setup --recomp-algorithm zstd`). Prints how much
    /// compressed memory it saved (mm_stat before and after).
    Recompress(RecompressArgs),
    /// Live view from eBPF probes: access rates, slot ages, latency histograms.
    ///
    /// Watches the zram device (every initialised one by default): per-slot
    /// access times and counts from block_bio_queue, bio latency, and the
    /// request latency of its backing device. Needs root (or CAP_BPF and
    /// CAP_PERFMON) and a kernel with BTF. Ctrl-C quits.
    Top(TopArgs),
    /// Run the writeback policy daemon (systemd Type=notify, /metrics on 127.0.0.1:9466).
    ///
    /// Reads the configuration, then every interval reads each device, lets
    /// the policy decide, writes back cold pages within the budget and tunes
    /// the batch size. SIGHUP reloads the configuration (a bad one is refused
    /// and the running one stays); SIGTERM stops cleanly, putting each
    /// device's writeback limit back as found.
    Daemon(DaemonArgs),
    /// Replay an access trace through the policy and report what it would do.
    ///
    /// Prints pages written back, refaults (reads of written-back pages) and
    /// budget use, so policies can be compared offline. Trace format: see
    /// `zramctl::simulate` (one `TIME OP SLOT[+N]` event per line).
    /// `--policy` replays a `zramctl trace record` file (or a version 1
    /// trace) under the policy lab instead: ours, Android mmd's and ChromeOS
    /// swap_management's policies on a model of Linux 7.3's zram, with RAM
    /// freed over time, bytes written to the backing device and refaults.
    Simulate(SimulateArgs),
    /// Record swap traces for `simulate --policy`.
    #[command(subcommand)]
    Trace(TraceCommand),
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Record a zram device's per-slot events into a trace file.
    ///
    /// eBPF: reads, writes and discards from block_bio_queue, swap slot
    /// frees, and on upstream zram the compressed size of each stored page
    /// (fentry on zs_malloc and slot_free); on rzram its slot tracepoint.
    /// MemAvailable/MemTotal and PSI are sampled (those of --cgroup when
    /// given). Runs CMD and stops when it exits, else after --secs or at
    /// Ctrl-C/SIGTERM. Prints what recording cost (events/s, ns per BPF
    /// run, records lost to a full ring buffer). Needs root and kernel BTF.
    Record(TraceRecordArgs),
}

#[derive(Debug, Args)]
pub struct TraceRecordArgs {
    /// zramN or rzramN.
    pub device: String,
    /// Trace file to write (`zramctl-trace 2`).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Memory cgroup directory whose limit, usage and pressure stand for
    /// MemTotal, MemAvailable and PSI.
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,
    /// Stop after this long (without CMD: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub secs: Option<f64>,
    /// Memory and PSI sample interval.
    #[arg(long, default_value = "1000", value_name = "MS")]
    pub sample_ms: u64,
    /// Extra `meta KEY VALUE` line in the trace (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// The command to record (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE", default_value = "/etc/zramctl/zramctl.toml")]
    pub config: PathBuf,
    /// Only validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Only set up the devices the configuration sets up (disksize,
    /// algorithms, [device.backing]), then exit: zramctl-setup.service runs
    /// this with the privileges that needs, the daemon's unit without them.
    #[arg(long, conflicts_with = "check")]
    pub setup_only: bool,
    /// Run on simulated zram devices with synthetic probes (demos and tests).
    #[arg(long, hide = true)]
    pub fake: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Access trace file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    /// Take the policy from this daemon configuration (its first device).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Slots of the simulated device (default: highest slot in the trace + 1).
    #[arg(long, value_name = "N")]
    pub slots: Option<u64>,
    /// Seconds between policy steps.
    #[arg(long, default_value = "10", value_name = "SECS")]
    pub step: f64,
    /// Override the budget, bytes per day (e.g. 256M); the burst is capped to it.
    #[arg(long, value_name = "SIZE")]
    pub budget: Option<ByteSize>,
    /// Backing-device write latency model: base latency, microseconds.
    #[arg(long, default_value = "500", value_name = "US")]
    pub latency_base_us: f64,
    /// ... plus this much per request in flight (the batch size).
    #[arg(long, default_value = "100", value_name = "US")]
    pub latency_per_request_us: f64,
    /// Print every round.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Policy lab: ours, ours-before, ours-v1, android-mmd, chromeos or all.
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// Policy lab: hours of policy time the trace spans (one time stretch
    /// for every policy, so that the anchors' 20-25 h idle ages fit).
    #[arg(long, default_value = "48", value_name = "HOURS")]
    pub span_hours: f64,
}

/// Which eBPF program type `top` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeKind {
    /// tp_btf, falling back to raw tracepoints.
    Auto,
    /// BTF-enabled tracepoints (cheapest).
    TpBtf,
    /// Raw tracepoints.
    RawTp,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// zramN or rzramN (default: every initialised zram and rzram device).
    pub device: Option<String>,
    /// Seconds between refreshes; with --once, how long to measure.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = parse_interval)]
    pub interval: f64,
    /// Print one report after one interval (or at Ctrl-C/SIGTERM) and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: print the report as JSON.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// Also append every report as one JSON line to FILE (for replay).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Also show the latency of this block device (repeatable).
    #[arg(long = "latency-dev", value_name = "PATH")]
    pub latency_devs: Vec<PathBuf>,
    /// eBPF program type.
    #[arg(long, value_enum, default_value = "auto")]
    pub probes: ProbeKind,
}

/// A value clap's parser refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgError(pub String);

/// Parses `--interval`: seconds, at least 0.05.
pub fn parse_interval(s: &str) -> Result<f64, ArgError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| ArgError(format!("{s:?} is not a number of seconds")))?;
    if !v.is_finite() || v < 0.05 {
        return Err(ArgError(format!(
            "interval {s} is too short: at least 0.05 s"
        )));
    }
    if v > 86400.0 {
        return Err(ArgError(format!(
            "interval {s} is too long: at most one day"
        )));
    }
    Ok(v)
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Also delete the backing file made by `setup --backing-file`.
    #[arg(long)]
    pub delete_backing_file: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true)))]
pub struct RecompressArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Pages marked idle (see `zramctl idle`); with --huge, pages both idle and huge.
    #[arg(long, group = "which")]
    pub idle: bool,
    /// Incompressible pages stored whole.
    #[arg(long, group = "which")]
    pub huge: bool,
    /// Every stored page (with --threshold: every page at least that large).
    #[arg(long, group = "which", conflicts_with_all = ["idle", "huge"])]
    pub all: bool,
    /// Only pages whose compressed size is at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub threshold: Option<u64>,
    /// Secondary algorithm by name (default: priority 1's).
    #[arg(long, value_name = "NAME", conflicts_with = "priority")]
    pub algo: Option<String>,
    /// Secondary algorithm by priority (1-3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3))]
    pub priority: Option<u32>,
    /// At most this many pages.
    #[arg(long, value_name = "N")]
    pub max_pages: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeviceArg {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this device (default: every zram and rzram device).
    pub device: Option<String>,
    /// Print JSON (sizes always in bytes).
    #[arg(long)]
    pub json: bool,
    /// Print sizes in bytes instead of K/M/G.
    #[arg(long, short = 'b')]
    pub bytes: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).multiple(true)))]
pub struct WritebackArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Pages marked idle (see `zramctl idle`).
    #[arg(long, group = "mode")]
    pub idle: bool,
    /// Incompressible pages stored whole.
    #[arg(long, group = "mode")]
    pub huge: bool,
    /// Pages that are both huge and idle.
    #[arg(long, group = "mode")]
    pub huge_idle: bool,
    /// Pages that recompression could not shrink.
    #[arg(long, group = "mode")]
    pub incompressible: bool,
    /// Page index ranges, inclusive: `A-B[,C-D...]`, or single indexes `N`.
    #[arg(long, group = "mode", value_name = "A-B[,C-D...]", value_parser = parse_page_ranges)]
    pub pages: Option<PageRanges>,
}

/// Inclusive page index ranges from `--pages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRanges(pub Vec<(u64, u64)>);

/// Parses `A-B,C-D,N` (inclusive ranges).
pub fn parse_page_ranges(s: &str) -> Result<PageRanges, ArgError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(ArgError(format!("empty range in {s:?}")));
        }
        let num = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| ArgError(format!("{t:?} is not a page index (in {part:?})")))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if a > b {
            return Err(ArgError(format!("range {part:?} is reversed: {a} > {b}")));
        }
        if b == u64::MAX {
            return Err(ArgError(format!("page index {b} is too large")));
        }
        out.push((a, b));
    }
    Ok(PageRanges(out))
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true)))]
pub struct IdleArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Mark every stored page idle.
    #[arg(long, group = "what")]
    pub all: bool,
    /// Mark pages not accessed for at least SECS seconds
    /// (kernel needs CONFIG_ZRAM_TRACK_ENTRY_ACTIME).
    #[arg(long, group = "what", value_name = "SECS")]
    pub age: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("limit").required(true)))]
pub struct LimitArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Allow this many more pages to be written back, then stop.
    #[arg(long, group = "limit", value_name = "N")]
    pub pages: Option<u64>,
    /// Allow this many more bytes (rounded down to whole pages), e.g. 256M.
    #[arg(long, group = "limit", value_name = "SIZE")]
    pub bytes: Option<ByteSize>,
    /// Turn the limit off.
    #[arg(long, group = "limit")]
    pub off: bool,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Writeback requests in flight at once (at least 1).
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    pub size: u64,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// zramN, rzramN, /dev/zramN or /sys/block/zramN.
    pub device: String,
    /// Disk size, e.g. 4G.
    #[arg(long, value_name = "SIZE")]
    pub size: ByteSize,
    /// Compression algorithm, e.g. lz4 or zstd (default: the kernel's).
    #[arg(long, value_name = "ALGO")]
    pub algorithm: Option<String>,
    /// Block device that writeback writes to (a partition or a loop device).
    #[arg(long, value_name = "PATH", conflicts_with = "backing_file")]
    pub backing_dev: Option<PathBuf>,
    /// Write back to this file instead: created (or reused if the right
    /// size) with fallocate, attached to a loop device with direct I/O.
    #[arg(long, value_name = "PATH")]
    pub backing_file: Option<PathBuf>,
    /// Size of the backing file, or `auto`: a quarter of the free space,
    /// at most the disk size and 8 GiB, at least 64 MiB.
    #[arg(
        long,
        value_name = "SIZE|auto",
        requires = "backing_file",
        default_value = "auto"
    )]
    pub backing_size: crate::provision::BackingSize,
    /// Encrypt the backing file: dm-integrity (AEAD tags) and dm-crypt
    /// (AES-GCM) with a random key that lives only in the kernel, so
    /// written-back pages are unreadable after reboot and tampering reads
    /// back as an I/O error.
    #[arg(long, requires = "backing_file")]
    pub encrypt: bool,
    /// Secondary algorithm for `zramctl recompress` (repeatable: priorities 1, 2, 3).
    #[arg(long = "recomp-algorithm", value_name = "ALGO")]
    pub recomp_algorithms: Vec<String>,
    /// Cap on the memory the device may use, e.g. 1G.
    #[arg(long, value_name = "SIZE")]
    pub mem_limit: Option<ByteSize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command of ours is dispatched to clap, not read as
    /// util-linux's column list: `zramctl trace record zram0 --output F`
    /// went to util-linux's `--output` ("unknown column: F").
    #[test]
    fn every_subcommand_is_ours_not_util_linux() {
        for c in Cli::command().get_subcommands() {
            let args = [c.get_name().to_string(), "--output".into(), "x".into()];
            assert!(
                !crate::ulcompat::is_util_linux_form(&args),
                "{} is taken for util-linux's form",
                c.get_name()
            );
        }
    }

    #[test]
    fn page_ranges() {
        assert_eq!(
            parse_page_ranges("1-100,200-300").unwrap().0,
            [(1, 100), (200, 300)]
        );
        assert_eq!(parse_page_ranges("7").unwrap().0, [(7, 7)]);
        assert_eq!(parse_page_ranges(" 3 - 4 ").unwrap().0, [(3, 4)]);
        assert!(parse_page_ranges("5-1").unwrap_err().0.contains("reversed"));
        assert!(
            parse_page_ranges("a-3")
                .unwrap_err()
                .0
                .contains("not a page index")
        );
        assert!(
            parse_page_ranges("1-2,")
                .unwrap_err()
                .0
                .contains("empty range")
        );
        assert!(parse_page_ranges("-3").is_err());
    }

    #[test]
    fn writeback_needs_a_mode() {
        let e = Cli::try_parse_from(["zramctl", "writeback", "zram0"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let ok =
            Cli::try_parse_from(["zramctl", "writeback", "zram0", "--idle", "--huge"]).unwrap();
        assert!(matches!(
            ok.command,
            Command::Writeback(WritebackArgs {
                idle: true,
                huge: true,
                ..
            })
        ));
    }

    #[test]
    fn top_arguments() {
        let c = Cli::try_parse_from(["zramctl", "top"]).unwrap();
        let Command::Top(t) = c.command else {
            panic!("not top")
        };
        assert_eq!(
            (t.device, t.interval, t.once, t.json),
            (None, 1.0, false, false)
        );
        assert_eq!(t.probes, ProbeKind::Auto);
        let c = Cli::try_parse_from([
            "zramctl",
            "top",
            "zram1",
            "--once",
            "--json",
            "--interval",
            "0.5",
            "--latency-dev",
            "/dev/loop0",
            "--probes",
            "raw-tp",
        ])
        .unwrap();
        let Command::Top(t) = c.command else {
            panic!("not top")
        };
        assert_eq!(t.device.as_deref(), Some("zram1"));
        assert_eq!(t.interval, 0.5);
        assert_eq!(t.latency_devs, [PathBuf::from("/dev/loop0")]);
        assert_eq!(t.probes, ProbeKind::RawTp);
        // --json needs --once; silly intervals are refused.
        assert!(Cli::try_parse_from(["zramctl", "top", "--json"]).is_err());
        for bad in ["0", "-1", "abc", "NaN", "1e9"] {
            assert!(
                Cli::try_parse_from(["zramctl", "top", "--interval", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn setup_backing_file_arguments() {
        let c = Cli::try_parse_from([
            "zramctl",
            "setup",
            "zram0",
            "--size",
            "1G",
            "--backing-file",
            "/var/swap/z0",
            "--backing-size",
            "512M",
            "--encrypt",
            "--recomp-algorithm",
            "zstd",
        ])
        .unwrap();
        let Command::Setup(s) = c.command else {
            panic!("not setup")
        };
        assert_eq!(
            s.backing_size,
            crate::provision::BackingSize::Bytes(512 << 20)
        );
        assert!(s.encrypt);
        assert_eq!(s.recomp_algorithms, ["zstd"]);
        let c = Cli::try_parse_from([
            "zramctl",
            "setup",
            "zram0",
            "--size",
            "1G",
            "--backing-file",
            "/f",
        ])
        .unwrap();
        let Command::Setup(s) = c.command else {
            panic!("not setup")
        };
        assert_eq!(s.backing_size, crate::provision::BackingSize::Auto);
        for bad in [
            &["--encrypt"][..],
            &["--backing-size", "1G"],
            &["--backing-file", "/f", "--backing-dev", "/dev/vdb"],
            &["--backing-file", "/f", "--backing-size", "huge"],
        ] {
            let mut args = vec!["zramctl", "setup", "zram0", "--size", "1G"];
            args.extend_from_slice(bad);
            assert!(Cli::try_parse_from(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recompress_arguments() {
        assert!(Cli::try_parse_from(["zramctl", "recompress", "zram0"]).is_err());
        assert!(
            Cli::try_parse_from(["zramctl", "recompress", "zram0", "--all", "--idle"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "zramctl",
                "recompress",
                "zram0",
                "--idle",
                "--priority",
                "4"
            ])
            .is_err()
        );
        let c = Cli::try_parse_from([
            "zramctl",
            "recompress",
            "zram0",
            "--idle",
            "--huge",
            "--threshold",
            "1000",
            "--algo",
            "zstd",
        ])
        .unwrap();
        let Command::Recompress(r) = c.command else {
            panic!("not recompress")
        };
        assert!(r.idle && r.huge && !r.all);
        assert_eq!((r.threshold, r.algo.as_deref()), (Some(1000), Some("zstd")));
    }

    #[test]
    fn batch_zero_is_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["zramctl", "batch", "zram0", "0"]).is_err());
    }
}
