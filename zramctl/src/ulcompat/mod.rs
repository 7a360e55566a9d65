//! util-linux compatibility: `zramctl` without one of our subcommands
//! behaves as util-linux 2.38's `zramctl(8)`.
//!
//! The same argument forms (`zramctl`, `zramctl DEVICE`, `-f/--find`,
//! `DEVICE -s SIZE [-a ALG] [-t N]`, `-r DEVICE...`, `-o/--output LIST`,
//! `--output-all`, `-b`, `-n`, `--raw`, `-V`, `-h`), the same parse (GNU
//! getopt_long with permutation and unique prefixes), sizes (`K/M/G...`
//! binary, `KB/MB/GB...` decimal), table, exit codes and error texts, so
//! that scripts written for util-linux's run unchanged. zram-tools'
//! `zramswap`, zram-generator's docs and `dev=$(zramctl --find --size 4G)`
//! setups are the users. A host test (`tests/ulcompat.rs`) runs each form
//! through util-linux's binary and this one and compares them; the
//! deliberate differences are listed in `docs/util-linux.md`.
//!
//! Our subcommands (`status`, `writeback`, ...) stay: a util-linux device
//! argument is a path or `zramN`, never one of their names, so the first
//! operand decides ([`is_util_linux_form`]).

pub mod doc;
mod getopt;
pub mod size;
mod table;

use std::{
    io::{self, Write as _},
    path::PathBuf,
};

pub use crate::ops::ulcompat::Env;
use crate::ops::ulcompat::{
    Zram, control_remove, find_free, list_used, mountpoint, read_attr, resolve, write_attr,
};
use getopt::{Getopt, LongOpt};
use table::Col;

/// Our subcommands; the first operand naming one of them means our CLI.
pub const SUBCOMMANDS: [&str; 13] = [
    "status",
    "writeback",
    "idle",
    "limit",
    "batch",
    "setup",
    "reset",
    "recompress",
    "top",
    "daemon",
    "simulate",
    "trace",
    "help",
];

const SHORT: &str = "a:bfho:nrs:t:V";

const LONG: &[LongOpt] = &[
    LongOpt {
        name: "algorithm",
        has_arg: true,
        id: 'a',
    },
    LongOpt {
        name: "bytes",
        has_arg: false,
        id: 'b',
    },
    LongOpt {
        name: "find",
        has_arg: false,
        id: 'f',
    },
    LongOpt {
        name: "help",
        has_arg: false,
        id: 'h',
    },
    LongOpt {
        name: "output",
        has_arg: true,
        id: 'o',
    },
    LongOpt {
        name: "output-all",
        has_arg: false,
        id: OUTPUT_ALL,
    },
    LongOpt {
        name: "noheadings",
        has_arg: false,
        id: 'n',
    },
    LongOpt {
        name: "reset",
        has_arg: false,
        id: 'r',
    },
    LongOpt {
        name: "raw",
        has_arg: false,
        id: RAW,
    },
    LongOpt {
        name: "size",
        has_arg: true,
        id: 's',
    },
    LongOpt {
        name: "streams",
        has_arg: true,
        id: 't',
    },
    LongOpt {
        name: "version",
        has_arg: false,
        id: 'V',
    },
    // Ours: the sysfs tree to work on (as for the subcommands).
    LongOpt {
        name: "sysfs-root",
        has_arg: true,
        id: SYSFS_ROOT,
    },
];

// Ids of long-only options (util-linux numbers them above CHAR_MAX).
const RAW: char = '\u{80}';
const OUTPUT_ALL: char = '\u{81}';
const SYSFS_ROOT: char = '\u{82}';

/// Mutually exclusive groups, as util-linux declares them.
const EXCLUSIVE: [&[char]; 2] = [&['f', 'o', 'r'], &['o', 'r', 's']];

