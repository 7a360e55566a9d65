//! `cargo xtask kernel`: our Linux 7.3 for the VM.
//!
//! Debian's linux-source-7.3 tarball is extracted once into the cache dir
//! (outside the clone), the repo's `kernel/` overlay is copied onto it (only
//! files whose content changed, so make rebuilds only what depends on them),
//! `kernel/patches/*.patch` are applied (and reverted when they change), and
//! the tree is configured from allnoconfig plus `kernel/configs/*.config`.
//! Every option the fragments ask for is checked after olddefconfig.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util::{cache_dir, fnv, progress, repo_root, run};

const TARBALL: &str = "/usr/src/linux-source-7.3.tar.xz";
const SRC_DIR: &str = "linux-source-7.3";
const LLVM: &str = "LLVM=-22";

#[derive(clap::Args, Default, Clone)]
pub struct KernelArgs {
    /// Also apply kernel/configs/debug.config (KASAN, PROVE_LOCKING, …);
    /// built in its own directory.
    #[arg(long)]
    pub debug: bool,
    /// Re-run the configuration even if the fragments did not change.
    #[arg(long)]
    pub reconfigure: bool,
}

/// A built kernel.
pub struct Kernel {
    pub bzimage: PathBuf,
    /// Modules installed as `<modroot>/lib/modules/<release>/`.
    pub modroot: PathBuf,
    pub release: String,
}

/// Takes an exclusive lock on `path` (created if missing), waiting with a
/// message if someone else holds it; released when the file is dropped.
fn lock_file(path: &Path) -> Result<fs::File> {
    let lock = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    if lock.try_lock().is_err() {
        progress(&format!(
            "waiting for another kernel build ({} is locked)",
            path.display()
        ));
        lock.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(lock)
}

pub fn build(args: &KernelArgs) -> Result<Kernel> {
    let cache = cache_dir();
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let variant = if args.debug { "debug" } else { "build" };
    // Two `cargo xtask` runs at once (say, a VM test and a kernel edit) must
    // not run make in the same build dir, nor lay the overlay on the source
    // under a running build: one build per variant at a time, and the source
    // tree changes only while no build of that variant runs.
    let _build_lock = lock_file(&cache.join(format!(".build-lock-{variant}")))?;
    let src = {
        let _source_lock = lock_file(&cache.join(".source-lock"))?;
        let src = ensure_source(&cache)?;
        apply_overlay(&src)?;
        apply_patches(&src)?;
        src
    };
    let build = cache.join(variant);
    let mut fragments = vec![repo_root().join("kernel/configs/zramctl.config")];
    if args.debug {
        fragments.push(repo_root().join("kernel/configs/debug.config"));
    }
    let late = [repo_root().join("kernel/configs/late.config")];
    configure(&src, &build, &fragments, &late, args.reconfigure)?;
    let log = cache.join(format!("{variant}.log"));
    let t = Instant::now();
    make(&src, &build, &["bzImage", "modules"], &log)?;
    progress(&format!(
        "kernel built in {:.0}s ({})",
        t.elapsed().as_secs_f64(),
        build.display()
    ));
    let release = fs::read_to_string(build.join("include/config/kernel.release"))
        .context("reading kernel.release")?
        .trim()
        .to_owned();
    let modroot = cache.join(format!("modroot-{variant}"));
    let stamp = modroot.join(".zramctl-installed");
    let newest_ko = newest_mtime(&build, "ko")?;
    let installed = fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    if installed.is_none() || newest_ko.is_some_and(|k| Some(k) > installed) {
        let _ = fs::remove_dir_all(&modroot);
        run(Command::new("make")
            .args(["-s", "-C"])
            .arg(&src)
            .arg(format!("O={}", build.display()))
            .arg(LLVM)
            .arg(format!("INSTALL_MOD_PATH={}", modroot.display()))
            .arg("modules_install")
            .stdout(Stdio::null()))
        .context("make modules_install")?;
        fs::write(&stamp, "").context("writing the modules stamp")?;
    }
    Ok(Kernel {
        bzimage: build.join("arch/x86/boot/bzImage"),
        modroot,
        release,
    })
}

/// Newest modification time of files with extension `ext` under `dir`.
fn newest_mtime(dir: &Path, ext: &str) -> Result<Option<std::time::SystemTime>> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                let m = e.metadata()?.modified()?;
                if newest.is_none_or(|n| m > n) {
                    newest = Some(m);
                }
            }
        }
    }
    Ok(newest)
}

/// The extracted source tree (`build` makes sure it is there).
pub fn source_dir() -> PathBuf {
    cache_dir().join(SRC_DIR)
}

