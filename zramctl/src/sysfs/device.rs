//! One device's attributes: reads, writes, feature detection.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    Error, Result, SysfsIo,
    error::{LIMIT_EXHAUSTED, explain_write_errno},
    model::*,
    parse::ParseError,
    parse::{parse_bool01, parse_one_u64},
};

/// One zram or rzram device, `/sys/block/<name>/`.
#[derive(Clone)]
pub struct Device {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) io: Arc<dyn SysfsIo>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device").field("name", &self.name).finish()
    }
}

/// Attributes that only exist with CONFIG_ZRAM_WRITEBACK.
const WRITEBACK_ATTRS: [&str; 6] = [
    "backing_dev",
    "writeback",
    "writeback_limit",
    "writeback_limit_enable",
    "bd_stat",
    "writeback_batch_size",
];

fn missing_attr_hint(attr: &str) -> &'static str {
    match attr {
        "writeback_batch_size" => {
            "this kernel's zram has no batched writeback (added in Linux 6.19)"
        }
        a if WRITEBACK_ATTRS.contains(&a) => {
            "this kernel's zram was built without CONFIG_ZRAM_WRITEBACK"
        }
        "recomp_algorithm" | "recompress" => {
            "this kernel's zram was built without CONFIG_ZRAM_MULTI_COMP"
        }
        _ => "this kernel's zram does not have this attribute",
    }
}

impl Device {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/sys/block/<name>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the attribute exists (feature detection).
    pub fn has(&self, attr: &str) -> bool {
        self.io.exists(&self.dir.join(attr))
    }

    /// The error for an attribute this kernel does not have.
    fn unsupported(&self, attr: &'static str) -> Error {
        // Without CONFIG_ZRAM_WRITEBACK every writeback attribute is missing;
        // say that rather than the more specific reason of the newest ones.
        let hint = if WRITEBACK_ATTRS.contains(&attr) && !self.has("writeback") {
            missing_attr_hint("writeback")
        } else if matches!(attr, "recomp_algorithm" | "recompress")
            && self.name.starts_with("rzram")
        {
            "this rzram module has no recompression (recomp_algorithm/recompress attributes)"
        } else {
            missing_attr_hint(attr)
        };
        Error::Unsupported {
            device: self.name.clone(),
            attr,
            hint,
        }
    }

    fn read_raw(&self, attr: &'static str) -> Result<String> {
        self.io.read(&self.dir.join(attr)).map_err(|io| {
            if io.kind() == io::ErrorKind::NotFound && !self.has(attr) {
                self.unsupported(attr)
            } else {
                Error::Read {
                    device: self.name.clone(),
                    attr,
                    io,
                }
            }
        })
    }

