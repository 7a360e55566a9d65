//! The swap trace format that `zramctl trace record` writes and the policy
//! lab replays.
//!
//! # `zramctl-trace 2`
//!
//! Text, one record a line, so that a trace compresses well and can be read
//! and cut with ordinary tools. The first line is `zramctl-trace 2`; `#`
//! starts a comment. `meta KEY VALUE...` lines (before the first event)
//! describe the recording. Every event line starts with the time since the
//! previous event in microseconds:
//!
//! ```text
//! zramctl-trace 2
//! meta disksize 268435456          # bytes (required)
//! meta backing 134217728           # backing device bytes (default: disksize / 2)
//! meta driver zram                 # or rzram
//! meta sizes exact                 # exact | none: whether `w` carries sizes
//! 0 mem 180000 262144              # MemAvailable and MemTotal in KiB
//! 120 w 17 1210                    # slot 17 written, compressed to 1210 bytes
//! 3 w 18 0                         # slot 18 written, same-filled
//! 5 w 19 4096                      # slot 19 written, stored uncompressed (huge)
//! 9 w 20 - 8                       # slots 20..27 written, size unknown
//! 1500 r 17                        # slot 17 read (swap-in)
//! 7 d 17 4                         # slots 17..20 freed (discard)
//! 100000 psi 12.5                  # PSI memory "some avg10", percent
//! 9000 sus 30                      # the machine was suspended for 30 s
//! 12 wb 21                         # slot 21 written back (recording side)
//! ```
//!
//! `r` and `d` take an optional page count. `wb` lines record writebacks
//! that happened while recording; replay ignores them (the policy under
//! test decides writeback). A file without the header is the version 1
//! format of `zramctl simulate` (`TIME OP SLOT[+PAGES]`, times in seconds)
//! and is read as such, with unknown sizes.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

/// The current version written by [`Writer`].
pub const VERSION: u32 = 2;
pub const MAGIC: &str = "zramctl-trace";

/// One trace event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `pages` slots from `slot` written; `size` compressed bytes each
    /// (None: unknown).
    Write {
        slot: u64,
        pages: u32,
        size: Option<u32>,
    },
    Read {
        slot: u64,
        pages: u32,
    },
    Discard {
        slot: u64,
        pages: u32,
    },
    Psi(f64),
    Mem {
        available_kb: u64,
        total_kb: u64,
    },
    /// The machine slept this long (boot time moved, monotonic time not).
    Suspend {
        ns: u64,
    },
    /// A writeback the recording system did.
    Writeback {
        slot: u64,
    },
}

/// An event at `t_us` microseconds from the start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub t_us: u64,
    pub op: Op,
}

/// A parsed trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub version: u32,
    pub meta: BTreeMap<String, String>,
    pub events: Vec<Event>,
}

/// A parse error with the line it is on.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: {msg}")]
    Bad { line: usize, msg: String },
    #[error("reading the trace: {0}")]
    Io(#[from] std::io::Error),
    #[error("the trace has no `meta disksize BYTES` line")]
    NoDisksize,
}

fn bad(line: usize, msg: impl Into<String>) -> TraceError {
    TraceError::Bad {
        line,
        msg: msg.into(),
    }
}

impl Trace {
    pub fn meta_u64(&self, key: &str) -> Option<u64> {
        self.meta.get(key).and_then(|v| v.parse().ok())
    }
    pub fn disksize(&self) -> Result<u64, TraceError> {
        self.meta_u64("disksize").ok_or(TraceError::NoDisksize)
    }
    pub fn duration_us(&self) -> u64 {
        self.events.last().map_or(0, |e| e.t_us)
    }