/// Extracts the tarball unless this very tarball is already extracted.
fn ensure_source(cache: &Path) -> Result<PathBuf> {
    let tarball = std::env::var("ZRAMCTL_KERNEL_TARBALL").unwrap_or_else(|_| TARBALL.into());
    let meta = fs::metadata(&tarball).with_context(|| {
        format!("{tarball} is missing: install linux-source-7.3 (cargo xtask setup)")
    })?;
    let key = format!(
        "{} {}",
        meta.len(),
        meta.modified()?
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let src = cache.join(SRC_DIR);
    let stamp = src.join(".zramctl-source");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(src);
    }
    progress(&format!(
        "extracting {tarball} into {} (~15 s)",
        cache.display()
    ));
    if src.exists() {
        fs::remove_dir_all(&src).context("removing the old source tree")?;
    }
    run(Command::new("tar")
        .arg("xf")
        .arg(&tarball)
        .arg("-C")
        .arg(cache))?;
    if !src.join("Makefile").exists() {
        bail!("{tarball} did not contain {SRC_DIR}/");
    }
    fs::write(&stamp, key)?;
    Ok(src)
}

/// Files of the overlay: everything under kernel/ but configs/, patches/ and docs.
fn overlay_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_path_buf();
            if e.file_type()?.is_dir() {
                if !(d == root && (rel == Path::new("configs") || rel == Path::new("patches"))) {
                    stack.push(p);
                }
            } else if !(d == root && p.extension().is_some_and(|x| x == "md")) {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies the overlay onto the tree, touching only files whose content changed.
fn apply_overlay(src: &Path) -> Result<()> {
    let root = repo_root().join("kernel");
    let manifest_path = src.join(".zramctl-overlay");
    let old: BTreeSet<PathBuf> = fs::read_to_string(&manifest_path)
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .collect();
    let files = overlay_files(&root)?;
    for rel in &files {
        let dest = src.join(rel);
        let data = fs::read(root.join(rel))?;
        if dest.exists() && !old.contains(rel) {
            bail!(
                "kernel/{} would overwrite a file of the Linux tree: change existing files with a patch in kernel/patches/",
                rel.display()
            );
        }
        if fs::read(&dest).ok().as_deref() != Some(&data[..]) {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&dest, &data).with_context(|| format!("writing {}", dest.display()))?;
        }
    }
    let new: BTreeSet<PathBuf> = files.into_iter().collect();
    for gone in old.difference(&new) {
        let _ = fs::remove_file(src.join(gone));
    }
    let text: String = new.iter().map(|p| format!("{}\n", p.display())).collect();
    fs::write(&manifest_path, text)?;
    Ok(())
}

/// Applies kernel/patches/*.patch; when they change, reverts the old set first.
fn apply_patches(src: &Path) -> Result<()> {
    let dir = repo_root().join("kernel/patches");
    let mut wanted: Vec<(String, Vec<u8>)> = Vec::new();
    if dir.exists() {
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "patch") {
                wanted.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    fs::read(&p)?,
                ));
            }
        }
    }
    wanted.sort();
    let record = src.join(".zramctl-patches");
    let mut applied: Vec<(String, Vec<u8>)> = Vec::new();
    if record.exists() {
        for e in fs::read_dir(&record)? {
            let p = e?.path();
            applied.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p)?,
            ));
        }
    }
    applied.sort();
    if applied == wanted {
        return Ok(());
    }
    let patch = |data: &[u8], reverse: bool, name: &str| -> Result<()> {
        let mut cmd = Command::new("patch");
        cmd.args(["-p1", "-s", "--no-backup-if-mismatch", "-d"])
            .arg(src);
        if reverse {
            cmd.arg("-R");
        }
        let mut child = cmd.stdin(Stdio::piped()).spawn().context("running patch")?;
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(data)?;
        if !child.wait()?.success() {
            bail!("patch {}{name} failed", if reverse { "-R " } else { "" });
        }
        Ok(())
    };
    // Reverting and re-applying touches every patched file; files that end
    // up as they were get their old mtime back, so make rebuilds only what
    // really changed (objtool, for one, would otherwise rebuild everything).
    let touched: std::collections::BTreeSet<PathBuf> = applied
        .iter()
        .chain(&wanted)
        .flat_map(|(_, data)| patched_files(data))
        .collect();
    let before: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> = touched
        .iter()
        .filter_map(|rel| {
            let p = src.join(rel);
            Some((
                p.clone(),
                fs::read(&p).ok()?,
                fs::metadata(&p).ok()?.modified().ok()?,
            ))
        })
        .collect();
    for (name, data) in applied.iter().rev() {
        patch(data, true, name)?;
    }
    let _ = fs::remove_dir_all(&record);
    fs::create_dir_all(&record)?;
    for (name, data) in &wanted {
        progress(&format!("applying kernel/patches/{name}"));
        patch(data, false, name)
            .with_context(|| format!("kernel/patches/{name} does not apply to Linux 7.3"))?;
        fs::write(record.join(name), data)?;
    }
    for (path, content, mtime) in before {
        if fs::read(&path).ok().as_deref() == Some(&content[..]) {
            fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(mtime))
                .with_context(|| format!("restoring the mtime of {}", path.display()))?;
        }
    }
    Ok(())
}

