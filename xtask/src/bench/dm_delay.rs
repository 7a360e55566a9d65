//! dm-delay for the VM: the `daemon_answers` VM test slows the backing
//! device with the device-mapper `delay` target. A kernel configured
//! without `CONFIG_DM_DELAY` gets it built here as an external module from
//! the same source tree (`drivers/md/dm-delay.c`), against the built
//! kernel (its `Module.symvers`), with the same toolchain; nothing of the
//! kernel tree or its configuration changes.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{kernel::Kernel, util::repo_root};

/// `dm-delay.ko` for `kernel`, built if the kernel lacks dm-delay; `None`
/// when the kernel has it (built in or as its own module).
pub fn module(kernel: &Kernel) -> Result<Option<PathBuf>> {
    // bzImage is <build>/arch/x86/boot/bzImage.
    let build = kernel
        .bzimage
        .ancestors()
        .nth(4)
        .context("kernel build dir")?
        .to_path_buf();
    let config = fs::read_to_string(build.join(".config")).context("the kernel's .config")?;
    if config
        .lines()
        .any(|l| l == "CONFIG_DM_DELAY=y" || l == "CONFIG_DM_DELAY=m")
    {
        return Ok(None);
    }
    if !config.lines().any(|l| l == "CONFIG_BLK_DEV_DM=y") {
        bail!("the kernel has no device mapper (CONFIG_BLK_DEV_DM): no dm-delay for it");
    }
    let dir = repo_root().join(format!("target/vm-extra/dm-delay-{}", kernel.release));
    let ko = dir.join("dm-delay.ko");
    let src_c = build.join("source/drivers/md/dm-delay.c");
    let fresh = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if ko.exists() && fresh(&ko) >= fresh(&build.join("Module.symvers")) {
        return Ok(Some(ko));
    }
    fs::create_dir_all(&dir)?;
    fs::copy(&src_c, dir.join("dm-delay.c"))
        .with_context(|| format!("copying {}", src_c.display()))?;
    fs::write(dir.join("Kbuild"), "obj-m := dm-delay.o\n")?;
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&build)
        .arg(format!("M={}", dir.display()))
        .arg("LLVM=-22")
        .arg("modules")
        .stdin(Stdio::null())
        .output()
        .context("running make for dm-delay.ko")?;
    if !out.status.success() || !ko.exists() {
        bail!(
            "building dm-delay.ko failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Some(ko))
}
