//! The values zram's attributes hold, typed, and the requests written to them.

use std::path::PathBuf;

use serde::Serialize;

/// `mm_stat`: memory statistics, in bytes except the page counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmStat {
    /// Uncompressed size of the data stored.
    pub orig_data_size: u64,
    /// Compressed size of the data stored.
    pub compr_data_size: u64,
    /// Memory allocated for it, including allocator fragmentation.
    pub mem_used_total: u64,
    /// Memory limit, 0 for none.
    pub mem_limit: u64,
    /// Peak of `mem_used_total`.
    pub mem_used_max: u64,
    /// Pages that are one repeated word and take no memory.
    pub same_pages: u64,
    /// Pages freed by compaction.
    pub pages_compacted: u64,
    /// Incompressible pages stored whole (absent before Linux 4.19).
    pub huge_pages: Option<u64>,
    /// Huge pages ever stored since init (absent before Linux 5.15).
    pub huge_pages_since: Option<u64>,
}

/// `io_stat`: failed and invalid I/O counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IoStat {
    pub failed_reads: u64,
    pub failed_writes: u64,
    /// Always 0 on kernels since 6.x (kept for ABI).
    pub invalid_io: u64,
    pub notify_free: u64,
}

/// `bd_stat`: backing-device use, in pages (CONFIG_ZRAM_WRITEBACK only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BdStat {
    /// Pages currently stored on the backing device.
    pub bd_count: u64,
    /// Pages read back from it since init.
    pub bd_reads: u64,
    /// Pages written to it since init.
    pub bd_writes: u64,
}

/// `debug_stat`: explicitly unstable; kept as its version and raw numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DebugStat {
    pub version: u32,
    pub values: Vec<u64>,
}

/// `comp_algorithm`: the available algorithms, with the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompAlgorithms {
    pub current: String,
    pub available: Vec<String>,
}

/// `backing_dev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "path", rename_all = "snake_case")]
pub enum BackingDev {
    /// The kernel was built without CONFIG_ZRAM_WRITEBACK.
    Unsupported,
    /// Writeback is supported but no backing device is set.
    None,
    Path(PathBuf),
}

/// `writeback_limit_enable` + `writeback_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WritebackLimit {
    Unsupported,
    Off,
    /// Pages that may still be written back.
    On {
        pages_left: u64,
    },
}

/// What `idle` marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Every allocated slot.
    All,
    /// Slots not accessed for at least this many seconds
    /// (needs CONFIG_ZRAM_TRACK_ENTRY_ACTIME).
    Age(u64),
}

impl IdleMode {
    pub fn sysfs_value(self) -> String {
        match self {
            IdleMode::All => "all".into(),
            IdleMode::Age(s) => s.to_string(),
        }
    }
}

/// One writeback request. The kernel takes one mode per write, or any
/// number of `page_index`/`page_indexes` in one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritebackMode {
    Idle,
    Huge,
    HugeIdle,
    Incompressible,
    /// Pages `first..=last`.
    Pages {
        first: u64,
        last: u64,
    },
}

impl WritebackMode {
    /// The token the kernel expects for this mode.
    pub fn sysfs_token(self) -> String {
        match self {
            WritebackMode::Idle => "idle".into(),
            WritebackMode::Huge => "huge".into(),
            WritebackMode::HugeIdle => "huge_idle".into(),
            WritebackMode::Incompressible => "incompressible".into(),
            WritebackMode::Pages { first, last } if first == last => format!("page_index={first}"),
            // Inclusive on both ends, like the kernel's parse_page_indexes().
            WritebackMode::Pages { first, last } => format!("page_indexes={first}-{last}"),
        }
    }
}

/// One configured recompression (secondary) algorithm: `recomp_algorithm`
/// prints `#PRIO: algo [algo] ...` per configured priority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecompAlgorithm {
    /// 1..=3 (0 is the primary `comp_algorithm`).
    pub priority: u32,
    pub algorithms: CompAlgorithms,
}

/// Which pages `recompress` picks (`type=`); `None` in [`Recompress`] is
/// every stored page (filtered by the threshold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecompressType {
    Idle,
    Huge,
    HugeIdle,
}

/// One write to `recompress`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recompress {
    pub kind: Option<RecompressType>,
    /// Only pages whose compressed size is at least this many bytes.
    pub threshold: Option<u64>,
    /// The secondary algorithm by name (`algo=`).
    pub algo: Option<String>,
    /// The secondary algorithm by priority (`priority=`, preferred).
    pub priority: Option<u32>,
    /// At most this many pages (`max_pages=`).
    pub max_pages: Option<u64>,
}

impl Recompress {
    /// The line the kernel expects, e.g. `type=idle threshold=2000 priority=1`.
    pub fn sysfs_value(&self) -> String {
        let mut v = Vec::new();
        if let Some(k) = self.kind {
            v.push(
                match k {
                    RecompressType::Idle => "type=idle",
                    RecompressType::Huge => "type=huge",
                    RecompressType::HugeIdle => "type=huge_idle",
                }
                .to_string(),
            );
        }
        if let Some(t) = self.threshold {
            v.push(format!("threshold={t}"));
        }
        if let Some(m) = self.max_pages {
            v.push(format!("max_pages={m}"));
        }
        if let Some(a) = &self.algo {
            v.push(format!("algo={a}"));
        }
        if let Some(p) = self.priority {
            v.push(format!("priority={p}"));
        }
        v.join(" ")
    }
}