    /// Reads a trace (version 2, or version 1 without a header).
    pub fn parse(r: impl BufRead) -> Result<Trace, TraceError> {
        let mut lines = r.lines().enumerate().peekable();
        let mut t = Trace {
            version: 1,
            ..Trace::default()
        };
        // Skip leading blank/comment lines to find the header.
        let mut first: Option<(usize, String)> = None;
        for (n, line) in lines.by_ref() {
            let line = line?;
            let text = line.split('#').next().unwrap_or("").trim().to_string();
            if !text.is_empty() {
                first = Some((n + 1, text));
                break;
            }
        }
        let Some((n0, head)) = first else {
            return Ok(t);
        };
        let mut f = head.split_whitespace();
        if f.next() == Some(MAGIC) {
            let v: u32 = f
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(n0, "expected `zramctl-trace VERSION`"))?;
            if v != VERSION {
                return Err(bad(
                    n0,
                    format!(
                        "trace version {v} is not supported (this zramctl reads 1 and {VERSION})"
                    ),
                ));
            }
            t.version = v;
            let mut now = 0u64;
            for (n, line) in lines {
                let n = n + 1;
                let line = line?;
                let text = line.split('#').next().unwrap_or("").trim();
                if text.is_empty() {
                    continue;
                }
                let f: Vec<&str> = text.split_whitespace().collect();
                if f[0] == "meta" {
                    if !t.events.is_empty() {
                        return Err(bad(n, "meta lines must come before the first event"));
                    }
                    if f.len() < 3 {
                        return Err(bad(n, "expected `meta KEY VALUE`"));
                    }
                    t.meta.insert(f[1].to_string(), f[2..].join(" "));
                    continue;
                }
                let dt: u64 = f[0].parse().map_err(|_| {
                    bad(n, format!("{:?} is not a time delta in microseconds", f[0]))
                })?;
                now = now
                    .checked_add(dt)
                    .ok_or_else(|| bad(n, "time overflows"))?;
                let op = parse_op(n, &f[1..])?;
                t.events.push(Event { t_us: now, op });
            }
        } else {
            // Version 1: `TIME OP SLOT[+PAGES]` with TIME in seconds.
            let mut all = vec![(n0, head)];
            for (n, line) in lines {
                let line = line?;
                let text = line.split('#').next().unwrap_or("").trim().to_string();
                if !text.is_empty() {
                    all.push((n + 1, text));
                }
            }
            let mut last = 0u64;
            for (n, text) in all {
                let f: Vec<&str> = text.split_whitespace().collect();
                if f.len() != 3 {
                    return Err(bad(
                        n,
                        format!("expected `TIME OP SLOT[+PAGES]`, got {text:?}"),
                    ));
                }
                let secs: f64 = f[0]
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| bad(n, format!("time {:?} is not a number of seconds", f[0])))?;
                let t_us = (secs * 1e6).round() as u64;
                if t_us < last {
                    return Err(bad(n, format!("time {secs} goes backwards")));
                }
                last = t_us;
                let (slot, pages) = if f[1] == "psi" {
                    (0, 0)
                } else {
                    let (a, b) = f[2].split_once('+').unwrap_or((f[2], "1"));
                    (
                        a.parse()
                            .map_err(|_| bad(n, format!("slot {a:?} is not a number")))?,
                        b.parse()
                            .ok()
                            .filter(|p| (1..=1 << 24).contains(p))
                            .ok_or_else(|| {
                                bad(n, format!("page count {b:?} must be 1..=16777216"))
                            })?,
                    )
                };
                let op = match f[1] {
                    "w" => Op::Write {
                        slot,
                        pages,
                        size: None,
                    },
                    "r" => Op::Read { slot, pages },
                    "d" => Op::Discard { slot, pages },
                    "psi" => Op::Psi(parse_psi(n, f[2])?),
                    op => return Err(bad(n, format!("unknown operation {op:?}"))),
                };
                t.events.push(Event { t_us, op });
            }
        }
        Ok(t)
    }
}

fn parse_psi(n: usize, s: &str) -> Result<f64, TraceError> {
    s.parse()
        .ok()
        .filter(|p: &f64| (0.0..=100.0).contains(p))
        .ok_or_else(|| bad(n, format!("psi {s:?} must be 0..100")))
}

