//! packaging/: the systemd units (the daemon's and the setup unit's)
//! checked by `systemd-analyze verify` and scored by `systemd-analyze
//! security`; man pages and shell completions
//! generated from the clap definition and kept up to date
//! (`ZRAMCTL_BLESS=1 cargo test -p zramctl --test packaging` rewrites them).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A unit of packaging/, with ExecStart pointing at the binary cargo built
/// (verify checks that the executable exists).
fn unit_for_test(dir: &Path, name: &str) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("packaging").join(name)).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/zramctl daemon"));
    let unit = unit.replace("/usr/bin/zramctl", env!("CARGO_BIN_EXE_zramctl"));
    let p = dir.join(name);
    std::fs::write(&p, unit).unwrap();
    p
}

const UNITS: [&str; 2] = ["zramctl.service", "zramctl-setup.service"];

fn systemd_analyze() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: systemd-analyze is not installed");
    }
    ok
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units: Vec<PathBuf> = UNITS.iter().map(|u| unit_for_test(dir.path(), u)).collect();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("systemd-analyze verify: exit {:?} {err}", out.status.code());
    // Lines about other units on this machine are not ours to judge.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

fn exposure(unit: &Path) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let score: f64 = line
        .split_whitespace()
        .find_map(|t| t.parse().ok())
        .expect("a number in the score line");
    (score, line.trim().to_owned())
}

#[test]
fn unit_security_exposure_is_low() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (daemon, line) = exposure(&unit_for_test(dir.path(), "zramctl.service"));
    println!("systemd-analyze security zramctl.service: {line}");
    // The daemon: at most 3.0 (systemd calls up to 4.9 "OK", below 2 "SAFE").
    assert!(daemon <= 3.0, "{line}");
    // The setup unit holds CAP_SYS_ADMIN (loop, device-mapper) for a moment.
    let (setup, line) = exposure(&unit_for_test(dir.path(), "zramctl-setup.service"));
    println!("systemd-analyze security zramctl-setup.service: {line}");
    assert!(setup < 5.0, "{line}");
}

fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    // zramctl(8): both the util-linux forms and our commands.
    let cmd = zramctl::ulcompat::doc::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)
        .unwrap();
    page.extend_from_slice(zramctl::ulcompat::doc::MAN_EXTRA.as_bytes());
    out.push((PathBuf::from("packaging/man/zramctl.8"), page));
    for sub in cmd.get_subcommands() {
        // A test process: leaking a few names is fine (clap wants 'static).
        let name: &'static str = Box::leak(format!("zramctl-{}", sub.get_name()).into_boxed_str());
        let sub = sub.clone().name(name);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub)
            .section("8")
            .render(&mut page)
            .unwrap();
        out.push((PathBuf::from(format!("packaging/man/{name}.8")), page));
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "zramctl.bash"),
        (Shell::Zsh, "_zramctl"),
        (Shell::Fish, "zramctl.fish"),
    ] {
        let mut c = zramctl::ulcompat::doc::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut c, "zramctl", &mut buf);
        out.push((PathBuf::from(format!("packaging/completions/{file}")), buf));
    }
    out
}

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let bless = std::env::var_os("ZRAMCTL_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = repo().join(&rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the CLI: {stale:?}; regenerate with ZRAMCTL_BLESS=1 cargo test -p zramctl --test packaging"
    );
    // The daemon's page documents the config option.
    let man = std::fs::read_to_string(repo().join("packaging/man/zramctl-daemon.8")).unwrap();
    assert!(man.contains("config"), "{man}");
    // zramctl(8) and the completions cover both forms.
    let man = std::fs::read_to_string(repo().join("packaging/man/zramctl.8")).unwrap();
    for want in [
        "UTIL-LINUX FORMS",
        "\\-\\-find",
        "\\-\\-output\\-all",
        "zramctl\\-writeback(8)",
    ] {
        assert!(man.contains(want), "zramctl.8 lacks {want}");
    }
    let bash = std::fs::read_to_string(repo().join("packaging/completions/zramctl.bash")).unwrap();
    for want in ["--output-all", "--find", "--raw", "writeback", "daemon"] {
        assert!(bash.contains(want), "bash completion lacks {want}");
    }
    // No stale pages of an older layout.
    let stale: Vec<_> = std::fs::read_dir(repo().join("packaging/man"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".8"))
        .collect();
    assert!(stale.is_empty(), "not generated: {stale:?}");
}

/// The README and `docs/` stay true to the CLI and the tree: every command
/// is documented, every relative link leads to a file, and nothing points
/// outside the repository.
#[test]
fn docs_name_every_command_and_link_to_real_files() {
    let read = |rel: &str| std::fs::read_to_string(repo().join(rel)).unwrap();
    let docs = ["docs/cli.md", "docs/daemon.md"].map(read).join("\n");
    let mut missing = Vec::new();
    for sub in <zramctl::cli::Cli as clap::CommandFactory>::command().get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("zramctl {}", sub.get_name());
        if !docs.contains(&name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/cli.md or docs/daemon.md: {missing:?}"
    );
    let mut pages = vec![PathBuf::from("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p.strip_prefix(repo()).unwrap().to_path_buf());
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page.to_str().unwrap());
        assert!(
            !text.contains("../shared"),
            "{}: points outside the repository",
            page.display()
        );
        let dir = repo().join(page).parent().unwrap().to_path_buf();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let target = &target[..target.find(')').unwrap_or(target.len())];
            let target = target.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            if !dir.join(target).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");
}
