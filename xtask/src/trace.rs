//! `cargo xtask trace <name>|all`: records the policy lab's swap traces in
//! the VM: real programs (PostgreSQL + pgbench under a zipfian load, sqlite3
//! under zipfian point queries, GCC compiling libbpf) each in a memory cgroup
//! small enough that it swaps to upstream zram0 (with a dm-linear slice of
//! the VM disk as backing device), while `zramctl trace record` writes the
//! per-slot events. The traces land compressed (zstd -19) in
//! `docs/bench/traces/<name>.trace.zst`, where `cargo xtask bench policy`
//! reads them.

use std::{fs, path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernel,
    util::{progress, repo_root, run},
    vm,
};

/// The traces and what each runs.
pub const TRACES: &[(&str, &str)] = &[
    (
        "pgbench",
        "PostgreSQL 15 (shared_buffers 96 MiB) in a 48 MiB cgroup, pgbench -i -s 4, then 4 clients of a zipfian (s=1.1) read/update mix for 150 s",
    ),
    (
        "sqlite",
        "sqlite3 with a 120 MiB page cache over a 100k-row (1 KiB blobs) table in a 40 MiB cgroup: a full scan, then 30k zipfian (s=1.0) point reads and updates",
    ),
    (
        "gcc",
        "GCC 12 -O2 compiling libbpf (tools/lib/bpf/libbpf.c and btf.c of Linux 7.3, 110 MiB peak RSS natively) in a 48 MiB cgroup",
    ),
];

#[derive(clap::Args)]
pub struct TraceArgs {
    /// pgbench, sqlite, gcc or all.
    pub name: String,
    /// Keep the VM's results directory here instead of a fresh one.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct GuestArgs {
    #[arg(long)]
    pub zramctl: PathBuf,
    /// The copy of libbpf's sources the gcc trace compiles.
    #[arg(long)]
    pub gcc_src: PathBuf,
    pub names: Vec<String>,
}

pub fn traces_dir() -> PathBuf {
    repo_root().join("docs/bench/traces")
}

