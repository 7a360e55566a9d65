# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_zramctl_global_optspecs
    string join \n sysfs-root= a/algorithm= b/bytes f/find n/noheadings o/output= output-all raw r/reset s/size= t/streams= h/help V/version
end

function __fish_zramctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_zramctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_zramctl_using_subcommand
    set -l cmd (__fish_zramctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c zramctl -n "__fish_zramctl_needs_command" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_needs_command" -s a -l algorithm -d 'Compression algorithm to use (with --size)' -r -f -a "lzo\t''
lzo-rle\t''
lz4\t''
lz4hc\t''
zstd\t''
deflate\t''
842\t''"
complete -c zramctl -n "__fish_zramctl_needs_command" -s o -l output -d 'Columns to show, comma-separated: NAME, DISKSIZE, DATA, COMPR, ALGORITHM, STREAMS, ZERO-PAGES, TOTAL, MEM-LIMIT, MEM-USED, MIGRATED, MOUNTPOINT' -r
complete -c zramctl -n "__fish_zramctl_needs_command" -s s -l size -d 'Device size: K, M, G, T, P, E (KiB... binary), KB, MB, GB... decimal' -r
complete -c zramctl -n "__fish_zramctl_needs_command" -s t -l streams -d 'Number of compression streams (kernels that have max_comp_streams)' -r
complete -c zramctl -n "__fish_zramctl_needs_command" -s b -l bytes -d 'Print sizes in bytes rather than in human readable format'
complete -c zramctl -n "__fish_zramctl_needs_command" -s f -l find -d 'Find a free device (with --size: set it up and print its name; creates one through hot_add when every device is in use)'
complete -c zramctl -n "__fish_zramctl_needs_command" -s n -l noheadings -d 'Don\'t print headings'
complete -c zramctl -n "__fish_zramctl_needs_command" -l output-all -d 'Output all columns'
complete -c zramctl -n "__fish_zramctl_needs_command" -l raw -d 'Use raw status output format'
complete -c zramctl -n "__fish_zramctl_needs_command" -s r -l reset -d 'Reset all specified devices (and hot-remove them, as util-linux does)'
complete -c zramctl -n "__fish_zramctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_needs_command" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "status" -d 'Show devices: size, algorithm, memory use, ratio, backing device, writeback state'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "writeback" -d 'Write pages from RAM to the backing device, and report how many went'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "idle" -d 'Mark pages idle, to be picked by `writeback --idle`'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "limit" -d 'Limit how much writeback may write (flash wear budget), or lift the limit'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "batch" -d 'Set how many writeback requests may be in flight at once'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "setup" -d 'Configure an unused device: backing device, algorithm, then size'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "reset" -d 'Reset a device: free its memory and detach its backing device'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "recompress" -d 'Recompress stored pages with a secondary (stronger) algorithm'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "top" -d 'Live view from eBPF probes: access rates, slot ages, latency histograms'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "daemon" -d 'Run the writeback policy daemon (systemd Type=notify, /metrics on 127.0.0.1:9466)'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "simulate" -d 'Replay an access trace through the policy and report what it would do'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "trace" -d 'Record swap traces for `simulate --policy`'
complete -c zramctl -n "__fish_zramctl_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c zramctl -n "__fish_zramctl_using_subcommand status" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand status" -l json -d 'Print JSON (sizes always in bytes)'
complete -c zramctl -n "__fish_zramctl_using_subcommand status" -s b -l bytes -d 'Print sizes in bytes instead of K/M/G'
complete -c zramctl -n "__fish_zramctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand status" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l pages -d 'Page index ranges, inclusive: `A-B[,C-D...]`, or single indexes `N`' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l idle -d 'Pages marked idle (see `zramctl idle`)'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l huge -d 'Incompressible pages stored whole'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l huge-idle -d 'Pages that are both huge and idle'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -l incompressible -d 'Pages that recompression could not shrink'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand writeback" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand idle" -l age -d 'Mark pages not accessed for at least SECS seconds (kernel needs CONFIG_ZRAM_TRACK_ENTRY_ACTIME)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand idle" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand idle" -l all -d 'Mark every stored page idle'
complete -c zramctl -n "__fish_zramctl_using_subcommand idle" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand idle" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -l pages -d 'Allow this many more pages to be written back, then stop' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -l bytes -d 'Allow this many more bytes (rounded down to whole pages), e.g. 256M' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -l off -d 'Turn the limit off'
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand limit" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand batch" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand batch" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand batch" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l size -d 'Disk size, e.g. 4G' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l algorithm -d 'Compression algorithm, e.g. lz4 or zstd (default: the kernel\'s)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l backing-dev -d 'Block device that writeback writes to (a partition or a loop device)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l backing-file -d 'Write back to this file instead: created (or reused if the right size) with fallocate, attached to a loop device with direct I/O' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l backing-size -d 'Size of the backing file, or `auto`: a quarter of the free space, at most the disk size and 8 GiB, at least 64 MiB' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l recomp-algorithm -d 'Secondary algorithm for `zramctl recompress` (repeatable: priorities 1, 2, 3)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l mem-limit -d 'Cap on the memory the device may use, e.g. 1G' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -l encrypt -d 'Encrypt the backing file: dm-integrity (AEAD tags) and dm-crypt (AES-GCM) with a random key that lives only in the kernel, so written-back pages are unreadable after reboot and tampering reads back as an I/O error'
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand setup" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand reset" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand reset" -l delete-backing-file -d 'Also delete the backing file made by `setup --backing-file`'
complete -c zramctl -n "__fish_zramctl_using_subcommand reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand reset" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l threshold -d 'Only pages whose compressed size is at least this many bytes' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l algo -d 'Secondary algorithm by name (default: priority 1\'s)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l priority -d 'Secondary algorithm by priority (1-3)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l max-pages -d 'At most this many pages' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l idle -d 'Pages marked idle (see `zramctl idle`); with --huge, pages both idle and huge'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l huge -d 'Incompressible pages stored whole'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l all -d 'Every stored page (with --threshold: every page at least that large)'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -l json -d 'Print JSON'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand recompress" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l interval -d 'Seconds between refreshes; with --once, how long to measure' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l record -d 'Also append every report as one JSON line to FILE (for replay)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l latency-dev -d 'Also show the latency of this block device (repeatable)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l probes -d 'eBPF program type' -r -f -a "auto\t'tp_btf, falling back to raw tracepoints'
tp-btf\t'BTF-enabled tracepoints (cheapest)'
raw-tp\t'Raw tracepoints'"
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l once -d 'Print one report after one interval (or at Ctrl-C/SIGTERM) and exit'
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -l json -d 'With --once: print the report as JSON'
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand top" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -l config -d 'Configuration file (TOML)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -l check -d 'Only validate the configuration and exit'
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -l setup-only -d 'Only set up the devices the configuration sets up (disksize, algorithms, [device.backing]), then exit: zramctl-setup.service runs this with the privileges that needs, the daemon\'s unit without them'
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -l fake -d 'Run on simulated zram devices with synthetic probes (demos and tests)'
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand daemon" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l trace -d 'Access trace file (`-` for stdin)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l config -d 'Take the policy from this daemon configuration (its first device)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l slots -d 'Slots of the simulated device (default: highest slot in the trace + 1)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l step -d 'Seconds between policy steps' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l budget -d 'Override the budget, bytes per day (e.g. 256M); the burst is capped to it' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l latency-base-us -d 'Backing-device write latency model: base latency, microseconds' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l latency-per-request-us -d '... plus this much per request in flight (the batch size)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l policy -d 'Policy lab: ours, ours-before, ours-v1, android-mmd, chromeos or all' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l span-hours -d 'Policy lab: hours of policy time the trace spans (one time stretch for every policy, so that the anchors\' 20-25 h idle ages fit)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -s v -l verbose -d 'Print every round'
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -l json -d 'Print the summary as JSON'
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand simulate" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and not __fish_seen_subcommand_from record help" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and not __fish_seen_subcommand_from record help" -s h -l help -d 'Print help'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and not __fish_seen_subcommand_from record help" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and not __fish_seen_subcommand_from record help" -f -a "record" -d 'Record a zram device\'s per-slot events into a trace file'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and not __fish_seen_subcommand_from record help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -s o -l output -d 'Trace file to write (`zramctl-trace 2`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -l cgroup -d 'Memory cgroup directory whose limit, usage and pressure stand for MemTotal, MemAvailable and PSI' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -l secs -d 'Stop after this long (without CMD: until Ctrl-C)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -l sample-ms -d 'Memory and PSI sample interval' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -l meta -d 'Extra `meta KEY VALUE` line in the trace (repeatable)' -r
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -l sysfs-root -d 'Root of the sysfs tree to work on (the directory holding `block/`)' -r -F
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from record" -s V -l version -d 'Print version'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from help" -f -a "record" -d 'Record a zram device\'s per-slot events into a trace file'
complete -c zramctl -n "__fish_zramctl_using_subcommand trace; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "status" -d 'Show devices: size, algorithm, memory use, ratio, backing device, writeback state'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "writeback" -d 'Write pages from RAM to the backing device, and report how many went'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "idle" -d 'Mark pages idle, to be picked by `writeback --idle`'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "limit" -d 'Limit how much writeback may write (flash wear budget), or lift the limit'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "batch" -d 'Set how many writeback requests may be in flight at once'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "setup" -d 'Configure an unused device: backing device, algorithm, then size'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "reset" -d 'Reset a device: free its memory and detach its backing device'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "recompress" -d 'Recompress stored pages with a secondary (stronger) algorithm'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "top" -d 'Live view from eBPF probes: access rates, slot ages, latency histograms'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "daemon" -d 'Run the writeback policy daemon (systemd Type=notify, /metrics on 127.0.0.1:9466)'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "simulate" -d 'Replay an access trace through the policy and report what it would do'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "trace" -d 'Record swap traces for `simulate --policy`'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and not __fish_seen_subcommand_from status writeback idle limit batch setup reset recompress top daemon simulate trace help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c zramctl -n "__fish_zramctl_using_subcommand help; and __fish_seen_subcommand_from trace" -f -a "record" -d 'Record a zram device\'s per-slot events into a trace file'
