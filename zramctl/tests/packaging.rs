//! packaging/: the systemd unit checked by `systemd-analyze verify` and
//! scored by `systemd-analyze security`; man pages and shell completions
//! generated from the clap definition and kept up to date
//! (`ZRAMCTL_BLESS=1 cargo test -p zramctl --test packaging` rewrites them).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use clap::CommandFactory as _;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The unit, with ExecStart pointing at the binary cargo built (verify
/// checks that the executable exists).
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("packaging/zramctl.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/zramctl daemon"));
    let unit = unit.replace("/usr/bin/zramctl", env!("CARGO_BIN_EXE_zramctl"));
    let p = dir.join("zramctl.service");
    std::fs::write(&p, unit).unwrap();
    p
}

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
    let unit = unit_for_test(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("systemd-analyze verify: exit {:?} {err}", out.status.code());
    // Lines about other units on this machine are not ours to judge.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("zramctl.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

#[test]
fn unit_security_exposure_is_low() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {text}{}", String::from_utf8_lossy(&out.stderr)));
    println!("systemd-analyze security: {}", line.trim());
    let score: f64 = line
        .split_whitespace()
        .find_map(|t| t.parse().ok())
        .expect("a number in the score line");
    // systemd calls up to 4.9 "OK" (and below 2 "SAFE").
    assert!(score < 5.0, "{line}\n{text}");
}

fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = zramctl::cli::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .unwrap();
    out.push((PathBuf::from("packaging/man/zramctl.1"), page));
    for sub in cmd.get_subcommands() {
        // A test process: leaking a few names is fine (clap wants 'static).
        let name: &'static str = Box::leak(format!("zramctl-{}", sub.get_name()).into_boxed_str());
        let sub = sub.clone().name(name);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page).unwrap();
        out.push((PathBuf::from(format!("packaging/man/{name}.1")), page));
    }
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "zramctl.bash"),
        (Shell::Zsh, "_zramctl"),
        (Shell::Fish, "zramctl.fish"),
    ] {
        let mut c = zramctl::cli::Cli::command();
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
    let man = std::fs::read_to_string(repo().join("packaging/man/zramctl-daemon.1")).unwrap();
    assert!(man.contains("config"), "{man}");
}