fn parse_op(n: usize, f: &[&str]) -> Result<Op, TraceError> {
    let num = |i: usize, what: &str| -> Result<u64, TraceError> {
        let s = f
            .get(i)
            .ok_or_else(|| bad(n, format!("`{}` needs {what}", f[0])))?;
        s.parse()
            .map_err(|_| bad(n, format!("{what} {s:?} is not a number")))
    };
    let pages = |i: usize| -> Result<u32, TraceError> {
        match f.get(i) {
            None => Ok(1),
            Some(s) => s
                .parse()
                .ok()
                .filter(|p| (1..=1 << 24).contains(p))
                .ok_or_else(|| bad(n, format!("page count {s:?} must be 1..=16777216"))),
        }
    };
    let op = match *f.first().unwrap_or(&"") {
        "w" => {
            let slot = num(1, "a slot")?;
            let size = match f.get(2) {
                Some(&"-") => None,
                Some(s) => Some(
                    s.parse::<u32>()
                        .ok()
                        .filter(|s| *s <= 4096)
                        .ok_or_else(|| bad(n, format!("size {s:?} must be 0..=4096 or -")))?,
                ),
                None => return Err(bad(n, "`w` needs a slot and a size (or -)")),
            };
            Op::Write {
                slot,
                pages: pages(3)?,
                size,
            }
        }
        "r" => Op::Read {
            slot: num(1, "a slot")?,
            pages: pages(2)?,
        },
        "d" => Op::Discard {
            slot: num(1, "a slot")?,
            pages: pages(2)?,
        },
        "wb" => Op::Writeback {
            slot: num(1, "a slot")?,
        },
        "psi" => Op::Psi(parse_psi(
            n,
            f.get(1).ok_or_else(|| bad(n, "`psi` needs a value"))?,
        )?),
        "mem" => {
            let available_kb = num(1, "MemAvailable KiB")?;
            let total_kb = num(2, "MemTotal KiB")?;
            if total_kb == 0 || available_kb > total_kb {
                return Err(bad(n, "mem needs 0 <= available <= total, total > 0"));
            }
            Op::Mem {
                available_kb,
                total_kb,
            }
        }
        "sus" => Op::Suspend {
            ns: f
                .get(1)
                .and_then(|s| secs_to_ns(s))
                .ok_or_else(|| bad(n, "`sus` needs seconds >= 0 (at most 9 decimals)"))?,
        },
        op => {
            return Err(bad(
                n,
                format!("unknown operation {op:?} (expected w, r, d, wb, psi, mem or sus)"),
            ));
        }
    };
    Ok(op)
}

