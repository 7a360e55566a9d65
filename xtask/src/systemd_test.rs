//! `cargo xtask systemd-test`: the .deb installed on a system booted with
//! real systemd as PID 1, and the daemon run by its units.
//!
//! PID 1 on this project's machines is not systemd. Two ways:
//!
//! - default: `systemd-nspawn --boot` of a Debian bookworm root made by
//!   debootstrap (cached outside the clone in
//!   `$ZRAMCTL_CACHE/systemd-root/bookworm`, made once: a few minutes), each
//!   run on an overlay of it that is thrown away. The container's systemd
//!   runs the units on a zram device the test hot-adds on this host (its
//!   node and sysfs directory bound into the container); this host's kernel
//!   enforces the units' whole sandbox. This host's zram has no writeback,
//!   so writeback and the writeback limit are not checked here.
//!   (`NSPAWN_SCRIPT`; about 11 s in the container.)
//! - `--vm`: our kernel (zram with writeback) under QEMU with systemd as
//!   init from the same root over 9p, adding a backing file set up by
//!   zramctl-setup.service, writeback under the unit, and `systemctl stop`
//!   restoring the admin's writeback limit (`GUEST_SCRIPT`; about 190 s in
//!   the VM).
//!
//! Both: a oneshot unit runs the checks, writes `SDTEST ok|FAIL` lines, and
//! powers off; logs land in `target/systemd-test/`.

use std::{
    fs,
    io::Read as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    deb,
    kernel::{self, Kernel},
    util::{cache_dir, progress, run},
};