/// Whether these arguments (without argv[0]) are a util-linux form: no
/// operand, or a first operand that is not one of our subcommands.
pub fn is_util_linux_form(args: &[String]) -> bool {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return true;
        }
        if let Some(body) = a.strip_prefix("--") {
            if !body.contains('=') && long_takes_value(body) {
                i += 1;
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let shorts: Vec<char> = a[1..].chars().collect();
            if let Some(pos) = shorts.iter().position(|c| "aost".contains(*c))
                && pos + 1 == shorts.len()
            {
                i += 1;
            }
        } else {
            return !SUBCOMMANDS.contains(&a.as_str());
        }
        i += 1;
    }
    true
}

fn long_takes_value(name: &str) -> bool {
    if LONG.iter().any(|o| o.name == name) {
        return LONG.iter().any(|o| o.name == name && o.has_arg);
    }
    let cands: Vec<&LongOpt> = LONG.iter().filter(|o| o.name.starts_with(name)).collect();
    cands.len() == 1 && cands[0].has_arg
}

/// The columns of util-linux 2.38's zramctl, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Name,
    Disksize,
    Data,
    Compr,
    Algorithm,
    Streams,
    ZeroPages,
    Total,
    MemLimit,
    MemUsed,
    Migrated,
    Mountpoint,
}

/// (column, header, right-aligned, help, libsmartcols width hint).
type ColumnInfo = (Column, &'static str, bool, &'static str, f64);

const COLUMNS: [ColumnInfo; 12] = [
    (Column::Name, "NAME", false, "zram device name", 0.25),
    (
        Column::Disksize,
        "DISKSIZE",
        true,
        "limit on the uncompressed amount of data",
        5.0,
    ),
    (
        Column::Data,
        "DATA",
        true,
        "uncompressed size of stored data",
        5.0,
    ),
    (
        Column::Compr,
        "COMPR",
        true,
        "compressed size of stored data",
        5.0,
    ),
    (
        Column::Algorithm,
        "ALGORITHM",
        false,
        "the selected compression algorithm",
        3.0,
    ),
    (
        Column::Streams,
        "STREAMS",
        true,
        "number of concurrent compress operations",
        3.0,
    ),
    (
        Column::ZeroPages,
        "ZERO-PAGES",
        true,
        "empty pages with no allocated memory",
        3.0,
    ),
    (
        Column::Total,
        "TOTAL",
        true,
        "all memory including allocator fragmentation and metadata overhead",
        5.0,
    ),
    (
        Column::MemLimit,
        "MEM-LIMIT",
        true,
        "memory limit used to store compressed data",
        5.0,
    ),
    (
        Column::MemUsed,
        "MEM-USED",
        true,
        "memory zram have been consumed to store compressed data",
        5.0,
    ),
    (
        Column::Migrated,
        "MIGRATED",
        true,
        "number of objects migrated by compaction",
        5.0,
    ),
    (
        Column::Mountpoint,
        "MOUNTPOINT",
        false,
        "where the device is mounted",
        0.10,
    ),
];

const DEFAULT_COLUMNS: [Column; 8] = [
    Column::Name,
    Column::Algorithm,
    Column::Disksize,
    Column::Data,
    Column::Compr,
    Column::Total,
    Column::Streams,
    Column::Mountpoint,
];

/// Output of one run: what to print and the exit code.
struct Run<'a> {
    prog: &'a str,
    out: String,
    err: String,
}

/// Ends the run with `code` (util-linux's `errx`/`exit`).
struct Exit(i32);

impl Run<'_> {
    /// `errx()`: `zramctl: MSG`.
    fn errx(&mut self, msg: impl AsRef<str>) -> Exit {
        self.warnx(msg);
        Exit(1)
    }
    fn warnx(&mut self, msg: impl AsRef<str>) {
        self.err
            .push_str(&format!("{}: {}\n", self.prog, msg.as_ref()));
    }
    /// `warn()`/`err()`: `zramctl: MSG: strerror(errno)`.
    fn warn(&mut self, msg: impl AsRef<str>, errno: i32) {
        self.warnx(format!("{}: {}", msg.as_ref(), strerror(errno)));
    }
    fn err(&mut self, msg: impl AsRef<str>, errno: i32) -> Exit {
        self.warn(msg, errno);
        Exit(1)
    }
}

/// `strerror(errno)`, as glibc words it.
pub fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    s.split(" (os error").next().unwrap_or(&s).to_owned()
}