/// Files a unified diff changes (its `+++ b/PATH` lines).
fn patched_files(patch: &[u8]) -> Vec<PathBuf> {
    String::from_utf8_lossy(patch)
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| PathBuf::from(p.split('\t').next().unwrap_or(p).trim()))
        .collect()
}

/// `CONFIG_X=v` lines of a fragment (`=n` for "is not set").
fn fragment_options(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l
                .strip_prefix("# ")
                .and_then(|r| r.strip_suffix(" is not set"))
            {
                return Some((rest.to_owned(), "n".to_owned()));
            }
            let (k, v) = l.split_once('=')?;
            k.starts_with("CONFIG_")
                .then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The fragments' text, one after the other.
fn read_fragments(fragments: &[PathBuf]) -> Result<String> {
    let mut merged = String::new();
    for f in fragments {
        merged
            .push_str(&fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?);
        merged.push('\n');
    }
    Ok(merged)
}

/// Configures `build` from allnoconfig plus `fragments`, then sets the
/// `late` fragments' options on that result. Late options are those that
/// would change what allnoconfig leaves out: `CONFIG_EXPERT` gives a prompt
/// to options that default to y without it (`VM_EVENT_COUNTERS`, `FUTEX`,
/// ...), which allnoconfig would then turn off; set after the first pass,
/// it leaves them as they are.
fn configure(
    src: &Path,
    build: &Path,
    fragments: &[PathBuf],
    late: &[PathBuf],
    force: bool,
) -> Result<()> {
    let first = read_fragments(fragments)?;
    let late = read_fragments(late)?;
    let merged = format!("{first}{late}");
    let key = format!("{:016x}", fnv(format!("{LLVM}\n{merged}").as_bytes()));
    let stamp = build.join(".zramctl-config-key");
    let config = build.join(".config");
    if !force && config.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str())
    {
        return Ok(());
    }
    progress("configuring the kernel (allnoconfig + kernel/configs)");
    fs::create_dir_all(build)?;
    let merged_path = build.join("zramctl-merged.config");
    fs::write(&merged_path, &first)?;
    let make = |target: &str, extra: &[String]| {
        run(Command::new("make")
            .args(["-s", "-C"])
            .arg(src)
            .arg(format!("O={}", build.display()))
            .arg(LLVM)
            .args(extra)
            .arg(target)
            .stdout(Stdio::null()))
    };
    make(
        "allnoconfig",
        &[format!("KCONFIG_ALLCONFIG={}", merged_path.display())],
    )?;
    make("olddefconfig", &[])?;
    if !late.trim().is_empty() {
        // Later lines of a .config override earlier ones.
        let mut text = fs::read_to_string(&config)?;
        text.push_str(&late);
        fs::write(&config, text)?;
        make("olddefconfig", &[])?;
    }
    let have = fs::read_to_string(&config)?;
    let got: std::collections::HashMap<String, String> =
        fragment_options(&have).into_iter().collect();
    let missing: Vec<String> = fragment_options(&merged)
        .into_iter()
        .filter(|(k, v)| got.get(k).map(String::as_str).unwrap_or("n") != v)
        .map(|(k, v)| {
            format!(
                "{k}={v} (got {})",
                got.get(&k).map(String::as_str).unwrap_or("n")
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "kernel config dropped options the fragments ask for (a dependency is missing):\n  {}",
            missing.join("\n  ")
        );
    }
    fs::write(&stamp, key)?;
    Ok(())
}

/// Runs make with output to `log`, printing a progress line every 30 s.
fn make(src: &Path, build: &Path, targets: &[&str], log: &Path) -> Result<()> {
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new("make")
        .arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg(LLVM)
        .arg(format!("-j{jobs}"))
        .args(targets)
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting make (is the kernel toolchain installed? cargo xtask setup)")?;
    let start = Instant::now();
    let mut last = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
        if last.elapsed() >= Duration::from_secs(30) {
            last = Instant::now();
            let tail = last_line(log).unwrap_or_default();
            progress(&format!(
                "kernel build {:>4}s: {}",
                start.elapsed().as_secs(),
                tail.trim()
            ));
        }
    };
    if !status.success() {
        let lines: Vec<String> = BufReader::new(fs::File::open(log)?)
            .lines()
            .map_while(Result::ok)
            .collect();
        let from = lines.len().saturating_sub(60);
        eprintln!("{}", lines[from..].join("\n"));
        bail!(
            "kernel build failed ({status}); full log: {}",
            log.display()
        );
    }
    Ok(())
}

fn last_line(path: &Path) -> Option<String> {
    let data = fs::read_to_string(path).ok()?;
    data.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned)
}
