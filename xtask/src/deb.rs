//! `cargo xtask deb`: the Debian package, built with dpkg-deb from
//! packaging/ (no debhelper): the binary, the systemd units, the config as
//! a conffile, man pages, completions, and maintainer scripts that divert
//! util-linux's `zramctl` (binary, man page, bash completion) on install and
//! put it back on removal. `--lintian` runs lintian on the result.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{progress, repo_root, run};

#[derive(clap::Args, Debug, Default)]
pub struct DebArgs {
    /// Package the debug build (what `cargo test` built: no release build;
    /// the package's layout and scripts are the same).
    #[arg(long)]
    pub dev: bool,
    /// Run lintian on the package and print its tags.
    #[arg(long)]
    pub lintian: bool,
    /// Output directory (default target/deb).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub const PACKAGE: &str = "zramctl";

/// Files of util-linux's package (bookworm's 2.38) that ours replaces, and
/// where dpkg-divert moves them while ours is installed. On merged-/usr
/// systems `/sbin/zramctl` is `/usr/sbin/zramctl`: renaming it renames that.
pub const DIVERSIONS: [(&str, &str); 3] = [
    ("/sbin/zramctl", "/sbin/zramctl.util-linux"),
    (
        "/usr/share/man/man8/zramctl.8.gz",
        "/usr/share/man/man8/zramctl.util-linux.8.gz",
    ),
    (
        "/usr/share/bash-completion/completions/zramctl",
        "/usr/share/bash-completion/completions/zramctl.util-linux",
    ),
];

fn workspace_version() -> Result<String> {
    let toml = fs::read_to_string(repo_root().join("Cargo.toml"))?;
    toml.lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
        })
        .map(str::to_owned)
        .context("no version in the workspace Cargo.toml")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn install(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(dst.parent().expect("absolute"))?;
    fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(dst: &Path, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(dst.parent().expect("absolute"))?;
    fs::write(dst, content)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// gzip -9n (reproducible: no name, no time stamp), as Debian wants.
fn gzip_into(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst.parent().expect("absolute"))?;
    run(Command::new("sh").arg("-c").arg(format!(
        "gzip -9nc < '{}' > '{}' && chmod 644 '{}'",
        src.display(),
        dst.display(),
        dst.display()
    )))?;
    Ok(())
}

fn maintainer_scripts() -> [(&'static str, String); 4] {
    let add: String = DIVERSIONS
        .iter()
        .map(|(f, to)| {
            // util-linux is Essential: its file is copied aside and the
            // diversion added without a rename, so zramctl is never missing.
            format!(
                "    if [ -e {f} ] && [ ! -e {to} ]; then cp -a {f} {to}; fi\n    dpkg-divert --package {PACKAGE} --add --no-rename --divert {to} {f}\n"
            )
        })
        .collect();
    // Removed in reverse: on merged-/usr the /usr/sbin entry is the alias.
    let remove: String = DIVERSIONS
        .iter()
        .rev()
        .map(|(f, to)| {
            format!("    dpkg-divert --package {PACKAGE} --remove --rename --divert {to} {f}\n")
        })
        .collect();
    [
        (
            "preinst",
            format!(
                "#!/bin/sh\n# Move util-linux's zramctl aside: ours is a superset of it (zramctl(8)).\nset -e\nif [ \"$1\" = install ] || [ \"$1\" = upgrade ]; then\n{add}fi\nexit 0\n"
            ),
        ),
        (
            "postinst",
            "#!/bin/sh\nset -e\nif [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then\n    systemctl --system daemon-reload >/dev/null || true\nfi\nexit 0\n"
                .to_owned(),
        ),
        (
            "prerm",
            "#!/bin/sh\nset -e\nif [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then\n    deb-systemd-invoke stop zramctl.service zramctl-setup.service >/dev/null || true\nfi\nexit 0\n"
                .to_owned(),
        ),
        (
            "postrm",
            format!(
                "#!/bin/sh\n# Put util-linux's zramctl back.\nset -e\nif [ \"$1\" = remove ] || [ \"$1\" = abort-install ] || [ \"$1\" = disappear ]; then\n{remove}fi\nif [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then\n    systemctl --system daemon-reload >/dev/null || true\nfi\nif [ \"$1\" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then\n    deb-systemd-helper purge zramctl.service zramctl-setup.service >/dev/null || true\nfi\nexit 0\n"
            ),
        ),
    ]
}

/// Builds the package; returns its path.
pub fn deb(args: &DebArgs) -> Result<PathBuf> {
    let root = repo_root();
    let version = workspace_version()?;
    let debver = format!("{version}-1");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let profile = if args.dev { "debug" } else { "release" };
    progress(&format!("building zramctl ({profile})"));
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&root)
        .args(["build", "--locked", "-p", "zramctl", "--bin", "zramctl"]);
    if !args.dev {
        build.arg("--release");
    }
    run(&mut build)?;
    let bin = root.join("target").join(profile).join("zramctl");

    let out_dir = args.out.clone().unwrap_or_else(|| root.join("target/deb"));
    let stage = out_dir.join(format!("{PACKAGE}_{debver}_{arch}"));
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;
    let p = |rel: &str| stage.join(rel.trim_start_matches('/'));

    // The binary, stripped; util-linux's path points at it.
    install(&bin, &p("/usr/bin/zramctl"), 0o755)?;
    run(Command::new("strip")
        .args([
            "--strip-unneeded",
            "--remove-section=.comment",
            "--remove-section=.note",
        ])
        .arg(p("/usr/bin/zramctl")))?;
    fs::create_dir_all(p("/sbin"))?;
    // Policy 10.5: a link across top-level directories is absolute.
    std::os::unix::fs::symlink("/usr/bin/zramctl", p("/sbin/zramctl"))?;

    let pk = root.join("packaging");
    for unit in ["zramctl.service", "zramctl-setup.service"] {
        install(
            &pk.join(unit),
            &p(&format!("/usr/lib/systemd/system/{unit}")),
            0o644,
        )?;
    }
    install(
        &pk.join("zramctl.toml"),
        &p("/etc/zramctl/zramctl.toml"),
        0o644,
    )?;
    for entry in fs::read_dir(pk.join("man"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let section = name.rsplit('.').next().unwrap_or("8").to_owned();
        gzip_into(&path, &p(&format!("/usr/share/man/man{section}/{name}.gz")))?;
    }
    let comp = pk.join("completions");
    install(
        &comp.join("zramctl.bash"),
        &p("/usr/share/bash-completion/completions/zramctl"),
        0o644,
    )?;
    install(
        &comp.join("_zramctl"),
        &p("/usr/share/zsh/vendor-completions/_zramctl"),
        0o644,
    )?;
    install(
        &comp.join("zramctl.fish"),
        &p("/usr/share/fish/vendor_completions.d/zramctl.fish"),
        0o644,
    )?;
    write(
        &p("/usr/share/doc/zramctl/copyright"),
        &format!(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: zramctl\nSource: {}\n\nFiles: *\nCopyright: 2026 The zramctl developers <zramctl@example.invalid>\nLicense: GPL-2.0-only or MIT\n On Debian systems the GPL-2 is in /usr/share/common-licenses/GPL-2.\n .\n Permission is hereby granted, free of charge, to any person obtaining a copy\n of this software and associated documentation files (the \"Software\"), to deal\n in the Software without restriction, including without limitation the rights\n to use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n copies of the Software, and to permit persons to whom the Software is\n furnished to do so, subject to the following conditions:\n .\n The above copyright notice and this permission notice shall be included in\n all copies or substantial portions of the Software.\n .\n THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\n OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\n SOFTWARE.\n",
            repository_url()
        ),
        0o644,
    )?;
    let changelog = stage.join("changelog.Debian");
    fs::write(
        &changelog,
        format!(
            "zramctl ({debver}) unstable; urgency=medium\n\n  * Package built by cargo xtask deb.\n\n -- zramctl developers <zramctl@example.invalid>  {}\n",
            output(Command::new("date").args(["-R", "-u", "-d", "@0"]))?
        ),
    )?;
    gzip_into(&changelog, &p("/usr/share/doc/zramctl/changelog.Debian.gz"))?;
    // Built for installing, not for the Debian archive: there is no ITP bug.
    write(
        &p("/usr/share/lintian/overrides/zramctl"),
        "# Not uploaded to Debian (built by cargo xtask deb): no ITP bug to close.\nzramctl: initial-upload-closes-no-bugs\n",
        0o644,
    )?;
    fs::remove_file(&changelog)?;

    // Control files.
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    for (name, body) in maintainer_scripts() {
        write(&debian.join(name), &body, 0o755)?;
    }
    write(
        &debian.join("conffiles"),
        "/etc/zramctl/zramctl.toml\n",
        0o644,
    )?;
    let depends = shlib_depends(&p("/usr/bin/zramctl"))?;
    let installed_kb = output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN"])
            .arg(&stage),
    )?
    .split_whitespace()
    .next()
    .unwrap_or("0")
    .to_owned();
    write(
        &debian.join("control"),
        &format!(
            "Package: {PACKAGE}\nVersion: {debver}\nArchitecture: {arch}\nMaintainer: zramctl developers <zramctl@example.invalid>\nInstalled-Size: {installed_kb}\nDepends: {depends}\nRecommends: dmsetup\nSuggests: prometheus\nSection: admin\nPriority: optional\nHomepage: {}\nDescription: zram control with writeback: util-linux's zramctl and a policy daemon\n zramctl sets up and lists zram devices exactly as util-linux's zramctl(8)\n does (same options, output, exit codes; it replaces that command), and\n drives zram writeback: idle marking, writeback to a backing device or an\n encrypted backing file, limits, batch size, recompression, a live eBPF view\n (zramctl top) and a systemd policy daemon with Prometheus metrics.\n",
            repository_url()
        ),
        0o644,
    )?;
    let md5 = output(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 md5sum",
        stage.display()
    )))?;
    write(&debian.join("md5sums"), &format!("{md5}\n"), 0o644)?;

    let deb = out_dir.join(format!("{PACKAGE}_{debver}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    progress(&format!("package: {}", deb.display()));
    if args.lintian {
        let out = Command::new("lintian")
            .args(["--no-tag-display-limit", "--info"])
            .arg(&deb)
            .output()
            .context("lintian (apt install lintian)")?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(deb)
}

fn repository_url() -> String {
    fs::read_to_string(repo_root().join("Cargo.toml"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("repository = \"")
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_owned)
            })
        })
        .unwrap_or_default()
}

/// `Depends:` from dpkg-shlibdeps (it wants a debian/control to look at).
fn shlib_depends(bin: &Path) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("zramctl-shlibdeps-{}", std::process::id()));
    fs::create_dir_all(dir.join("debian"))?;
    fs::write(
        dir.join("debian/control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let out = output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&dir)
            .arg("-O")
            .arg(bin),
    );
    let _ = fs::remove_dir_all(&dir);
    let out = out?;
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps printed no shlibs:Depends")
}