    fn read_parsed<T>(
        &self,
        attr: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T> {
        let content = self.read_raw(attr)?;
        parse(&content).map_err(|reason| Error::Parse {
            device: self.name.clone(),
            attr,
            content,
            reason,
        })
    }

    /// Like [`Self::read_parsed`], but `None` when the kernel lacks the attribute.
    fn read_optional<T>(
        &self,
        attr: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>> {
        match self.read_parsed(attr, parse) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Unsupported { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one attribute, turning the errno into an [`Error`] with meaning.
    pub fn write_attr(&self, attr: &'static str, value: &str) -> Result<()> {
        self.io.write(&self.dir.join(attr), value).map_err(|e| {
            // ENOENT is also what the kernel returns for e.g. a backing_dev
            // path that does not exist: only a missing file means no support.
            if e.kind() == io::ErrorKind::NotFound && !self.has(attr) {
                return self.unsupported(attr);
            }
            let errno = e.raw_os_error();
            Error::Write {
                device: self.name.clone(),
                attr,
                value: value.to_owned(),
                errno,
                meaning: explain_write_errno(attr, errno),
            }
        })
    }

    /// Device numbers from `dev` (`253:0`).
    pub fn dev_numbers(&self) -> Result<(u32, u32)> {
        self.read_parsed("dev", |s| {
            let (a, b) = s.trim().split_once(':').ok_or("expected MAJOR:MINOR")?;
            Ok((
                a.parse().map_err(|_| "bad major number")?,
                b.parse().map_err(|_| "bad minor number")?,
            ))
        })
    }

    pub fn disksize(&self) -> Result<u64> {
        self.read_parsed("disksize", parse_one_u64)
    }

    pub fn initstate(&self) -> Result<bool> {
        self.read_parsed("initstate", parse_bool01)
    }

    pub fn comp_algorithm(&self) -> Result<CompAlgorithms> {
        self.read_parsed("comp_algorithm", CompAlgorithms::parse)
    }

    pub fn mm_stat(&self) -> Result<MmStat> {
        self.read_parsed("mm_stat", MmStat::parse)
    }

    pub fn io_stat(&self) -> Result<IoStat> {
        self.read_parsed("io_stat", IoStat::parse)
    }

    /// `None` without CONFIG_ZRAM_WRITEBACK.
    pub fn bd_stat(&self) -> Result<Option<BdStat>> {
        self.read_optional("bd_stat", BdStat::parse)
    }

    pub fn debug_stat(&self) -> Result<DebugStat> {
        self.read_parsed("debug_stat", DebugStat::parse)
    }

    pub fn backing_dev(&self) -> Result<BackingDev> {
        Ok(
            match self.read_optional("backing_dev", |s| Ok(s.trim().to_owned()))? {
                None => BackingDev::Unsupported,
                Some(p) if p == "none" || p.is_empty() => BackingDev::None,
                Some(p) => BackingDev::Path(p.into()),
            },
        )
    }

    pub fn writeback_limit(&self) -> Result<WritebackLimit> {
        let Some(enabled) = self.read_optional("writeback_limit_enable", parse_bool01)? else {
            return Ok(WritebackLimit::Unsupported);
        };
        if !enabled {
            return Ok(WritebackLimit::Off);
        }
        let pages_left = self.read_parsed("writeback_limit", parse_one_u64)?;
        Ok(WritebackLimit::On { pages_left })
    }

    /// `None` on kernels without batched writeback.
    pub fn writeback_batch_size(&self) -> Result<Option<u64>> {
        self.read_optional("writeback_batch_size", parse_one_u64)
    }

    /// Whether the device can recompress (upstream CONFIG_ZRAM_MULTI_COMP,
    /// or an rzram with the attributes): detected by attribute presence.
    pub fn has_recompression(&self) -> bool {
        self.has("recompress") && self.has("recomp_algorithm")
    }

    /// The configured secondary algorithms; `None` without recompression support.
    pub fn recomp_algorithms(&self) -> Result<Option<Vec<RecompAlgorithm>>> {
        self.read_optional("recomp_algorithm", RecompAlgorithm::parse_all)
    }

    /// Sets the secondary algorithm of `priority` (1-3); only before disksize.
    pub fn set_recomp_algorithm(&self, algo: &str, priority: u32) -> Result<()> {
        self.write_attr(
            "recomp_algorithm",
            &format!("algo={algo} priority={priority}"),
        )
    }

    /// Recompresses pages with a secondary algorithm, synchronously.
    pub fn recompress(&self, req: &Recompress) -> Result<()> {
        if !self.has("recompress") {
            return Err(self.unsupported("recompress"));
        }
        self.write_attr("recompress", &req.sysfs_value())
    }

    /// Slots recompressed with a secondary algorithm, from debugfs
    /// `zram/<name>/block_state` (CONFIG_ZRAM_MEMORY_TRACKING, upstream
    /// only); `None` when that file cannot be read.
    pub fn recompressed_slots(&self) -> Option<u64> {
        let root = self.dir.parent()?.parent()?;
        let path = root
            .join("kernel/debug/zram")
            .join(&self.name)
            .join("block_state");
        let text = self.io.read(&path).ok()?;
        Some(
            text.lines()
                .filter(|l| l.split_whitespace().nth(2).is_some_and(|f| f.contains('r')))
                .count() as u64,
        )
    }

    pub fn set_disksize(&self, bytes: u64) -> Result<()> {
        self.write_attr("disksize", &bytes.to_string())
    }

    pub fn set_comp_algorithm(&self, algo: &str) -> Result<()> {
        self.write_attr("comp_algorithm", algo)
    }

    pub fn set_backing_dev(&self, path: &Path) -> Result<()> {
        self.write_attr("backing_dev", &path.to_string_lossy())
    }

    pub fn set_mem_limit(&self, bytes: u64) -> Result<()> {
        self.write_attr("mem_limit", &bytes.to_string())
    }

    pub fn reset(&self) -> Result<()> {
        self.write_attr("reset", "1")
    }

    pub fn mark_idle(&self, mode: IdleMode) -> Result<()> {
        self.write_attr("idle", &mode.sysfs_value())
    }

    pub fn set_writeback_limit(&self, pages: u64) -> Result<()> {
        self.write_attr("writeback_limit", &pages.to_string())
    }

    pub fn set_writeback_limit_enable(&self, on: bool) -> Result<()> {
        self.write_attr("writeback_limit_enable", if on { "1" } else { "0" })
    }

    pub fn set_writeback_batch_size(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Err(Error::Invalid {
                device: self.name.clone(),
                message: "writeback_batch_size must be at least 1".into(),
            });
        }
        self.write_attr("writeback_batch_size", &n.to_string())
    }

    /// Writes back the given modes and waits for it: one write per mode
    /// (the kernel stops parsing after a mode), and all page ranges together
    /// in one write.
    ///
    /// An `EIO` while a writeback limit is enabled and spent is reported as
    /// "writeback limit exhausted", which is what the kernel means by it.
    pub fn writeback(&self, modes: &[WritebackMode]) -> Result<()> {
        if !self.has("writeback") {
            return Err(self.unsupported("writeback"));
        }
        if modes.is_empty() {
            return Err(Error::Invalid {
                device: self.name.clone(),
                message: "no writeback mode given".into(),
            });
        }
        let (ranges, kinds): (Vec<&WritebackMode>, Vec<&WritebackMode>) = modes
            .iter()
            .partition(|m| matches!(m, WritebackMode::Pages { .. }));
        let mut writes: Vec<String> = kinds.iter().map(|m| m.sysfs_token()).collect();
        if !ranges.is_empty() {
            writes.push(
                ranges
                    .iter()
                    .map(|m| m.sysfs_token())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        for value in writes {
            self.write_writeback(&value)?;
        }
        Ok(())
    }

    fn write_writeback(&self, value: &str) -> Result<()> {
        match self.write_attr("writeback", value) {
            Err(Error::Write {
                device,
                attr,
                value,
                errno: Some(libc::EIO),
                meaning,
            }) => {
                let meaning = match self.writeback_limit() {
                    Ok(WritebackLimit::On { pages_left: 0 }) => LIMIT_EXHAUSTED.to_owned(),
                    _ => meaning,
                };
                Err(Error::Write {
                    device,
                    attr,
                    value,
                    errno: Some(libc::EIO),
                    meaning,
                })
            }
            other => other,
        }
    }
}