/// Runs a util-linux form and returns the exit code. `argv0` is the name
/// as invoked (glibc's getopt messages use it whole); `args` follow it.
pub fn main(argv0: &str, args: Vec<String>) -> i32 {
    let env = Env::default();
    let (code, out, err) = run_with(&env, argv0, args);
    let _ = io::stderr().write_all(err.as_bytes());
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        let _ = writeln!(io::stderr(), "zramctl: write error: {}", strerror(errno));
        return 1;
    }
    code
}

/// Runs a util-linux form in `env`: (exit code, stdout, stderr).
pub fn run_with(env: &Env, argv0: &str, args: Vec<String>) -> (i32, String, String) {
    let mut run = Run {
        prog: "zramctl",
        out: String::new(),
        err: String::new(),
    };
    let mut env = env.clone();
    let code = match run_inner(&mut run, &mut env, argv0, args) {
        Ok(()) => 0,
        Err(Exit(c)) => c,
    };
    (code, run.out, run.err)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    None,
    Create,
    Reset,
}

fn run_inner(run: &mut Run, env: &mut Env, argv0: &str, args: Vec<String>) -> Result<(), Exit> {
    let mut g = Getopt::new(args, SHORT, LONG);
    let (mut size, mut nstreams) = (0u64, 0u64);
    let mut algorithm: Option<String> = None;
    let (mut find, mut act) = (false, Action::None);
    let (mut raw, mut headings, mut bytes) = (false, true, false);
    let mut columns: Vec<Column> = Vec::new();
    let mut excl_seen: [Option<char>; 2] = [None; 2];
    while let Some(r) = g.next_opt() {
        let (c, value) = match r {
            Ok(v) => v,
            Err(e) => {
                run.err.push_str(&format!("{argv0}: {}\n", e.0));
                return Err(try_help(run));
            }
        };
        for (e, group) in EXCLUSIVE.iter().enumerate() {
            if !group.contains(&c) {
                continue;
            }
            match excl_seen[e] {
                None => excl_seen[e] = Some(c),
                Some(prev) if prev != c => {
                    let names: String = group
                        .iter()
                        .map(|o| {
                            let long = LONG.iter().find(|l| l.id == *o).expect("listed");
                            format!(" --{}", long.name)
                        })
                        .collect();
                    run.err.push_str(&format!(
                        "{}: mutually exclusive arguments:{names}\n",
                        run.prog
                    ));
                    return Err(Exit(1));
                }
                Some(_) => {}
            }
        }
        let value = value.unwrap_or_default();
        match c {
            'a' => algorithm = Some(value),
            'b' => bytes = true,
            'f' => find = true,
            'o' => columns = parse_columns(run, &value)?,
            OUTPUT_ALL => columns = COLUMNS.iter().map(|c| c.0).collect(),
            's' => {
                size = match size::parse_size(&value) {
                    Ok(s) => s,
                    Err(errno) => {
                        return Err(run.err(format!("failed to parse size: '{value}'"), errno));
                    }
                };
                act = Action::Create;
            }
            't' => {
                nstreams = match parse_u64(&value) {
                    Ok(n) => n,
                    Err(Some(errno)) => {
                        return Err(run.err(format!("failed to parse streams: '{value}'"), errno));
                    }
                    Err(None) => {
                        return Err(run.errx(format!("failed to parse streams: '{value}'")));
                    }
                };
            }
            'r' => act = Action::Reset,
            RAW => raw = true,
            'n' => headings = false,
            SYSFS_ROOT => env.sys = PathBuf::from(value),
            'V' => {
                run.out.push_str(&format!(
                    "zramctl from zramctl {} (util-linux 2.38 compatible)\n",
                    env!("CARGO_PKG_VERSION")
                ));
                return Ok(());
            }
            'h' => {
                run.out.push_str(&usage());
                return Ok(());
            }
            _ => unreachable!("getopt returns listed options only"),
        }
    }
    let operands = g.operands();
    if find && !operands.is_empty() {
        return Err(run.errx("option --find is mutually exclusive with <device>"));
    }
    let find_only = act == Action::None && find;
    if act != Action::Reset && operands.len() > 1 {
        return Err(run.errx("only one <device> at a time is allowed"));
    }
    if act == Action::None && (algorithm.is_some() || nstreams != 0) {
        return Err(run.errx("options --algorithm and --streams must be combined with --size"));
    }
    match act {
        Action::None if find_only => {
            let Some(z) = find_free(env) else {
                return Err(run.errx("no free zram device found"));
            };
            run.out.push_str(&format!("{}\n", z.devname));
        }
        Action::None => {
            if columns.is_empty() {
                columns = DEFAULT_COLUMNS.to_vec();
            }
            let devices = match operands.first() {
                Some(name) => match resolve(env, name) {
                    Some(z) => vec![z],
                    None => return Err(run.err(name, libc::ENODEV)),
                },
                None => match list_used(env) {
                    Ok(d) => d,
                    Err(errno) => {
                        return Err(run.err(format!("cannot open {}", env.dev.display()), errno));
                    }
                },
            };
            let cols: Vec<Col> = columns
                .iter()
                .map(|c| {
                    let info = COLUMNS.iter().find(|i| i.0 == *c).expect("listed");
                    Col {
                        name: info.1,
                        right: info.2,
                        whint: info.4,
                    }
                })
                .collect();
            let rows: Vec<Vec<Option<String>>> = devices
                .iter()
                .map(|z| row(z, env, &columns, bytes))
                .collect::<Result<_, String>>()
                .map_err(|m| run.errx(m))?;
            run.out
                .push_str(&table::render(&cols, &rows, raw, headings));
        }
        Action::Reset => {
            if operands.is_empty() {
                return Err(run.errx("no device specified"));
            }
            let mut failed = false;
            for name in &operands {
                let z = resolve(env, name);
                let res = match &z {
                    None => Err(libc::ENODEV),
                    Some(z) => write_attr(&z.sysdir, "reset", "1"),
                };
                let devname = z.as_ref().map_or(name.as_str(), |z| z.devname.as_str());
                if let Err(errno) = res {
                    run.warn(format!("{devname}: failed to reset"), errno);
                    failed = true;
                }
                // As util-linux: a reset device is also hot-removed.
                control_remove(env, devname);
            }
            if failed {
                return Err(Exit(1));
            }
        }
        Action::Create => {
            let z = if find {
                match find_free(env) {
                    Some(z) => z,
                    None => return Err(run.errx("no free zram device found")),
                }
            } else if let Some(name) = operands.first() {
                match resolve(env, name) {
                    Some(z) => z,
                    None => return Err(run.err(name, libc::ENODEV)),
                }
            } else {
                return Err(run.errx("no device specified"));
            };
            let d = &z.devname;
            write_attr(&z.sysdir, "reset", "1")
                .map_err(|e| run.err(format!("{d}: failed to reset"), e))?;
            if nstreams != 0 {
                write_attr(&z.sysdir, "max_comp_streams", &nstreams.to_string())
                    .map_err(|e| run.err(format!("{d}: failed to set number of streams"), e))?;
            }
            if let Some(alg) = &algorithm {
                write_attr(&z.sysdir, "comp_algorithm", alg)
                    .map_err(|e| run.err(format!("{d}: failed to set algorithm"), e))?;
            }
            write_attr(&z.sysdir, "disksize", &size.to_string())
                .map_err(|e| run.err(format!("{d}: failed to set disksize ({size} bytes)"), e))?;
            if find {
                run.out.push_str(&format!("{d}\n"));
            }
        }
    }
    Ok(())
}

