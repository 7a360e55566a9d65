//! A simulated zram sysfs, for tests and for trying zramctl without root.
//!
//! [`FakeZram`] implements [`SysfsIo`] over an in-memory model of zram
//! devices that follows `zram_drv.c` (Linux 7.3): the same file formats and
//! the same errnos for the same mistakes (EBUSY when configuring an
//! initialised device, EINVAL before disksize, ENODEV for writeback without a
//! backing device, EIO when the writeback limit is spent, …). Errnos can also
//! be injected per attribute to exercise error paths such as EACCES.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use crate::sysfs::SysfsIo;

/// One simulated stored page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakePage {
    pub stored: bool,
    pub idle: bool,
    pub huge: bool,
    pub incompressible: bool,
    pub written_back: bool,
    /// Recompressed with a secondary algorithm (takes an eighth of a page).
    pub recompressed: bool,
}

/// State of one simulated device.
#[derive(Clone, Debug)]
pub struct FakeDevice {
    pub disksize: u64,
    pub algorithms: Vec<String>,
    pub algorithm: String,
    /// CONFIG_ZRAM_WRITEBACK: the writeback attributes exist.
    pub writeback_support: bool,
    /// Linux ≥ 6.19: writeback_batch_size exists.
    pub batch_support: bool,
    /// CONFIG_ZRAM_TRACK_ENTRY_ACTIME: `idle <secs>` works.
    pub actime: bool,
    /// CONFIG_ZRAM_MULTI_COMP: `recomp_algorithm` and `recompress` exist.
    pub recomp_support: bool,
    /// Secondary algorithms by priority (1-3).
    pub recomp_algorithms: BTreeMap<u32, String>,
    pub backing_dev: Option<String>,
    pub limit_enable: bool,
    pub limit: u64,
    pub batch: u64,
    pub mem_limit: u64,
    /// Mounted or used as swap: reset gives EBUSY.
    pub in_use: bool,
    pub pages: Vec<FakePage>,
    pub bd_reads: u64,
    pub bd_writes: u64,
    pub failed_reads: u64,
    pub failed_writes: u64,
}

impl Default for FakeDevice {
    fn default() -> Self {
        FakeDevice {
            disksize: 0,
            algorithms: ["lzo", "lzo-rle", "lz4", "zstd"].map(String::from).to_vec(),
            algorithm: "lzo-rle".into(),
            writeback_support: true,
            batch_support: true,
            actime: true,
            recomp_support: true,
            recomp_algorithms: BTreeMap::new(),
            backing_dev: None,
            limit_enable: false,
            limit: 0,
            batch: 32,
            mem_limit: 0,
            in_use: false,
            pages: Vec::new(),
            bd_reads: 0,
            bd_writes: 0,
            failed_reads: 0,
            failed_writes: 0,
        }
    }
}

const PAGE: u64 = 4096;

impl FakeDevice {
    fn init(&self) -> bool {
        self.disksize > 0
    }

    fn count(&self, f: impl Fn(&FakePage) -> bool) -> u64 {
        self.pages.iter().filter(|p| f(p)).count() as u64
    }

    fn in_ram(p: &FakePage) -> bool {
        p.stored && !p.written_back
    }

    /// Compressed size of a page: a quarter page, an eighth once
    /// recompressed, a whole page when huge.
    fn compressed_size(p: &FakePage) -> u64 {
        if p.huge {
            PAGE
        } else if p.recompressed {
            PAGE / 8
        } else {
            PAGE / 4
        }
    }

    /// Renders `mm_stat` as zram_drv.c does: compressed pages take a quarter
    /// page, huge ones a whole page.
    fn mm_stat(&self) -> String {
        let orig = self.count(Self::in_ram) * PAGE;
        let huge = self.count(|p| Self::in_ram(p) && p.huge);
        let compr: u64 = self
            .pages
            .iter()
            .filter(|p| Self::in_ram(p))
            .map(Self::compressed_size)
            .sum();
        format!(
            "{orig:8} {compr:8} {compr:8} {:8} {compr:8} {:8} {:8} {huge:8} {huge:8}\n",
            self.mem_limit, 0, 0
        )
    }

    fn writeback_one(&mut self, i: usize) -> io::Result<bool> {
        let p = self.pages[i];
        if !Self::in_ram(&p) {
            return Ok(false);
        }
        if self.limit_enable {
            if self.limit == 0 {
                return Err(errno(libc::EIO));
            }
            self.limit -= 1;
        }
        self.pages[i].written_back = true;
        self.bd_writes += 1;
        Ok(true)
    }