#[derive(clap::Args, Debug)]
pub struct SystemdTestArgs {
    /// Package the release build (default: the debug build cargo test made).
    #[arg(long)]
    pub release: bool,
    /// Boot our kernel with systemd as init under QEMU (zram with
    /// writeback) instead of a systemd-nspawn container on this host.
    #[arg(long)]
    pub vm: bool,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

impl Default for SystemdTestArgs {
    fn default() -> Self {
        Self {
            release: false,
            vm: false,
            timeout: 900,
        }
    }
}

/// Packages on top of debootstrap's minbase: systemd as init, udev for
/// device nodes, dmsetup for encrypted backing files, curl for /metrics,
/// e2fsprogs for the backing files' filesystem.
const INCLUDE: &str = "systemd,systemd-sysv,udev,dmsetup,curl,e2fsprogs,procps,kmod";

/// The debootstrapped root, made once.
fn rootfs() -> Result<PathBuf> {
    let base = cache_dir().join("systemd-root");
    let root = base.join("bookworm");
    let stamp = base.join("bookworm.done");
    let want = format!("bookworm minbase {INCLUDE}\n");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && root.is_dir() {
        return Ok(root);
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("debootstrap is missing (scripts/setup.sh installs it)");
    }
    let tmp = base.join("bookworm.tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&base)?;
    let t = Instant::now();
    progress("debootstrap: a Debian bookworm root with systemd (once; a few minutes)");
    run(Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={INCLUDE}")])
        .arg("bookworm")
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .stdout(Stdio::null()))
    .context("debootstrap failed")?;
    fs::rename(&tmp, &root)?;
    fs::write(&stamp, want)?;
    progress(&format!(
        "debootstrap done ({:.0}s)",
        t.elapsed().as_secs_f64()
    ));
    Ok(root)
}

/// lintian on the package: no tag but the overridden ones (see
/// docs/packaging.md for each).
fn lintian(debfile: &std::path::Path) -> Result<()> {
    let out = match Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(debfile)
        .output()
    {
        Ok(o) => o,
        Err(e) => bail!("lintian: {e} (scripts/setup.sh installs it)"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let tags: Vec<&str> = text
        .lines()
        .filter(|l| l.len() > 2 && l.as_bytes()[1] == b':' && !l.starts_with("N:"))
        .collect();
    if !tags.is_empty() {
        bail!(
            "lintian tags on {}:\n{}",
            debfile.display(),
            tags.join("\n")
        );
    }
    progress("lintian: no tags (one justified override)");
    Ok(())
}

/// KVM if `cargo xtask vm` found it working on this boot, else TCG.
fn accel() -> &'static str {
    match std::env::var("ZRAMCTL_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    match fs::read_to_string(cache_dir().join("kvm-probe")) {
        Ok(c) if c.trim() == format!("{} kvm", boot_id.trim()) => "kvm",
        _ => "tcg",
    }
}

/// A throwaway overlay of the cached root for one run (`merged`, written to
/// `upper`) and its `results` directory; unmounted and removed when dropped.
struct RunDir {
    dir: PathBuf,
    merged: PathBuf,
    results: PathBuf,
}

impl RunDir {
    /// Makes `$ZRAMCTL_CACHE/systemd-run/NAME` afresh and mounts the overlay
    /// of `root` on its `merged` (`what` names it in an error).
    fn overlay(root: &std::path::Path, name: &str, what: &str) -> Result<Self> {
        let dir = cache_dir().join("systemd-run").join(name);
        let _ = fs::remove_dir_all(&dir);
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        let (merged, results) = (dir.join("merged"), dir.join("results"));
        for d in [&upper, &work, &merged, &results] {
            fs::create_dir_all(d)?;
        }
        let run_dir = RunDir {
            dir,
            merged,
            results,
        };
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                root.display(),
                upper.display(),
                work.display()
            ))
            .arg(&run_dir.merged))
        .with_context(|| format!("mounting the overlay of the {what}"))?;
        Ok(run_dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.merged).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const GUEST_UNIT: &str = "[Unit]
Description=zramctl packaging test (cargo xtask systemd-test)
After=basic.target systemd-udev-settle.service
Wants=systemd-udev-settle.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zramctl-systemd-test
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
";

/// The daemon's config in the guest: periods of seconds, a backing file
/// set up by zramctl-setup.service.
const GUEST_CONFIG: &str = r#"[daemon]
interval_secs = 1
metrics_listen = "127.0.0.1:9466"
probes = "off"
[policy]
budget_per_day = "64G"
budget_burst = "64M"
max_pages_per_round = 4096
period_secs = 2
min_interval_secs = 1
idle_age_initial_secs = 2
idle_age_floor_secs = 2
idle_age_ceiling_secs = 64
backoff_initial_secs = 1
backoff_max_secs = 4
batch_min = 1
batch_max = 64
batch_initial = 4
target_p99_ms = 40.0
[[device]]
name = "zram0"
disksize = "128M"
algorithm = "lz4"
[device.backing]
file = "/var/lib/zramctl/zram0.img"
size = "64M"
"#;

/// The checks, run in the guest by a oneshot unit under systemd.
const GUEST_SCRIPT: &str = r#"#!/bin/bash
# cargo xtask systemd-test, in the guest: systemd is PID 1.
R=/results
mkdir -p $R
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 results $R
exec > >(tee $R/guest.log) 2>&1
pass=0; fail=0
ok() { echo "SDTEST ok: $*"; pass=$((pass+1)); }
bad() { echo "SDTEST FAIL: $*"; fail=$((fail+1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
  echo "SDTEST summary: $pass passed, $fail failed"
  echo "$pass $fail" > $R/summary
  sync
  systemctl poweroff --no-block
  exit 0
}
stamp() { echo "SDTEST time: $1 at ${SECONDS}s"; }

check "PID 1 is systemd ($(cat /proc/1/comm))" test "$(cat /proc/1/comm)" = systemd
echo "util-linux's: $(/sbin/zramctl -V)"

# --- the package --------------------------------------------------------------
dpkg -i /root/zramctl.deb || { bad "dpkg -i"; finish; }
check "dpkg -i: /sbin/zramctl is ours" test "$(readlink -f /sbin/zramctl)" = /usr/bin/zramctl
check "util-linux's diverted to /sbin/zramctl.util-linux" test -x /sbin/zramctl.util-linux
check "zramctl -V names ours" grep -q "util-linux 2.38 compatible" <(zramctl -V)
check "the diversions are registered" test "$(dpkg-divert --list | grep -c 'by zramctl')" = 3
check "the config is a conffile" grep -q /etc/zramctl/zramctl.toml /var/lib/dpkg/info/zramctl.conffiles
check "zramctl(8) is ours" sh -c 'zcat /usr/share/man/man8/zramctl.8.gz | grep -q "UTIL-LINUX FORMS"'

# --- the config: zram0 with a backing file, short periods ----------------------
mkfs.ext4 -q -F /dev/vda && mkdir -p /var/lib/zramctl && mount /dev/vda /var/lib/zramctl
cp /root/zramctl.toml /etc/zramctl/zramctl.toml
check "config valid" zramctl daemon --check --config /etc/zramctl/zramctl.toml

# The setup unit first, so that the admin's writeback limit is set before
# the daemon finds it.
systemctl start zramctl-setup.service
check "zramctl-setup.service active" systemctl is-active -q zramctl-setup.service
check "zram0 set up by it (disksize 128M)" test "$(cat /sys/block/zram0/disksize)" = 134217728
bdev=$(cat /sys/block/zram0/backing_dev)
echo "zram0 backing_dev: $bdev"
# The setup unit's mount namespace is gone once it has run, so the kernel
# shows the node's path inside its detached devtmpfs mount (/loop0).
case $bdev in /dev/*) bnode=$bdev ;; *) bnode=/dev/${bdev#/} ;; esac
check "zram0's backing device ($bdev) is the loop device over the file" sh -c "losetup -a | grep zram0.img | grep -q '^$bnode:'"
echo 1 > /sys/block/zram0/writeback_limit_enable
echo 777 > /sys/block/zram0/writeback_limit
stamp "setup"

systemctl start zramctl.service
check "systemctl start zramctl: active (READY received)" systemctl is-active -q zramctl.service
status=$(systemctl show -p StatusText --value zramctl.service)
echo "STATUS=$status"
check "STATUS= text sent" test -n "$status"
pid=$(systemctl show -p MainPID --value zramctl.service)
caps=$(grep CapEff /proc/$pid/status | awk '{print $2}')
echo "daemon CapEff: $caps ($(capsh --decode=$caps 2>/dev/null | cut -d= -f2))"
check "daemon runs with only CAP_SYS_RESOURCE/CAP_PERFMON/CAP_BPF (CapEff 0x$caps)" test $((0x$caps & ~((1<<24)|(1<<38)|(1<<39)))) = 0
check "daemon sees / read-only" sh -c "nsenter -t $pid -m sh -c '! touch /usr/zramctl-probe' 2>/dev/null"
check "daemon can write zram0's sysfs" sh -c "nsenter -t $pid -m sh -c 'test -w /sys/block/zram0/idle'"
stamp "ready"

check "/metrics answers on loopback" sh -c 'curl -sf http://127.0.0.1:9466/metrics | grep -q "^zramctl_"'

# --- writeback under the unit ---------------------------------------------------
yes "zramctl systemd test: compressible but not same-filled $(date)" | head -c 32M | dd of=/dev/zram0 bs=1M oflag=direct status=none
wb=0
for i in $(seq 1 90); do
  wb=$(awk '{print $3}' /sys/block/zram0/bd_stat)
  [ "$wb" -gt 0 ] && break
  sleep 1
done
echo "bd_stat: $(cat /sys/block/zram0/bd_stat) after ${i}s"
check "writeback happened (bd_writes $wb pages)" test "$wb" -gt 0
# bd_stat moves while the round runs; the daemon counts a round's pages when
# it ends (/metrics serves the last page meanwhile): wait for that too.
counted() { curl -sf http://127.0.0.1:9466/metrics | grep "^zramctl_writeback_pages_total" | awk '{s+=$2} END {exit !(s>0)}'; }
for i in $(seq 1 60); do counted && break; sleep 1; done
check "the daemon counted it (after ${i}s)" counted
check "the daemon watches the backing device" sh -c '! journalctl -u zramctl.service | grep -q "not watching backing device"'
stamp "writeback"

# --- reload with a bad config --------------------------------------------------
cp /etc/zramctl/zramctl.toml /root/good.toml
printf '[daemon]\ninterval_secs = "soon"\n' > /etc/zramctl/zramctl.toml
systemctl reload zramctl.service
sleep 2
check "bad config: still active" systemctl is-active -q zramctl.service
check "bad config: the journal says the reload was refused" sh -c 'journalctl -u zramctl.service --no-pager | grep -q "reload refused"'
check "bad config: /metrics still answers" sh -c 'curl -sf http://127.0.0.1:9466/metrics | grep -q "^zramctl_"'
check "bad config: same main PID" test "$(systemctl show -p MainPID --value zramctl.service)" = "$pid"
cp /root/good.toml /etc/zramctl/zramctl.toml
systemctl reload zramctl.service
sleep 2
check "good config: reloaded" sh -c 'journalctl -u zramctl.service --no-pager | grep -q "configuration reloaded"'

# --- stop -------------------------------------------------------------------------
systemctl stop zramctl.service
check "stop: inactive" sh -c '! systemctl is-active -q zramctl.service'
check "stop: writeback_limit back to the admin's 777 (now $(cat /sys/block/zram0/writeback_limit))" test "$(cat /sys/block/zram0/writeback_limit)" = 777
check "stop: writeback_limit_enable back to 1" test "$(cat /sys/block/zram0/writeback_limit_enable)" = 1
journalctl -u zramctl-setup.service -u zramctl.service --no-pager -o cat > $R/journal.txt
stamp "stop"

# --- removal ------------------------------------------------------------------------
systemctl stop zramctl-setup.service
dpkg -r zramctl >/dev/null
check "dpkg -r: util-linux's zramctl is back" grep -q "from util-linux" <(/sbin/zramctl -V)
check "dpkg -r: no diversions left" test "$(dpkg-divert --list | grep -c 'by zramctl')" = 0
check "dpkg -r: util-linux's man page is back" test -e /usr/share/man/man8/zramctl.8.gz
finish
"#;

/// Runs the test (in a container, or with `--vm` in the VM); returns
/// (passed, failed).
pub fn systemd_test(args: &SystemdTestArgs) -> Result<(u64, u64)> {
    if args.vm {
        vm_test(args)
    } else {
        nspawn_test(args)
    }
}

fn vm_test(args: &SystemdTestArgs) -> Result<(u64, u64)> {
    let t0 = Instant::now();
    let root = rootfs()?;
    let kernel: Kernel = kernel::build(&kernel::KernelArgs::default())?;
    let debfile = deb::deb(&deb::DebArgs {
        dev: !args.release,
        lintian: false,
        out: None,
    })?;
    lintian(&debfile)?;
    let guard = RunDir::overlay(&root, &std::process::id().to_string(), "guest root")?;
    let (merged, results) = (guard.merged.clone(), guard.results.clone());
    let m = |rel: &str| merged.join(rel);
    fs::copy(&debfile, m("root/zramctl.deb"))?;
    fs::write(m("root/zramctl.toml"), GUEST_CONFIG)?;
    fs::write(m("usr/local/sbin/zramctl-systemd-test"), GUEST_SCRIPT)?;
    fs::write(
        m("etc/systemd/system/zramctl-systemd-test.service"),
        GUEST_UNIT,
    )?;
    fs::create_dir_all(m("etc/systemd/system/multi-user.target.wants"))?;
    let _ = fs::remove_file(m(
        "etc/systemd/system/multi-user.target.wants/zramctl-systemd-test.service",
    ));
    std::os::unix::fs::symlink(
        "/etc/systemd/system/zramctl-systemd-test.service",
        m("etc/systemd/system/multi-user.target.wants/zramctl-systemd-test.service"),
    )?;
    run(Command::new("chmod")
        .arg("755")
        .arg(m("usr/local/sbin/zramctl-systemd-test")))?;
    fs::write(m("etc/hostname"), "zramctl-systemd-test\n")?;
    // No login prompt on the console, no network configuration to wait for.
    for unit in ["serial-getty@ttyS0.service", "getty@tty1.service"] {
        let _ = std::os::unix::fs::symlink("/dev/null", m(&format!("etc/systemd/system/{unit}")));
    }
    let disk = guard.dir.join("backing.img");
    fs::File::create(&disk)?.set_len(256 << 20)?;

    let accel = accel();
    let console = results.join("console.log");
    let append = "console=ttyS0 root=sdroot rootfstype=9p \
                  rootflags=trans=virtio,version=9p2000.L,msize=1048576,cache=mmap rw \
                  init=/lib/systemd/systemd panic=-1 zram.num_devices=1 \
                  systemd.show_status=1 quiet loglevel=4";
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        accel,
        "-cpu",
        if accel == "kvm" { "host" } else { "max" },
    ])
    .args(["-m", "2048", "-smp", "2", "-nographic", "-no-reboot"])
    .args(["-monitor", "none", "-nodefaults"])
    .arg("-kernel")
    .arg(&kernel.bzimage)
    .args(["-append", append])
    .args([
        "-chardev",
        &format!("file,id=con,path={}", console.display()),
    ])
    .args(["-serial", "chardev:con"])
    .args([
        "-virtfs",
        &format!(
            "local,path={},mount_tag=sdroot,security_model=passthrough,multidevs=remap",
            merged.display()
        ),
    ])
    .args([
        "-virtfs",
        &format!(
            "local,path={},mount_tag=results,security_model=none",
            results.display()
        ),
    ])
    .args([
        "-drive",
        &format!("file={},if=virtio,format=raw,cache=none", disk.display()),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    progress(&format!(
        "booting our kernel with systemd as init ({accel}); the checks run in a unit"
    ));
    let boot = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let mut stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut shown = 0usize;
    let status = loop {
        let text = fs::read_to_string(&console).unwrap_or_default();
        for line in text[shown.min(text.len())..].lines() {
            if line.contains("SDTEST") {
                println!("  {}", line.trim_start_matches(|c: char| c != 'S'));
            }
        }
        shown = text.rfind('\n').map_or(shown, |i| i + 1);
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if boot.elapsed() > Duration::from_secs(args.timeout) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let qemu_err = err_thread.join().unwrap_or_default();
    let summary = fs::read_to_string(results.join("summary")).unwrap_or_default();
    let keep = crate::util::repo_root().join("target/systemd-test");
    let _ = fs::remove_dir_all(&keep);
    fs::create_dir_all(&keep)?;
    for f in ["console.log", "guest.log", "journal.txt", "summary"] {
        let _ = fs::copy(results.join(f), keep.join(f));
    }
    drop(guard);
    let mut it = summary.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (Some(Some(passed)), Some(Some(failed))) = (it.next(), it.next()) else {
        let tail: String = fs::read_to_string(keep.join("console.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!(
            "the guest did not finish the checks ({}; qemu: {status:?} {qemu_err}); console tail:\n{tail}",
            if status.is_none() {
                "timed out"
            } else {
                "no summary"
            }
        );
    };
    progress(&format!(
        "systemd test: {passed} passed, {failed} failed (VM {:.0}s, {:.0}s in all; logs in target/systemd-test)",
        boot.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ));
    if failed > 0 {
        bail!("systemd test: {failed} checks failed (target/systemd-test/guest.log)");
    }
    Ok((passed, failed))
}

/// The checks in the container: the host's zram (no writeback here), a
/// device of the test's own made with hot_add.
const NSPAWN_SCRIPT: &str = r#"#!/bin/bash
exec > >(tee /results/log) 2>&1
pass=0; fail=0
ok() { echo "SDTEST ok: $*"; pass=$((pass+1)); }
bad() { echo "SDTEST FAIL: $*"; fail=$((fail+1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
check "PID 1 is systemd ($(cat /proc/1/comm))" test "$(cat /proc/1/comm)" = systemd
dpkg -i /root/zramctl.deb || bad "dpkg -i"
check "dpkg -i: ours at /sbin/zramctl" grep -q "util-linux 2.38 compatible" <(/sbin/zramctl -V)
check "dpkg -i: util-linux's at /sbin/zramctl.util-linux" grep -q "from util-linux" <(/sbin/zramctl.util-linux -V)
check "dpkg -i: three diversions" test "$(dpkg-divert --list | grep -c 'by zramctl')" = 3
check "the config is a conffile" grep -q /etc/zramctl/zramctl.toml /var/lib/dpkg/info/zramctl.conffiles
cp /root/zramctl.toml /etc/zramctl/zramctl.toml
DEV=$(sed -n 's/^name = "\(.*\)"/\1/p' /etc/zramctl/zramctl.toml)
PORT=$(sed -n 's/^metrics_listen = "127.0.0.1:\(.*\)"/\1/p' /etc/zramctl/zramctl.toml)
systemctl start zramctl.service
check "zramctl-setup.service ran before it (active)" systemctl is-active -q zramctl-setup.service
check "$DEV set up by it (disksize $(cat /sys/block/$DEV/disksize))" test "$(cat /sys/block/$DEV/disksize)" = 67108864
check "systemctl start zramctl: active (READY received)" systemctl is-active -q zramctl.service
status=$(systemctl show -p StatusText --value zramctl.service)
echo "STATUS=$status"
check "STATUS= text sent" test -n "$status"
pid=$(systemctl show -p MainPID --value zramctl.service)
caps=$(awk '/^CapEff/ {print $2}' /proc/$pid/status)
check "daemon: capabilities within CAP_SYS_RESOURCE/CAP_PERFMON/CAP_BPF (CapEff $caps)" test $((0x$caps & ~((1<<24)|(1<<38)|(1<<39)))) = 0
check "daemon: / read-only in its mount namespace" sh -c "nsenter -t $pid -m sh -c '! touch /usr/zramctl-probe' 2>/dev/null"
check "daemon: $DEV's sysfs writable in it" sh -c "nsenter -t $pid -m sh -c 'test -w /sys/block/$DEV/idle'"
check "daemon: seccomp filter on" test "$(awk '/^Seccomp:/ {print $2}' /proc/$pid/status)" = 2
check "daemon: no new privileges" test "$(awk '/^NoNewPrivs:/ {print $2}' /proc/$pid/status)" = 1
check "/metrics answers on loopback" sh -c "curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^zramctl_'"
cp /etc/zramctl/zramctl.toml /root/good.toml
printf '[daemon]\ninterval_secs = "soon"\n' > /etc/zramctl/zramctl.toml
systemctl reload zramctl.service; sleep 2
check "bad config: still active, same PID" test "$(systemctl is-active zramctl.service) $(systemctl show -p MainPID --value zramctl.service)" = "active $pid"
check "bad config: the journal says the reload was refused" sh -c 'journalctl -u zramctl.service --no-pager | grep -q "reload refused"'
check "bad config: /metrics still answers" sh -c "curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^zramctl_'"
cp /root/good.toml /etc/zramctl/zramctl.toml
systemctl reload zramctl.service; sleep 2
check "good config: reloaded" sh -c 'journalctl -u zramctl.service --no-pager | grep -q "configuration reloaded"'
systemctl stop zramctl.service
check "stop: inactive" sh -c '! systemctl is-active -q zramctl.service'
journalctl -u zramctl-setup.service -u zramctl.service --no-pager -o short-monotonic > /results/journal.txt
systemctl stop zramctl-setup.service
dpkg -r zramctl >/dev/null
check "dpkg -r: util-linux's zramctl is back" grep -q "from util-linux" <(/sbin/zramctl -V)
check "dpkg -r: no diversions left" test "$(dpkg-divert --list | grep -c 'by zramctl')" = 0
echo "SDTEST summary: $pass passed, $fail failed"
echo "$pass $fail" > /results/summary
sync
systemctl poweroff --no-block
"#;

const NSPAWN_UNIT: &str = "[Unit]
Description=zramctl packaging test (cargo xtask systemd-test)
After=basic.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zramctl-systemd-test
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
";

/// Undoes the container run: overlay, the test's zram device, nspawn's
/// tmpfs.
struct NspawnRun {
    dev: Option<u32>,
    run_tmpfs: bool,
    /// Dropped after the fields above are undone.
    _run_dir: RunDir,
}

impl Drop for NspawnRun {
    fn drop(&mut self) {
        if let Some(n) = self.dev {
            let _ = fs::write(format!("/sys/block/zram{n}/reset"), "1");
            let _ = fs::write("/sys/class/zram-control/hot_remove", n.to_string());
        }
        if self.run_tmpfs {
            let _ = Command::new("umount").arg("/run/systemd/nspawn").status();
        }
    }
}

/// The .deb in a `systemd-nspawn --boot` container of the debootstrapped
/// root on this host (systemd as the container's PID 1; this host's kernel
/// enforces the units' whole sandbox), driving a zram device the test makes.
fn nspawn_test(args: &SystemdTestArgs) -> Result<(u64, u64)> {
    let t0 = Instant::now();
    if Command::new("systemd-nspawn")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("systemd-nspawn is missing (scripts/setup.sh installs systemd-container)");
    }
    if !std::path::Path::new("/sys/class/zram-control/hot_add").exists() {
        bail!("no /sys/class/zram-control/hot_add: zram is not loaded (modprobe zram)");
    }
    let root = rootfs()?;
    let debfile = deb::deb(&deb::DebArgs {
        dev: !args.release,
        lintian: false,
        out: None,
    })?;
    lintian(&debfile)?;
    let run_dir = RunDir::overlay(
        &root,
        &format!("nspawn-{}", std::process::id()),
        "container root",
    )?;
    let (merged, results) = (run_dir.merged.clone(), run_dir.results.clone());
    // nspawn cleans its propagation directory with a check that it is on
    // tmpfs; without systemd on the host /run may not be one.
    let run_tmpfs = !Command::new("mountpoint")
        .args(["-q", "/run/systemd/nspawn"])
        .status()
        .is_ok_and(|s| s.success());
    if run_tmpfs {
        fs::create_dir_all("/run/systemd/nspawn")?;
        run(Command::new("mount").args(["-t", "tmpfs", "zramctl-nspawn", "/run/systemd/nspawn"]))?;
    }
    let mut guard = NspawnRun {
        dev: None,
        run_tmpfs,
        _run_dir: run_dir,
    };
    let n: u32 = fs::read_to_string("/sys/class/zram-control/hot_add")?
        .trim()
        .parse()
        .context("hot_add")?;
    guard.dev = Some(n);
    let node = PathBuf::from(format!("/dev/zram{n}"));
    for _ in 0..200 {
        if node.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A port of its own: others may be listening on 9466.
    let port = 19466 + (std::process::id() % 1000) as u16;
    let m = |rel: &str| merged.join(rel);
    fs::copy(&debfile, m("root/zramctl.deb"))?;
    fs::write(
        m("root/zramctl.toml"),
        format!(
            "[daemon]\ninterval_secs = 1\nmetrics_listen = \"127.0.0.1:{port}\"\nprobes = \"off\"\n[policy]\nperiod_secs = 2\nmin_interval_secs = 1\n[[device]]\nname = \"zram{n}\"\ndisksize = \"64M\"\nalgorithm = \"lz4\"\n"
        ),
    )?;
    fs::write(m("usr/local/sbin/zramctl-systemd-test"), NSPAWN_SCRIPT)?;
    run(Command::new("chmod")
        .arg("755")
        .arg(m("usr/local/sbin/zramctl-systemd-test")))?;
    fs::write(
        m("etc/systemd/system/zramctl-systemd-test.service"),
        NSPAWN_UNIT,
    )?;
    fs::create_dir_all(m("etc/systemd/system/multi-user.target.wants"))?;
    std::os::unix::fs::symlink(
        "/etc/systemd/system/zramctl-systemd-test.service",
        m("etc/systemd/system/multi-user.target.wants/zramctl-systemd-test.service"),
    )?;
    fs::create_dir_all(m("results"))?;
    progress(&format!(
        "systemd-nspawn --boot: the .deb and zramctl's units on zram{n}"
    ));
    let boot = Instant::now();
    let out = Command::new("timeout")
        .arg(args.timeout.to_string())
        .args([
            "systemd-nspawn",
            "-q",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
        ])
        .arg("-D")
        .arg(&merged)
        .arg(format!("--bind={}:/results", results.display()))
        .arg(format!("--bind=/dev/zram{n}"))
        .arg(format!("--bind=/sys/devices/virtual/block/zram{n}"))
        .stdin(Stdio::null())
        .output()
        .context("running systemd-nspawn")?;
    let log = fs::read_to_string(results.join("log")).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.starts_with("SDTEST") || l.starts_with("STATUS="))
    {
        println!("  {line}");
    }
    let keep = crate::util::repo_root().join("target/systemd-test");
    let _ = fs::remove_dir_all(&keep);
    fs::create_dir_all(&keep)?;
    for f in ["log", "journal.txt", "summary"] {
        let _ = fs::copy(results.join(f), keep.join(f));
    }
    let _ = fs::write(keep.join("nspawn.log"), &out.stdout);
    let summary = fs::read_to_string(results.join("summary")).unwrap_or_default();
    drop(guard);
    let mut it = summary.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (Some(Some(passed)), Some(Some(failed))) = (it.next(), it.next()) else {
        bail!(
            "the container did not finish the checks (nspawn: {}); see target/systemd-test/",
            out.status
        );
    };
    progress(&format!(
        "systemd test: {passed} passed, {failed} failed (container {:.0}s, {:.0}s in all; logs in target/systemd-test)",
        boot.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ));
    if failed > 0 {
        bail!("systemd test: {failed} checks failed (target/systemd-test/log)");
    }
    Ok((passed, failed))
}
