//! What the VM suites share beyond one device: result files, polling,
//! ports, `bd_stat`, and device-mapper slices of the scratch disk.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{scratch_disk, sh, sysfs_read};

/// 512-byte sectors per MiB (dm tables count sectors).
pub const SECTORS_PER_MIB: u64 = 2048;

/// Fails unless run by `cargo xtask vm-test` (which sets `ZRAMCTL_VM`).
pub fn in_vm() {
    assert!(
        std::env::var_os("ZRAMCTL_VM").is_some(),
        "run with cargo xtask vm-test"
    );
}

/// Where a run keeps its result files: `$ZRAMCTL_RESULTS` in the VM (the
/// run's directory under `target/vm-results`), else the temp dir.
pub fn results_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A TCP port free on 127.0.0.1 at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it holds; panics naming `what` after `limit`.
#[track_caller]
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bd_stat` of `dev`: (blocks in use, reads, writes), in 4K pages.
pub fn bd_stat(dev: &str) -> (u64, u64, u64) {
    let v: Vec<u64> = sysfs_read(dev, "bd_stat")
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

/// A device-mapper device over a slice of the VM's scratch disk: dm-linear
/// when made, its table swappable under a live user (dm `error`,
/// dm-flakey) and back. Removed when dropped.
pub struct DmSlice {
    pub name: String,
    /// `/dev/dm-N` (no udev in the guest: devtmpfs makes it).
    pub path: PathBuf,
    pub offset_mib: u64,
    pub size_mib: u64,
}

impl DmSlice {
    /// `size_mib` MiB of the scratch disk from `offset_mib`, named `name`
    /// (a device of that name left by an earlier run is removed first).
    pub fn linear(name: &str, offset_mib: u64, size_mib: u64) -> DmSlice {
        let mut d = DmSlice {
            name: name.into(),
            path: PathBuf::new(),
            offset_mib,
            size_mib,
        };
        d.path = dm_create(name, &d.linear_table());
        d
    }

    pub fn sectors(&self) -> u64 {
        self.size_mib * SECTORS_PER_MIB
    }

    /// The table it was made with.
    pub fn linear_table(&self) -> String {
        format!(
            "0 {} linear {} {}",
            self.sectors(),
            scratch_disk().display(),
            self.offset_mib * SECTORS_PER_MIB
        )
    }

    /// Always "down" (up 0 s, down 3600 s) with one feature
    /// (`error_writes`, `drop_writes`): reads pass, writes fail or vanish.
    pub fn flakey_table(&self, feature: &str) -> String {
        format!(
            "0 {} flakey {} {} 0 3600 1 {feature}",
            self.sectors(),
            scratch_disk().display(),
            self.offset_mib * SECTORS_PER_MIB
        )
    }

    /// Swaps the live table (the device stays open by its user meanwhile).
    pub fn load(&self, table: &str) {
        sh(&format!(
            "dmsetup suspend {n} && dmsetup reload {n} --table '{table}' && dmsetup resume {n}",
            n = self.name
        ));
    }

    /// Every I/O fails (dm's `error` target).
    pub fn fail_all_io(&self) {
        self.load(&format!("0 {} error", self.sectors()));
    }

    /// Back to the linear table.
    pub fn restore(&self) {
        self.load(&self.linear_table());
    }

    /// `dm-N`, for /sys/block/dm-N/make-it-fail.
    pub fn kname(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for DmSlice {
    fn drop(&mut self) {
        let _ = Command::new("dmsetup")
            .args(["resume", &self.name])
            .stderr(Stdio::null())
            .status();
        dm_remove(&self.name);
    }
}

/// Creates device-mapper device `name` with `table` (a device of that name
/// left by an earlier run is removed first); its `/dev/dm-N` once it
/// exists (no udev in the guest: devtmpfs makes it).
pub fn dm_create(name: &str, table: &str) -> PathBuf {
    let _ = Command::new("dmsetup")
        .args(["remove", "--retry", name])
        .stderr(Stdio::null())
        .status();
    sh(&format!("dmsetup create {name} --table '{table}'"));
    let kname = sh(&format!(
        "dmsetup info -c --noheadings -o blkdevname {name}"
    ));
    let path = PathBuf::from(format!("/dev/{}", kname.trim()));
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    path
}

/// Removes device-mapper device `name` (best effort: for guards).
pub fn dm_remove(name: &str) {
    let _ = Command::new("dmsetup")
        .args(["remove", "--retry", name])
        .status();
}