    fn writeback(&mut self, value: &str) -> io::Result<()> {
        if !self.init() {
            return Err(errno(libc::EINVAL));
        }
        if self.backing_dev.is_none() {
            return Err(errno(libc::ENODEV));
        }
        let n = self.pages.len() as u64;
        let mut targets: Vec<usize> = Vec::new();
        for tok in value.split_whitespace() {
            let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
            let mode = match (k, v) {
                (m, "") | ("type", m) => Some(m),
                _ => None,
            };
            if let Some(m) = mode {
                let pick: fn(&FakePage) -> bool = match m {
                    "idle" => |p| p.idle,
                    "huge" => |p| p.huge,
                    "huge_idle" => |p| p.huge && p.idle,
                    "incompressible" => |p| p.incompressible,
                    _ => return Err(errno(libc::EINVAL)),
                };
                targets.extend((0..self.pages.len()).filter(|&i| pick(&self.pages[i])));
                break; // like the kernel: a mode ends the parsing
            }
            let (lo, hi) = match k {
                "page_index" => {
                    let lo: u64 = v.parse().map_err(|_| errno(libc::EINVAL))?;
                    (lo, lo)
                }
                "page_indexes" => {
                    let (a, b) = v.split_once('-').ok_or_else(|| errno(libc::EINVAL))?;
                    let a: u64 = a.parse().map_err(|_| errno(libc::EINVAL))?;
                    let b: u64 = b.parse().map_err(|_| errno(libc::EINVAL))?;
                    (a, b)
                }
                _ => return Err(errno(libc::EINVAL)),
            };
            if lo >= n || hi >= n || lo > hi {
                return Err(errno(libc::ERANGE));
            }
            targets.extend(lo as usize..=hi as usize);
        }
        let mut result = Ok(());
        for i in targets {
            if let Err(e) = self.writeback_one(i) {
                result = Err(e);
                break;
            }
        }
        // As 7.3's scan_slots_for_writeback: slots left behind (the limit
        // ran out) keep their idle mark; written ones are no longer in RAM.
        result
    }

    /// `recompress` as zram_drv.c parses and applies it (huge_class_size
    /// is 3072 here; a recompressed page stops being huge).
    fn recompress(&mut self, value: &str) -> io::Result<()> {
        let (mut idle, mut huge) = (false, false);
        let mut threshold = 0u64;
        let mut max_pages = u64::MAX;
        let (mut algo, mut prio) = (None, None);
        for tok in value.split_whitespace() {
            let (k, v) = tok.split_once('=').ok_or_else(|| errno(libc::EINVAL))?;
            if v.is_empty() {
                return Err(errno(libc::EINVAL));
            }
            match k {
                "type" => match v {
                    "idle" => idle = true,
                    "huge" => huge = true,
                    "huge_idle" => (idle, huge) = (true, true),
                    _ => return Err(errno(libc::EINVAL)),
                },
                "threshold" => threshold = parse_u64(v)?,
                "max_pages" => max_pages = parse_u64(v)?,
                "algo" => algo = Some(v.to_owned()),
                "priority" => prio = Some(parse_u64(v)? as u32),
                _ => {}
            }
        }
        if threshold >= 3072 || !self.init() {
            return Err(errno(libc::EINVAL));
        }
        let prio = match (algo, prio) {
            (_, Some(p)) if !(1..=3).contains(&p) => return Err(errno(libc::EINVAL)),
            (Some(a), Some(p)) if self.recomp_algorithms.get(&p) != Some(&a) => {
                return Err(errno(libc::EINVAL));
            }
            (_, Some(p)) => p,
            (Some(a), None) => {
                *self
                    .recomp_algorithms
                    .iter()
                    .find(|(_, x)| **x == a)
                    .ok_or_else(|| errno(libc::EINVAL))?
                    .0
            }
            (None, None) => 1,
        };
        if !self.recomp_algorithms.contains_key(&prio) {
            return Err(errno(libc::EINVAL));
        }
        let mut left = max_pages;
        for p in &mut self.pages {
            if left == 0 {
                break;
            }
            if !Self::in_ram(p) || p.recompressed || p.incompressible {
                continue;
            }
            if (idle && !p.idle) || (huge && !p.huge) {
                continue;
            }
            if Self::compressed_size(p) < threshold {
                continue;
            }
            left -= 1;
            p.idle = false; // the kernel clears the idle mark of what it touched
            p.recompressed = true;
            p.huge = false;
        }
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        if self.in_use {
            return Err(errno(libc::EBUSY));
        }
        *self = FakeDevice {
            algorithms: std::mem::take(&mut self.algorithms),
            writeback_support: self.writeback_support,
            batch_support: self.batch_support,
            actime: self.actime,
            recomp_support: self.recomp_support,
            ..FakeDevice::default()
        };
        Ok(())
    }
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

fn parse_u64(v: &str) -> io::Result<u64> {
    v.trim().parse().map_err(|_| errno(libc::EINVAL))
}

#[derive(Debug, Default)]
struct State {
    devices: BTreeMap<String, FakeDevice>,
    /// attr file name -> errno returned on the next access.
    inject: BTreeMap<String, i32>,
    writes: Vec<(String, String, String)>,
}

/// A simulated sysfs root holding zram devices. Clones share state.
#[derive(Clone, Debug, Default)]
pub struct FakeZram {
    state: Arc<Mutex<State>>,
}

/// The fake's sysfs root (any path works; this one makes paths readable).
pub const FAKE_ROOT: &str = "/fake-sys";

impl FakeZram {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a device with the given state.
    pub fn add(&self, name: &str, dev: FakeDevice) -> &Self {
        self.lock().devices.insert(name.to_owned(), dev);
        self
    }

