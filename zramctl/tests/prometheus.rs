//! The dashboards and rules against a real Prometheus server scraping a
//! running `zramctl daemon --fake` (simulated zram0 with synthetic probes):
//! `promtool check rules`, `promtool check metrics` on a live scrape, and
//! every dashboard and rule query through Prometheus' HTTP API, each
//! returning data. Skips (saying why) without Debian's `prometheus` package.
//! Everything listens on 127.0.0.1; every wait is bounded.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET over HTTP/1.0; (status code, body).
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
    Ok((code, body))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Dashboard queries with Grafana's variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dashboards/zramctl-dashboard.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("$device", ".*");
            out.push((format!("panel {:?}", p["title"].as_str().unwrap_or("")), q));
        }
    }
    out
}

/// Rule expressions; for alerts, the query before the threshold (the alert
/// itself rightly returns nothing while all is well).
fn rule_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dashboards/zramctl-rules.yml")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let l = line.trim().trim_start_matches("- ");
        if let Some(n) = l
            .strip_prefix("record: ")
            .or_else(|| l.strip_prefix("alert: "))
        {
            name = n.to_owned();
        }
        if let Some(e) = l.strip_prefix("expr: ") {
            let q = if name.starts_with("Zramctl") {
                let cut = [" > ", " < ", " == "]
                    .iter()
                    .filter_map(|op| e.find(op))
                    .min()
                    .expect("alert expr has a threshold");
                e[..cut].to_owned()
            } else {
                e.to_owned()
            };
            out.push((format!("rule {name}"), q));
            // The recorded series itself must exist too.
            if !name.starts_with("Zramctl") {
                out.push((format!("recorded {name}"), name.clone()));
            }
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

#[test]
fn dashboards_and_rules_on_a_real_prometheus() {
    if !have("prometheus") || !have("promtool") {
        eprintln!(
            "SKIP: prometheus/promtool not installed (Debian package `prometheus`, scripts/setup.sh installs it)"
        );
        return;
    }
    let rules = repo().join("dashboards/zramctl-rules.yml");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap();
    println!(
        "promtool check rules: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let dport = free_port();
    let daddr = format!("127.0.0.1:{dport}");
    let cfg = dir.path().join("zramctl.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ninterval_secs = 0.5\nmetrics_listen = \"{daddr}\"\n[policy]\nperiod_secs = 1\nmin_interval_secs = 1\nidle_age_initial_secs = 600\n[[device]]\nname = \"zram0\"\n"
        ),
    )
    .unwrap();
    let daemon = Command::new(env!("CARGO_BIN_EXE_zramctl"))
        .args(["daemon", "--fake", "--config"])
        .arg(&cfg)
        .env_remove("NOTIFY_SOCKET")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Kill(daemon);

    // A live scrape, linted by promtool.
    let t0 = Instant::now();
    let page = loop {
        match get(&daddr, "/metrics") {
            Ok((200, b))
                if b.contains("zramctl_writeback_pages_total{device=\"zram0\"} ")
                    && !b.contains("zramctl_writeback_pages_total{device=\"zram0\"} 0\n") =>
            {
                break b;
            }
            _ if t0.elapsed() > Duration::from_secs(30) => {
                panic!("daemon did not serve metrics with writeback in 30 s")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let lint = lint.wait_with_output().unwrap();
    println!(
        "promtool check metrics: exit {:?} {}{}",
        lint.status.code(),
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success(),
        "promtool check metrics found problems"
    );
    assert_eq!(get(&daddr, "/nope").unwrap().0, 404);

    // Prometheus scraping it every second, evaluating the rules.
    let pport = free_port();
    let paddr = format!("127.0.0.1:{pport}");
    let pcfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &pcfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: zramctl\n    static_configs:\n      - targets: ['{daddr}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", pcfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={paddr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = Kill(prom);

    let mut queries = dashboard_queries();
    queries.extend(rule_queries());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending = queries.clone();
    let mut last_err = String::new();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(what, q)| {
            match get(&paddr, &format!("/api/v1/query?query={}", urlencode(q))) {
                Ok((200, body)) => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let n = v["data"]["result"].as_array().map_or(0, Vec::len);
                    if v["status"] == "success" && n > 0 {
                        println!("ok   {n:>3} series  {what}: {q}");
                        return false;
                    }
                    last_err = format!("{what}: {q}: {body}");
                    true
                }
                Ok((code, body)) => {
                    last_err = format!("{what}: {q}: HTTP {code} {body}");
                    true
                }
                Err(e) => {
                    last_err = format!("{what}: prometheus not answering yet: {e}");
                    true
                }
            }
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    assert!(
        pending.is_empty(),
        "{} of {} queries returned no data within 90 s: {:?}\nlast: {last_err}",
        pending.len(),
        queries.len(),
        pending
    );

    // SIGTERM: a clean stop that restores the device.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "daemon ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        err.contains("writeback limit restored") && err.contains("stopped"),
        "{err}"
    );
}