fn try_help(run: &mut Run) -> Exit {
    run.err.push_str(&format!(
        "Try '{} --help' for more information.\n",
        run.prog
    ));
    Exit(1)
}

/// `-o LIST` as util-linux's `string_to_idarray()` reads it, quirks included
/// (an empty name fails silently; an unknown one is named with the rest of
/// the list after it).
fn parse_columns(run: &mut Run, list: &str) -> Result<Vec<Column>, Exit> {
    let b = list.as_bytes();
    if b.is_empty() {
        return Err(Exit(1));
    }
    let mut cols = Vec::new();
    let mut begin: Option<usize> = None;
    for p in 0..b.len() {
        if cols.len() >= COLUMNS.len() * 2 {
            return Err(Exit(1));
        }
        let start = *begin.get_or_insert(p);
        let mut end = None;
        if b[p] == b',' {
            end = Some(p);
        }
        if p + 1 == b.len() {
            end = Some(p + 1);
        }
        let Some(end) = end else { continue };
        if end <= start {
            return Err(Exit(1));
        }
        let name = &list[start..end];
        match COLUMNS.iter().find(|c| c.1.eq_ignore_ascii_case(name)) {
            Some(c) => cols.push(c.0),
            None => {
                run.warnx(format!("unknown column: {}", &list[start..]));
                return Err(Exit(1));
            }
        }
        begin = None;
    }
    Ok(cols)
}

