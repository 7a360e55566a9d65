//! The util-linux forms as clap sees them, for the zramctl(8) man page and
//! the shell completions (which cover both forms); parsing stays in
//! [`super::getopt`], which matches util-linux's to the letter.

use clap::{Arg, ArgAction, Command, CommandFactory as _, ValueHint};

/// Our CLI plus util-linux's options and DEVICE operands.
pub fn command() -> Command {
    let flag = |id: &'static str| Arg::new(id).action(ArgAction::SetTrue);
    crate::cli::Cli::command()
        .about("Set up and control zram devices (util-linux's zramctl), and drive zram writeback")
        .long_about(
            "Without a command, zramctl is util-linux's zramctl(8): it lists initialised zram \
             devices, shows one, finds a free one (creating one through hot_add when all are in \
             use), sets one up (-s SIZE [-a ALG] [-t N]) or resets devices (-r), with \
             util-linux's options, output, exit codes and error messages. With a command \
             (status, writeback, ...), it drives zram writeback and runs the policy daemon.",
        )
        .subcommand_required(false)
        .args_conflicts_with_subcommands(true)
        .arg(
            Arg::new("DEVICE")
                .num_args(0..)
                .value_hint(ValueHint::AnyPath)
                .help("zram device (/dev/zramN or zramN); several with --reset"),
        )
        .arg(
            Arg::new("algorithm")
                .short('a')
                .long("algorithm")
                .value_name("ALG")
                .value_parser(["lzo", "lzo-rle", "lz4", "lz4hc", "zstd", "deflate", "842"])
                .help("Compression algorithm to use (with --size)"),
        )
        .arg(
            flag("bytes")
                .short('b')
                .long("bytes")
                .help("Print sizes in bytes rather than in human readable format"),
        )
        .arg(flag("find").short('f').long("find").help(
            "Find a free device (with --size: set it up and print its name; creates one through \
             hot_add when every device is in use)",
        ))
        .arg(
            flag("noheadings")
                .short('n')
                .long("noheadings")
                .help("Don't print headings"),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("LIST")
                .help(
                    "Columns to show, comma-separated: NAME, DISKSIZE, DATA, COMPR, ALGORITHM, \
                     STREAMS, ZERO-PAGES, TOTAL, MEM-LIMIT, MEM-USED, MIGRATED, MOUNTPOINT",
                ),
        )
        .arg(
            flag("output-all")
                .long("output-all")
                .help("Output all columns"),
        )
        .arg(flag("raw").long("raw").help("Use raw status output format"))
        .arg(
            flag("reset")
                .short('r')
                .long("reset")
                .help("Reset all specified devices (and hot-remove them, as util-linux does)"),
        )
        .arg(
            Arg::new("size")
                .short('s')
                .long("size")
                .value_name("SIZE")
                .help("Device size: K, M, G, T, P, E (KiB... binary), KB, MB, GB... decimal"),
        )
        .arg(
            Arg::new("streams")
                .short('t')
                .long("streams")
                .value_name("NUMBER")
                .help("Number of compression streams (kernels that have max_comp_streams)"),
        )
}

/// roff appended to the generated zramctl(8): the forms, columns, exit
/// status and what differs from util-linux's.
pub const MAN_EXTRA: &str = r#".SH "UTIL-LINUX FORMS"
Without a command, zramctl behaves as util-linux 2.38's zramctl(8), and replaces it:
.TP
\fBzramctl\fR [\fB\-o\fR \fIlist\fR] [\fB\-b\fR] [\fB\-n\fR] [\fB\-\-raw\fR] [\fIdevice\fR]
List the initialised zram devices (NAME is \fI/dev/zramN\fR), or show one device.
.TP
\fBzramctl \-f\fR
Print the first device that is not set up.
.TP
\fBzramctl\fR [\fB\-f\fR | \fIdevice\fR] \fB\-s\fR \fIsize\fR [\fB\-a\fR \fIalgorithm\fR] [\fB\-t\fR \fInumber\fR]
Reset the device, then set its algorithm and size; with \fB\-f\fR, take the first free
device (creating one through \fI/sys/class/zram\-control/hot_add\fR when every one is in
use) and print its name, as in \fBdev=$(zramctl \-\-find \-\-size 4G \-\-algorithm zstd)\fR.
.TP
\fBzramctl \-r\fR \fIdevice\fR...
Reset the devices and hot-remove them.
.PP
Sizes take util-linux's suffixes: K, M, G, T, P, E (optionally KiB, MiB, ...: powers of
1024) and KB, MB, GB, ... (powers of 1000); C number bases (0x10M) and fractions (1.5G)
work as in util-linux. The output is util-linux's table (its columns, widths and
\fB\-\-raw\fR escaping), the exit status is 0 on success and 1 on any error, and the error
messages are util-linux's, so scripts that parse them keep working.
.SH "OUTPUT COLUMNS"
NAME (zram device name), DISKSIZE (limit on the uncompressed amount of data), DATA
(uncompressed size of stored data), COMPR (compressed size of stored data), ALGORITHM (the
selected compression algorithm), STREAMS (number of concurrent compress operations),
ZERO\-PAGES (empty pages with no allocated memory), TOTAL (all memory including allocator
fragmentation and metadata overhead), MEM\-LIMIT (memory limit used to store compressed
data), MEM\-USED (memory zram has consumed to store compressed data), MIGRATED (number of
objects migrated by compaction), MOUNTPOINT (where the device is mounted, or [SWAP]).
.SH "DIFFERENCES FROM UTIL-LINUX"
\fB\-V\fR/\fB\-\-version\fR names this zramctl; \fB\-h\fR/\fB\-\-help\fR also lists the
commands below; \fB\-\-sysfs\-root\fR \fIdir\fR is accepted. A first operand that is one of
the commands runs that command (zram devices are paths or zramN, so no util-linux form is
taken). Everything else is compared with util-linux's binary by the project's tests.
.SH EXAMPLES
.nf
zramctl
dev=$(zramctl \-\-find \-\-size 4G \-\-algorithm zstd) && mkswap "$dev" && swapon "$dev"
zramctl \-\-output\-all \-\-bytes /dev/zram0
zramctl \-r /dev/zram1
zramctl setup zram0 \-\-size 4G \-\-backing\-file /var/lib/zramctl/zram0.img
zramctl writeback zram0 \-\-idle
systemctl enable \-\-now zramctl
.fi
.SH "SEE ALSO"
\fBzramctl\-status\fR(8), \fBzramctl\-setup\fR(8), \fBzramctl\-writeback\fR(8),
\fBzramctl\-daemon\fR(8), \fBswapon\fR(8), \fBmkswap\fR(8)
"#;