    /// Runs `f` on a device's state (to arrange a scenario or check it).
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&mut FakeDevice) -> R) -> R {
        let mut s = self.lock();
        f(s.devices.get_mut(name).expect("no such fake device"))
    }

    /// Simulates `n` pages written to the device by a user: stored pages,
    /// every `huge_every`th one incompressible.
    pub fn store_pages(&self, name: &str, n: usize, huge_every: usize) {
        self.with(name, |d| {
            let slots = (d.disksize / PAGE) as usize;
            d.pages.resize(slots, FakePage::default());
            for (i, p) in d.pages.iter_mut().take(n).enumerate() {
                *p = FakePage {
                    stored: true,
                    huge: huge_every > 0 && i % huge_every == 0,
                    ..FakePage::default()
                };
            }
        });
    }

    /// The next access to attribute `attr` (of any device) fails with `errno`.
    pub fn inject(&self, attr: &str, errno: i32) {
        self.lock().inject.insert(attr.to_owned(), errno);
    }

    /// Every successful write so far: (device, attribute, value).
    pub fn writes(&self) -> Vec<(String, String, String)> {
        self.lock().writes.clone()
    }

    fn split(path: &Path) -> Option<(String, Option<String>)> {
        let rel = path.strip_prefix(Path::new(FAKE_ROOT).join("block")).ok()?;
        let mut it = rel.iter();
        let dev = it.next()?.to_string_lossy().into_owned();
        let attr = it.next().map(|a| a.to_string_lossy().into_owned());
        Some((dev, attr))
    }

    fn exists_attr(d: &FakeDevice, attr: &str) -> bool {
        match attr {
            "disksize" | "initstate" | "reset" | "comp_algorithm" | "mm_stat" | "io_stat"
            | "debug_stat" | "idle" | "mem_limit" | "mem_used_max" | "compact" => true,
            "backing_dev"
            | "writeback"
            | "writeback_limit"
            | "writeback_limit_enable"
            | "bd_stat" => d.writeback_support,
            "writeback_batch_size" => d.writeback_support && d.batch_support,
            "recomp_algorithm" | "recompress" => d.recomp_support,
            _ => false,
        }
    }
}