/// `strtou64_or_err()`: a decimal number; `Err(Some(ERANGE))` on overflow
/// (util-linux then appends strerror), `Err(None)` otherwise.
fn parse_u64(s: &str) -> Result<u64, Option<i32>> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if s.is_empty() {
        return Err(None);
    }
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Some(rest) = t.strip_prefix('-') {
        // strtoimax() then a negative value: ERANGE, except for "-0".
        if rest.is_empty() || !rest.bytes().all(|c| c.is_ascii_digit()) {
            return Err(None);
        }
        if rest.bytes().all(|c| c == b'0') {
            return Ok(0);
        }
        return Err(Some(libc::ERANGE));
    }
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(None);
    }
    digits.parse::<u64>().map_err(|_| Some(libc::ERANGE))
}

/// One table row of `z`.
fn row(
    z: &Zram,
    env: &Env,
    columns: &[Column],
    bytes: bool,
) -> Result<Vec<Option<String>>, String> {
    let dir = &z.sysdir;
    let mm: Option<Vec<String>> = read_attr(dir, "mm_stat")
        .map(|s| {
            s.split(' ')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|v: &Vec<String>| v.len() >= 7);
    let mm_field = |idx: usize, raw: bool| -> Result<Option<String>, String> {
        let Some(mm) = &mm else { return Ok(None) };
        let v = &mm[idx];
        if raw {
            return Ok(Some(v.clone()));
        }
        match parse_u64(v) {
            Ok(n) => Ok(Some(size::human(n))),
            Err(_) => Err(format!("Failed to parse mm_stat: '{v}'")),
        }
    };
    let mut row = Vec::new();
    for c in columns {
        row.push(match c {
            Column::Name => Some(z.devname.clone()),
            Column::Disksize => {
                let s = read_attr(dir, "disksize");
                if bytes {
                    s
                } else {
                    s.and_then(|s| s.trim().parse::<u64>().ok())
                        .map(size::human)
                }
            }
            Column::Algorithm => read_attr(dir, "comp_algorithm").and_then(|a| {
                let l = a.rfind('[')?;
                let r = a.rfind(']')?;
                (r > l + 1).then(|| a[l + 1..r].to_owned())
            }),
            Column::Mountpoint => mountpoint(env, &z.devname),
            Column::Streams => read_attr(dir, "max_comp_streams"),
            Column::ZeroPages => mm_field(5, true)?,
            Column::Data => mm_field(0, bytes)?,
            Column::Compr => mm_field(1, bytes)?,
            Column::Total => mm_field(2, bytes)?,
            Column::MemLimit => mm_field(3, bytes)?,
            Column::MemUsed => mm_field(4, bytes)?,
            Column::Migrated => mm_field(6, bytes)?,
        });
    }
    Ok(row)
}

/// `zramctl --help`: util-linux's usage, then our commands.
pub fn usage() -> String {
    let mut s = String::from(
        "\nUsage:\n zramctl [options] <device>\n zramctl -r <device> [...]\n zramctl [options] -f | <device> -s <size>\n zramctl <command> [options]   (zramctl's own commands, below)\n\n\
Set up and control zram devices, and drive zram writeback.\n\n\
Options:\n \
-a, --algorithm <alg>     compression algorithm to use\n \
-b, --bytes               print sizes in bytes rather than in human readable format\n \
-f, --find                find a free device\n \
-n, --noheadings          don't print headings\n \
-o, --output <list>       columns to use for status output\n     \
--output-all          output all columns\n     \
--raw                 use raw status output format\n \
-r, --reset               reset all specified devices\n \
-s, --size <size>         device size\n \
-t, --streams <number>    number of compression streams\n     \
--sysfs-root <dir>    sysfs tree to work on (default /sys)\n\n \
-h, --help                display this help\n \
-V, --version             display version\n\n\
Arguments:\n \
<size> arguments may be followed by the suffixes for\n   \
GiB, TiB, PiB, EiB, ZiB, and YiB (the \"iB\" is optional)\n \
<alg> specify algorithm, supported are:\n   \
lzo, lz4, lz4hc, deflate, 842 and zstd\n\n\
Available output columns:\n",
    );
    for (_, name, _, help, _) in COLUMNS {
        s.push_str(&format!(" {name:>11}  {help}\n"));
    }
    s.push_str(
        "\nCommands (zramctl's own; `zramctl <command> --help` for each):\n  \
status      show devices with writeback state\n  \
writeback   write pages from RAM to the backing device\n  \
idle        mark pages idle\n  \
limit       limit how much writeback may write\n  \
batch       set how many writeback requests may be in flight\n  \
setup       configure a device: backing device or file, algorithms, size\n  \
reset       reset a device and take down its backing file\n  \
recompress  recompress pages with a secondary algorithm\n  \
top         live view from eBPF probes\n  \
daemon      run the writeback policy daemon\n  \
simulate    replay an access trace through the policy\n\n\
For more details see zramctl(8).\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dispatch_by_first_operand() {
        assert!(is_util_linux_form(&v(&[])));
        assert!(is_util_linux_form(&v(&["/dev/zram0"])));
        assert!(is_util_linux_form(&v(&["zram0", "-s", "1G"])));
        assert!(is_util_linux_form(&v(&["-s", "status"])));
        assert!(is_util_linux_form(&v(&[
            "--find",
            "--size",
            "4G",
            "--algorithm",
            "zstd"
        ])));
        assert!(is_util_linux_form(&v(&["-r", "/dev/zram1", "/dev/zram2"])));
        assert!(is_util_linux_form(&v(&["--help"])));
        assert!(is_util_linux_form(&v(&["-V"])));
        assert!(!is_util_linux_form(&v(&["status"])));
        assert!(!is_util_linux_form(&v(&[
            "--sysfs-root",
            "/tmp/x",
            "status",
            "--json"
        ])));
        assert!(!is_util_linux_form(&v(&["setup", "zram0", "--size", "1G"])));
        assert!(!is_util_linux_form(&v(&["help"])));
    }

    #[test]
    fn columns_as_string_to_idarray() {
        let mut run = Run {
            prog: "zramctl",
            out: String::new(),
            err: String::new(),
        };
        assert_eq!(
            parse_columns(&mut run, "name,Disksize").ok(),
            Some(vec![Column::Name, Column::Disksize])
        );
        assert!(parse_columns(&mut run, "NAME,FOO,DATA").is_err());
        assert_eq!(run.err, "zramctl: unknown column: FOO,DATA\n");
        run.err.clear();
        assert!(parse_columns(&mut run, "NAME,,DATA").is_err());
        assert!(parse_columns(&mut run, "").is_err());
        assert_eq!(run.err, "");
        assert!(parse_columns(&mut run, "NAME,").is_err());
        assert_eq!(run.err, "zramctl: unknown column: NAME,\n");
    }

    #[test]
    fn streams_as_strtou64() {
        assert_eq!(parse_u64("4"), Ok(4));
        assert_eq!(parse_u64("x"), Err(None));
        assert_eq!(parse_u64("4x"), Err(None));
        assert_eq!(parse_u64(""), Err(None));
        assert_eq!(parse_u64("-1"), Err(Some(libc::ERANGE)));
        assert_eq!(parse_u64("99999999999999999999"), Err(Some(libc::ERANGE)));
    }
}
