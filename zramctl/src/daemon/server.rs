//! The `/metrics` endpoint: a minimal HTTP/1.1 server; the page is
//! rendered when scraped (see [`Page`]).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};
use tracing::warn;

use super::core::DaemonCore;

/// What `/metrics` shows: rendered from the core at scrape time when no
/// step holds it, else (a writeback round in progress) the page of the last
/// scrape or of the last step that ran a round, so a scrape never waits for
/// a round and never shows counts older than the last round.
pub(super) struct Page {
    core: Arc<Mutex<DaemonCore>>,
    last: Mutex<String>,
    /// [`DaemonCore::rounds_total`] when `last` was rendered.
    rounds_seen: AtomicU64,
}

impl Page {
    pub(super) fn new(core: Arc<Mutex<DaemonCore>>) -> Self {
        Self {
            core,
            last: Mutex::new(String::new()),
            rounds_seen: AtomicU64::new(u64::MAX),
        }
    }

    fn store(&self, core: &DaemonCore) -> String {
        let p = core.metrics();
        self.rounds_seen
            .store(core.rounds_total(), Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = p.clone();
        p
    }

    /// Called with the core after each step: a step that ran a round held
    /// the core for its length, so scrapes meanwhile were served `last`;
    /// renders the page again so the next ones show the round.
    pub(super) fn after_step(&self, core: &DaemonCore) {
        if core.rounds_total() != self.rounds_seen.load(Ordering::Relaxed) {
            self.store(core);
        }
    }

    pub(super) fn render(&self) -> String {
        match self.core.try_lock() {
            Ok(core) => self.store(&core),
            Err(_) => self.last.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Serves `/metrics` (see [`Page`]). Each connection is bounded: 8 KiB of
/// request, 5 s to send it.
pub(super) async fn serve(listener: TcpListener, page: Arc<Page>) {
    loop {
        let (mut sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let page = page.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while buf.len() < 8192 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let req = String::from_utf8_lossy(&buf);
            let first = req.lines().next().unwrap_or("");
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = target.split('?').next().unwrap_or("");
            let (status, ctype, body) = match (method, path) {
                ("GET" | "HEAD", "/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    page.render(),
                ),
                ("GET" | "HEAD", "/") => (
                    "200 OK",
                    "text/plain; charset=utf-8",
                    "zramctl daemon: metrics at /metrics\n".to_owned(),
                ),
                ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET only\n".to_owned(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                sock.write_all(head.as_bytes()).await?;
                if method != "HEAD" {
                    sock.write_all(body.as_bytes()).await?;
                }
                sock.shutdown().await
            })
            .await;
            let _ = peer;
        });
    }
}