impl SysfsIo for FakeZram {
    fn read(&self, path: &Path) -> io::Result<String> {
        let mut s = self.lock();
        let (dev, attr) = Self::split(path).ok_or_else(|| errno(libc::ENOENT))?;
        let attr = attr.ok_or_else(|| errno(libc::EISDIR))?;
        if let Some(e) = s.inject.remove(&attr) {
            return Err(errno(e));
        }
        let d = s.devices.get(&dev).ok_or_else(|| errno(libc::ENOENT))?;
        if !Self::exists_attr(d, &attr) {
            return Err(errno(libc::ENOENT));
        }
        Ok(match attr.as_str() {
            "disksize" => format!("{}\n", d.disksize),
            "initstate" => format!("{}\n", u8::from(d.init())),
            "comp_algorithm" => {
                let mut out = String::new();
                for a in &d.algorithms {
                    if *a == d.algorithm {
                        out.push_str(&format!("[{a}] "));
                    } else {
                        out.push_str(&format!("{a} "));
                    }
                }
                out.push('\n');
                out
            }
            "mm_stat" => d.mm_stat(),
            "io_stat" => format!("{:8} {:8} 0 {:8}\n", d.failed_reads, d.failed_writes, 0),
            "debug_stat" => "version: 1\n0        0\n".into(),
            "bd_stat" => format!(
                "{:8} {:8} {:8}\n",
                d.count(|p| p.stored && p.written_back),
                d.bd_reads,
                d.bd_writes
            ),
            "backing_dev" => format!("{}\n", d.backing_dev.as_deref().unwrap_or("none")),
            "writeback_limit" => format!("{}\n", d.limit),
            "writeback_limit_enable" => format!("{}\n", u8::from(d.limit_enable)),
            "writeback_batch_size" => format!("{}\n", d.batch),
            "recomp_algorithm" => {
                let mut out = String::new();
                for (prio, cur) in &d.recomp_algorithms {
                    out.push_str(&format!("#{prio}: "));
                    for a in &d.algorithms {
                        if a == cur {
                            out.push_str(&format!("[{a}] "));
                        } else {
                            out.push_str(&format!("{a} "));
                        }
                    }
                    out.push('\n');
                }
                out
            }
            _ => return Err(errno(libc::EACCES)), // write-only attribute
        })
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut s = self.lock();
        let (dev, attr) = Self::split(path).ok_or_else(|| errno(libc::ENOENT))?;
        let attr = attr.ok_or_else(|| errno(libc::EISDIR))?;
        if let Some(e) = s.inject.remove(&attr) {
            return Err(errno(e));
        }
        let d = s.devices.get_mut(&dev).ok_or_else(|| errno(libc::ENOENT))?;
        if !Self::exists_attr(d, &attr) {
            return Err(errno(libc::ENOENT));
        }
        let v = value.trim();
        match attr.as_str() {
            "disksize" => {
                if d.init() {
                    return Err(errno(libc::EBUSY));
                }
                let size = parse_u64(v)?;
                if size == 0 {
                    return Err(errno(libc::EINVAL));
                }
                d.disksize = size.div_ceil(PAGE) * PAGE;
                d.pages = vec![FakePage::default(); (d.disksize / PAGE) as usize];
            }
            "comp_algorithm" => {
                if d.init() {
                    return Err(errno(libc::EBUSY));
                }
                if !d.algorithms.iter().any(|a| a == v) {
                    return Err(errno(libc::EINVAL));
                }
                d.algorithm = v.to_owned();
            }
            "backing_dev" => {
                if d.init() {
                    return Err(errno(libc::EBUSY));
                }
                if !v.starts_with('/') {
                    return Err(errno(libc::ENOENT));
                }
                d.backing_dev = Some(v.to_owned());
            }
            "reset" => {
                if parse_u64(v)? != 0 {
                    d.reset()?;
                }
            }
            "mem_limit" => d.mem_limit = parse_u64(v)?,
            "idle" => {
                let cutoff_all = v == "all";
                if !cutoff_all && (!d.actime || v.parse::<u32>().is_err()) {
                    return Err(errno(libc::EINVAL));
                }
                if !d.init() {
                    return Err(errno(libc::EINVAL));
                }
                // The fake has no clock: any age marks every stored page.
                for p in d.pages.iter_mut().filter(|p| p.stored && !p.written_back) {
                    p.idle = true;
                }
            }
            "writeback" => d.writeback(v)?,
            "writeback_limit" => d.limit = parse_u64(v)?,
            "writeback_limit_enable" => {
                d.limit_enable = match v {
                    "0" => false,
                    "1" => true,
                    _ => return Err(errno(libc::EINVAL)),
                }
            }
            "writeback_batch_size" => {
                let n = parse_u64(v)?;
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(errno(libc::EINVAL));
                }
                d.batch = n;
            }
            "recomp_algorithm" => {
                let mut algo = None;
                let mut prio = 1u64;
                for tok in v.split_whitespace() {
                    match tok.split_once('=') {
                        Some(("algo", a)) if !a.is_empty() => algo = Some(a.to_owned()),
                        Some(("priority", p)) => prio = parse_u64(p)?,
                        Some((_, "")) | None => return Err(errno(libc::EINVAL)),
                        _ => {}
                    }
                }
                let algo = algo.ok_or_else(|| errno(libc::EINVAL))?;
                if !(1..=3).contains(&prio) {
                    return Err(errno(libc::EINVAL));
                }
                if d.init() {
                    return Err(errno(libc::EBUSY));
                }
                if !d.algorithms.contains(&algo) {
                    return Err(errno(libc::EINVAL));
                }
                d.recomp_algorithms.insert(prio as u32, algo);
            }
            "recompress" => d.recompress(v)?,
            "compact" | "mem_used_max" => {}
            _ => return Err(errno(libc::EACCES)), // read-only attribute
        }
        s.writes.push((dev, attr, v.to_owned()));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if dir != Path::new(FAKE_ROOT).join("block") {
            return Err(errno(libc::ENOENT));
        }
        let mut names: Vec<String> = self.lock().devices.keys().cloned().collect();
        // A real /sys/block also lists other disks; zramctl must skip them.
        names.extend(["loop0".to_string(), "vda".to_string()]);
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        match Self::split(path) {
            Some((dev, None)) => s.devices.contains_key(&dev),
            Some((dev, Some(attr))) => s
                .devices
                .get(&dev)
                .is_some_and(|d| Self::exists_attr(d, &attr)),
            None => path == Path::new(FAKE_ROOT) || path == PathBuf::from(FAKE_ROOT).join("block"),
        }
    }
}