pub fn trace(args: &TraceArgs) -> Result<()> {
    let names: Vec<&str> = if args.name == "all" {
        TRACES.iter().map(|t| t.0).collect()
    } else if let Some(t) = TRACES.iter().find(|t| t.0 == args.name) {
        vec![t.0]
    } else {
        bail!(
            "unknown trace {:?}: expected one of {} or all",
            args.name,
            TRACES.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
        );
    };
    crate::setup(false)?;
    let k = kernel::build(&kernel::KernelArgs::default())?;
    run(crate::cargo().args(["build", "--locked", "-q", "-p", "zramctl"]))?;
    let me = std::env::current_exe().context("finding the xtask binary")?;
    let guest_bin = repo_root().join("target/trace-xtask");
    fs::copy(&me, &guest_bin)?;
    // Copies, so that a host build meanwhile cannot swap them under the guest.
    let zramctl = repo_root().join("target/trace-zramctl");
    fs::copy(repo_root().join("target/debug/zramctl"), &zramctl)?;
    // libbpf's sources (and the tools headers they include) from the
    // kernel tree, copied where the guest sees them (/root is a tmpfs there).
    let gcc_src = repo_root().join("target/trace-src");
    let _ = fs::remove_dir_all(&gcc_src);
    fs::create_dir_all(&gcc_src)?;
    run(Command::new("cp")
        .args([
            "-a",
            "--parents",
            "tools/include",
            "tools/arch/x86/include",
            "tools/lib/bpf",
        ])
        .arg(&gcc_src)
        .current_dir(kernel::source_dir()))?;
    let out = args
        .results
        .clone()
        .unwrap_or_else(|| repo_root().join("target/trace"));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out)?;
    let t = Instant::now();
    progress(&format!("booting the VM for {}", names.join(", ")));
    let code = vm::run(
        &k,
        &vm::VmArgs {
            results: Some(out.clone()),
            timeout: 3600,
            memory: 2048,
            disk: 2048,
            ..vm::VmArgs::with_command(format!(
                "{} trace-guest --zramctl {} --gcc-src {} {}",
                guest_bin.display(),
                zramctl.display(),
                gcc_src.display(),
                names.join(" ")
            ))
        },
    )?;
    if code != 0 {
        bail!(
            "recording failed in the VM (exit code {code}); see {}",
            out.display()
        );
    }
    fs::create_dir_all(traces_dir())?;
    for n in &names {
        let raw = out.join(format!("{n}.trace"));
        let dst = traces_dir().join(format!("{n}.trace.zst"));
        run(Command::new("zstd")
            .args(["-19", "-q", "-f", "-T0", "-o"])
            .arg(&dst)
            .arg(&raw))?;
        progress(&format!(
            "{n}: {} ({:.1} MiB raw, {:.1} MiB compressed)",
            dst.display(),
            fs::metadata(&raw)?.len() as f64 / 1048576.0,
            fs::metadata(&dst)?.len() as f64 / 1048576.0
        ));
    }
    progress(&format!(
        "traces recorded in {:.0}s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn sh(cmd: &str) -> Result<String> {
    println!("# {cmd}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.trim().is_empty() {
        println!("{}", text.trim_end());
    }
    if !out.status.success() {
        bail!("{cmd} failed: {}", out.status);
    }
    Ok(text)
}

const CG: &str = "/sys/fs/cgroup/trace";

/// The guest side: one zram0 per trace, fresh each time.
pub fn guest(args: &GuestArgs) -> Result<()> {
    let results = PathBuf::from(std::env::var("ZRAMCTL_RESULTS").unwrap_or("/tmp/results".into()));
    let disk = std::env::var("ZRAMCTL_BACKING_DISK").unwrap_or_else(|_| "/dev/vda".into());
    let z = args.zramctl.display().to_string();
    // 512 MiB of the disk as backing device, 1 GiB as ext4 for data.
    sh(&format!(
        "dmsetup create trace-backing --table '0 {} linear {disk} 0'",
        512 * 2048
    ))?;
    sh(&format!(
        "dmsetup create trace-data --table '0 {} linear {disk} {}'",
        1024 * 2048,
        512 * 2048
    ))?;
    // No udev in the VM: no /dev/mapper links, the dm-N nodes only. The
    // root is the host's, read-only: the data volume goes on the /tmp tmpfs.
    let data = format!(
        "/dev/{}",
        sh("dmsetup info -c --noheadings -o blkdevname trace-data")?.trim()
    );
    sh(&format!(
        "mkfs.ext4 -q -F {data} && mkdir -p /tmp/data && mount {data} /tmp/data"
    ))?;
    sh("echo +memory > /sys/fs/cgroup/cgroup.subtree_control")?;
    sh("sysctl -qw vm.swappiness=100 kernel.bpf_stats_enabled=1")?;
    utilisation_check(&z)?;
    for name in &args.names {
        let t = Instant::now();
        println!("\n=== trace {name} ===");
        let backing = format!(
            "/dev/{}",
            sh("dmsetup info -c --noheadings -o blkdevname trace-backing")?.trim()
        );
        sh(&format!(
            "{z} setup zram0 --size 512M --algorithm lz4 --backing-dev {backing}"
        ))?;
        sh("mkswap /dev/zram0 >/dev/null && swapon /dev/zram0")?;
        let (mib, prep, work) = workload(name, &args.gcc_src)?;
        // The preparation runs without a limit, so that nothing swaps before
        // the recording starts (the trace could not size those pages); the
        // traced script sets the limit first, and what the preparation left
        // in memory swaps out under the recorder.
        sh(&format!("mkdir -p {CG} && echo max > {CG}/memory.max"))?;
        // The workload's scripts join the cgroup first.
        let script = |what: &str, body: &str| -> Result<PathBuf> {
            let p = PathBuf::from(format!("/tmp/trace-{name}-{what}.sh"));
            let limit = if what == "work" {
                format!("echo {mib}M > {CG}/memory.max\n")
            } else {
                String::new()
            };
            fs::write(
                &p,
                format!("set -e\necho $$ > {CG}/cgroup.procs\n{limit}{body}\n"),
            )?;
            Ok(p)
        };
        if !prep.is_empty() {
            sh(&format!("sh {}", script("prep", &prep)?.display()))?;
        }
        let out = results.join(format!("{name}.trace"));
        let desc = TRACES.iter().find(|t| t.0 == name).map_or("", |t| t.1);
        let work = script("work", &work)?;
        println!("# recording {name}: {desc}");
        let st = Command::new(&args.zramctl)
            .args(["trace", "record", "zram0", "--output"])
            .arg(&out)
            .args(["--cgroup", CG, "--meta", &format!("workload={name}")])
            .args(["--meta", &format!("description={desc}")])
            .args(["--", "sh"])
            .arg(&work)
            .status()
            .context("running the recorder")?;
        if !st.success() {
            bail!("recording {name} failed: {st}");
        }
        sh("cat /sys/block/zram0/mm_stat /sys/block/zram0/bd_stat; grep -E 'pswp' /proc/vmstat")?;
        cleanup(name);
        sh(&format!("swapoff /dev/zram0 && {z} reset zram0"))?;
        println!("=== trace {name}: {:.0}s ===", t.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Issue 15: does `orig_data_size` drop after a writeback? On upstream
/// zram (rzram: see below): 2048 text pages, `idle all`, `writeback idle`, and
/// mm_stat/bd_stat before and after, with the utilisation the daemon now
/// uses (RAM-resident pages) next to the old one (orig_data_size).
fn utilisation_check(z: &str) -> Result<()> {
    println!("\n=== utilisation check: orig_data_size across a writeback ===");
    let backing = format!(
        "/dev/{}",
        sh("dmsetup info -c --noheadings -o blkdevname trace-backing")?.trim()
    );
    // Upstream zram only, the device the traces are of (rzram's writeback
    // has its own VM tests; an oops there took a whole recording down).
    for dev in ["zram0"] {
        if !std::path::Path::new(&format!("/sys/block/{dev}")).exists() {
            println!("{dev}: not present, skipped");
            continue;
        }
        sh(&format!(
            "{z} setup {dev} --size 64M --algorithm lz4 --backing-dev {backing}"
        ))?;
        sh(&format!(
            "/usr/bin/python3 -c \"import sys; sys.stdout.buffer.write(b''.join((b'page %d of the utilisation check ' % i) * 120 for i in range(2048)))\" | head -c 8M | dd of=/dev/{dev} bs=1M oflag=direct status=none"
        ))?;
        let stat = |when: &str| -> Result<()> {
            let mm = sh(&format!("cat /sys/block/{dev}/mm_stat"))?;
            let bd = sh(&format!("cat /sys/block/{dev}/bd_stat"))?;
            let orig: f64 = mm
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            let bd_count: f64 = bd
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            println!(
                "utilisation check {dev} {when}: orig_data_size {orig:.0} B, bd_count {bd_count:.0} pages; \
                 old utilisation (orig_data_size/disksize) {:.3}, new (RAM-resident) {:.3}",
                orig / (64.0 * 1048576.0),
                (orig / 4096.0 - bd_count).max(0.0) / 16384.0
            );
            Ok(())
        };
        stat("before writeback")?;
        sh(&format!(
            "echo all > /sys/block/{dev}/idle && echo idle > /sys/block/{dev}/writeback"
        ))?;
        stat("after writeback")?;
        sh(&format!("{z} reset {dev}"))?;
    }
    Ok(())
}

/// (cgroup MiB, preparation script, the traced script); both run in the
/// cgroup.
fn workload(name: &str, src: &std::path::Path) -> Result<(u64, String, String)> {
    Ok(match name {
        "pgbench" => (
            48,
            r#"PG=/usr/lib/postgresql/15/bin
mkdir -p /tmp/data/pg && chown postgres /tmp/data/pg
runuser -u postgres -- $PG/initdb -D /tmp/data/pg/db >/dev/null
runuser -u postgres -- $PG/pg_ctl -D /tmp/data/pg/db -l /tmp/data/pg/log -w -o "-c shared_buffers=96MB -c listen_addresses= -k /tmp/data/pg -c fsync=off" start
runuser -u postgres -- pgbench -q -h /tmp/data/pg -i -s 4 postgres
cat > /tmp/data/pg/skew.sql <<'SQL'
\set aid random_zipfian(1, 400000, 1.1)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
chmod a+r /tmp/data/pg/skew.sql"#
                .to_string(),
            "runuser -u postgres -- pgbench -h /tmp/data/pg -n -c 4 -T 150 -f /tmp/data/pg/skew.sql postgres"
                .to_string(),
        ),
        "sqlite" => (
            40,
            String::new(),
            r#"/usr/bin/python3 - <<'PY' | sqlite3 /tmp/data/trace.db > /dev/null
import random, itertools
random.seed(1)
n = 100000
print("PRAGMA cache_size=-120000; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
print("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);")
print("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO t SELECT i, randomblob(1024) FROM c;" % n)
print("SELECT count(*), sum(length(v)) FROM t;")
cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(n)))
for k in random.choices(range(1, n + 1), cum_weights=cum, k=30000):
    if random.random() < 0.1:
        print("UPDATE t SET v = randomblob(1024) WHERE id = %d;" % k)
    else:
        print("SELECT length(v) FROM t WHERE id = %d;" % k)
PY"#
                .to_string(),
        ),
        // libbpf's sources from the kernel tree the VM already needs (a copy,
        // read-only in the guest: the objects go to /tmp/data), with the
        // host's GCC.
        "gcc" => (
            48,
            String::new(),
            format!(
                "cd {} && for f in libbpf btf; do gcc -O2 -D_GNU_SOURCE -I tools/include -I tools/include/uapi -I tools/lib -c tools/lib/bpf/$f.c -o /tmp/data/$f.o; done && ls -l /tmp/data/*.o",
                src.display()
            ),
        ),
        n => bail!("unknown trace {n}"),
    })
}

fn cleanup(name: &str) {
    let _ = match name {
        "pgbench" => sh(
            "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/data/pg/db -m immediate stop; rm -rf /tmp/data/pg",
        ),
        "sqlite" => sh("rm -f /tmp/data/trace.db"),
        _ => sh("rm -f /tmp/data/*.o"),
    };
}