/// `SECS[.FRACTION]` to ns, exactly.
fn secs_to_ns(s: &str) -> Option<u64> {
    let (i, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: u64 = i.parse().ok()?;
    let f: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    i.checked_mul(1_000_000_000)?.checked_add(f)
}

/// Writes a version 2 trace.
pub struct Writer<W: Write> {
    out: W,
    last_us: u64,
    started: bool,
}

impl<W: Write> Writer<W> {
    /// Writes the header and `meta` lines.
    pub fn new<'a>(
        mut out: W,
        meta: impl IntoIterator<Item = (&'a str, String)>,
    ) -> std::io::Result<Self> {
        writeln!(out, "{MAGIC} {VERSION}")?;
        for (k, v) in meta {
            writeln!(out, "meta {k} {v}")?;
        }
        Ok(Writer {
            out,
            last_us: 0,
            started: false,
        })
    }

    /// Appends an event; times must not go backwards (a backwards time is
    /// written as 0 later, never dropped).
    pub fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        let dt = ev.t_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(ev.t_us);
        self.started = true;
        let o = &mut self.out;
        match ev.op {
            Op::Write { slot, pages, size } => {
                match size {
                    Some(s) => write!(o, "{dt} w {slot} {s}")?,
                    None => write!(o, "{dt} w {slot} -")?,
                }
                if pages != 1 {
                    write!(o, " {pages}")?;
                }
                writeln!(o)
            }
            Op::Read { slot, pages: 1 } => writeln!(o, "{dt} r {slot}"),
            Op::Read { slot, pages } => writeln!(o, "{dt} r {slot} {pages}"),
            Op::Discard { slot, pages: 1 } => writeln!(o, "{dt} d {slot}"),
            Op::Discard { slot, pages } => writeln!(o, "{dt} d {slot} {pages}"),
            Op::Writeback { slot } => writeln!(o, "{dt} wb {slot}"),
            Op::Psi(p) => writeln!(o, "{dt} psi {p:.2}"),
            Op::Mem {
                available_kb,
                total_kb,
            } => writeln!(o, "{dt} mem {available_kb} {total_kb}"),
            Op::Suspend { ns } => writeln!(
                o,
                "{dt} sus {}.{:09}",
                ns / 1_000_000_000,
                ns % 1_000_000_000
            ),
        }
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_documented_example() {
        let src = "zramctl-trace 2\nmeta disksize 268435456\nmeta driver zram\n\
                   0 mem 180000 262144\n120 w 17 1210\n3 w 18 0\n5 w 19 4096\n9 w 20 - 8\n\
                   1500 r 17\n7 d 17 4\n100000 psi 12.5\n9000 sus 30\n12 wb 21\n";
        let t = Trace::parse(src.as_bytes()).unwrap();
        assert_eq!(t.version, 2);
        assert_eq!(t.disksize().unwrap(), 268_435_456);
        assert_eq!(t.events.len(), 10);
        assert_eq!(t.events[4].t_us, 137);
        assert_eq!(
            t.events[4].op,
            Op::Write {
                slot: 20,
                pages: 8,
                size: None
            }
        );
        assert_eq!(t.events[8].op, Op::Suspend { ns: 30_000_000_000 });
        assert_eq!(t.duration_us(), 110_656);
    }

    #[test]
    fn version_1_is_read_and_errors_name_the_line() {
        let t = Trace::parse("0 w 0+4\n1.5 r 2\n2 psi 3\n".as_bytes()).unwrap();
        assert_eq!(t.version, 1);
        assert_eq!(t.events[1].t_us, 1_500_000);
        for (src, want) in [
            (
                "zramctl-trace 3\n",
                "line 1: trace version 3 is not supported",
            ),
            (
                "zramctl-trace 2\n0 x 1\n",
                "line 2: unknown operation \"x\"",
            ),
            (
                "zramctl-trace 2\n0 w 1 5000\n",
                "line 2: size \"5000\" must be",
            ),
            (
                "zramctl-trace 2\n0 w 1\n",
                "line 2: `w` needs a slot and a size",
            ),
            (
                "zramctl-trace 2\n-1 r 1\n",
                "line 2: \"-1\" is not a time delta",
            ),
            (
                "zramctl-trace 2\n0 r 1\nmeta a b\n",
                "line 3: meta lines must come before",
            ),
            ("zramctl-trace 2\n0 mem 5 4\n", "line 2: mem needs"),
            ("1 r 1\n0 r 1\n", "line 2: time 0 goes backwards"),
        ] {
            let e = Trace::parse(src.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{src:?}: {e}");
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..1 << 30, 1u32..64, proptest::option::of(0u32..=4096))
                .prop_map(|(slot, pages, size)| Op::Write { slot, pages, size }),
            (0u64..1 << 30, 1u32..64).prop_map(|(slot, pages)| Op::Read { slot, pages }),
            (0u64..1 << 30, 1u32..64).prop_map(|(slot, pages)| Op::Discard { slot, pages }),
            (0u32..10_000).prop_map(|p| Op::Psi(p as f64 / 100.0)),
            (0u64..1 << 20, 1u64..1 << 20).prop_map(|(a, b)| Op::Mem {
                available_kb: a.min(b),
                total_kb: b
            }),
            (0u64..1 << 20).prop_map(|ms| Op::Suspend { ns: ms * 1_000_000 }),
            (0u64..1 << 30).prop_map(|slot| Op::Writeback { slot }),
        ]
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(evs in proptest::collection::vec((0u64..1_000_000, op()), 0..200)) {
            let mut t_us = 0;
            let events: Vec<Event> = evs
                .into_iter()
                .map(|(dt, op)| {
                    t_us += dt;
                    Event { t_us, op }
                })
                .collect();
            let mut w = Writer::new(Vec::new(), [("disksize", "4096".to_string())]).unwrap();
            for e in &events {
                w.event(e).unwrap();
            }
            let buf = w.finish().unwrap();
            let t = Trace::parse(&buf[..]).unwrap();
            prop_assert_eq!(t.version, 2);
            prop_assert_eq!(t.meta_u64("disksize"), Some(4096));
            prop_assert_eq!(t.events, events);
        }
    }
}
