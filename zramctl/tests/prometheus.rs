//! The dashboards and rules against a real Prometheus server scraping a
//! running `zramctl daemon --fake` (simulated zram0 with synthetic probes;
//! two of them, scraped as two instances of one job, which every rule and
//! dashboard query must keep apart):
//! `promtool check rules`, `promtool check metrics` on a live scrape, and
//! every dashboard and rule query through Prometheus' HTTP API, each
//! returning data. Skips (saying why) without Debian's `prometheus` package.
//! Everything listens on 127.0.0.1; every wait is bounded.

use std::{
    collections::BTreeSet,
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

/// Dashboard queries with Grafana's variables filled in (one host: `job`
/// and `instance`).
fn dashboard_queries(job: &str, instance: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dashboards/zramctl-dashboard.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            // label_values(SELECTOR, LABEL) as a series query.
            let q = v["query"].as_str().expect("variable query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|x| x.strip_suffix(')'))
                .and_then(|x| x.rsplit_once(','))
                .map(|x| x.0)
                .expect("label_values(SELECTOR, LABEL)");
            let inner = inner.replace("$job", job).replace("$instance", instance);
            out.push((format!("variable {}", v["name"]), inner));
        }
    }
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", job)
                .replace("$instance", instance)
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
    // Two daemons: two instances of one job, the same device name on each.
    let (mut daemon_a, daddr) = start_daemon(dir.path(), "a");
    let (mut daemon_b, daddr_b) = start_daemon(dir.path(), "b");

    // A live scrape, linted by promtool.
    let page = wait_for_writeback(&daddr);
    wait_for_writeback(&daddr_b);
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

    // Prometheus scraping both every second, evaluating the rules.
    let pport = free_port();
    let paddr = format!("127.0.0.1:{pport}");
    let pcfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &pcfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: zramctl\n    static_configs:\n      - targets: ['{daddr}', '{daddr_b}']\n",
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

    let both: BTreeSet<String> = [daddr.clone(), daddr_b.clone()].into();
    // The dashboard on host a: data, and only host a's; its job and
    // instance pickers offer both hosts.
    let mut queries: Vec<(String, String, Want)> = dashboard_queries("zramctl", &daddr)
        .into_iter()
        .map(|(w, q)| {
            let want = if w == "variable \"job\"" || w == "variable \"instance\"" {
                Want::Each(both.clone())
            } else {
                Want::Only(daddr.clone())
            };
            (w, q, want)
        })
        .collect();
    // Every rule keeps the hosts apart: one series set per instance, each
    // with job and instance.
    queries.extend(
        rule_queries()
            .into_iter()
            .map(|(w, q)| (w, q, Want::Each(both.clone()))),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending = queries.clone();
    let mut last_err = String::new();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(what, q, want)| {
            match get(&paddr, &format!("/api/v1/query?query={}", urlencode(q))) {
                Ok((200, body)) => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let series = v["data"]["result"].as_array().cloned().unwrap_or_default();
                    let n = series.len();
                    let instances: Vec<Option<String>> = series
                        .iter()
                        .map(|s| {
                            let m = &s["metric"];
                            (m["job"] == "zramctl")
                                .then(|| m["instance"].as_str().map(str::to_owned))
                                .flatten()
                        })
                        .collect();
                    let ok = v["status"] == "success"
                        && n > 0
                        && match want {
                            // Aggregations over one host may drop the
                            // labels (a heatmap's `sum by (le)`); any kept
                            // must be this host's.
                            Want::Only(i) => series
                                .iter()
                                .all(|s| s["metric"]["instance"].as_str().is_none_or(|x| x == i)),
                            Want::Each(set) => {
                                instances.iter().all(Option::is_some)
                                    && instances.iter().flatten().cloned().collect::<BTreeSet<_>>()
                                        == *set
                            }
                        };
                    if ok {
                        println!("ok   {n:>3} series  {what}: {q}");
                        return false;
                    }
                    last_err = format!("{what}: {q}: want {want:?}: {body}");
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
        "{} of {} queries returned no data or mixed the two instances within 90 s: {:?}\nlast: {last_err}",
        pending.len(),
        queries.len(),
        pending
    );
    stop(&mut daemon_b);
    stop(&mut daemon_a);
}

/// SIGTERM: a clean stop that restores the device.
fn stop(daemon: &mut Kill) {
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

/// What a query's series must show of the two instances.
#[derive(Clone, Debug)]
enum Want {
    /// Only this instance (where the labels are kept).
    Only(String),
    /// Exactly these instances, every series with `job` and `instance`.
    Each(BTreeSet<String>),
}

/// Starts `zramctl daemon --fake` on a free port; (process, address).
fn start_daemon(dir: &Path, name: &str) -> (Kill, String) {
    let daddr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.join(format!("zramctl-{name}.toml"));
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
    (Kill(daemon), daddr)
}

/// Waits (30 s at most) for a page that shows pages written back.
fn wait_for_writeback(daddr: &str) -> String {
    let t0 = Instant::now();
    loop {
        match get(daddr, "/metrics") {
            Ok((200, b))
                if b.contains("zramctl_writeback_pages_total{device=\"zram0\"} ")
                    && !b.contains("zramctl_writeback_pages_total{device=\"zram0\"} 0\n") =>
            {
                return b;
            }
            _ if t0.elapsed() > Duration::from_secs(30) => {
                panic!("daemon on {daddr} did not serve metrics with writeback in 30 s")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
