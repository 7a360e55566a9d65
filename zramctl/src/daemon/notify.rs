//! The sd_notify protocol (sd_notify(3)): datagrams of `KEY=VALUE` lines to
//! the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the
//! abstract namespace). Without the variable every call does nothing.

use std::{
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; an unusable value is an error naming it.
    pub fn from_env() -> io::Result<Self> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(Notifier { target: None }),
            Some(p) if p.is_empty() => Ok(Notifier { target: None }),
            Some(p) => Self::to(&p.to_string_lossy()),
        }
    }

    /// To a given socket path (`@name` for an abstract one).
    pub fn to(path: &str) -> io::Result<Self> {
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else {
            SocketAddr::from_pathname(path)?
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier {
            target: Some((sock, addr)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (`READY=1\nSTATUS=…`).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        if let Some((sock, addr)) = &self.target {
            sock.send_to_addr(msg.as_bytes(), addr)?;
        }
        Ok(())
    }

    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    pub fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    pub fn reloading(&self) -> io::Result<()> {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::platform::monotonic_ns() / 1000
        ))
    }

    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this pid).
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        assert!(n.enabled());
        n.ready("two\nlines").unwrap();
        n.watchdog().unwrap();
        let mut buf = [0u8; 256];
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=two lines");
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
        // Abstract sockets too.
        let name = format!("zramctl-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt as _;
        let abs =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        Notifier::to(&format!("@{name}"))
            .unwrap()
            .status("ok")
            .unwrap();
        let k = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STATUS=ok");
        assert!(!Notifier { target: None }.enabled());
    }
}
