//! The malformed values the fuzzer writes: generic ones and per attribute.

use crate::common::*;

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Inputs every attribute gets.
pub fn generic_inputs() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "",
        "\n",
        " ",
        "\t",
        "\n\n",
        "0",
        "1",
        "2",
        "-1",
        "+1",
        "01",
        "0x1",
        "0x",
        "1 ",
        "1\n",
        " 1",
        "1\n\n",
        "\n1",
        "1 2",
        "1,2",
        "1\t",
        "abc",
        "ABC",
        "-",
        "=",
        "==",
        "all",
        "none",
        "idle",
        "huge",
        "yes",
        "no",
        "true",
        "on",
        "4096",
        "4095",
        "4097",
        "16M",
        "16m",
        "1K",
        "1k",
        "1G",
        "1T",
        "1P",
        "1E",
        "8E",
        "15E",
        "16E",
        "k",
        "M",
        "1MM",
        "1.5M",
        "1e6",
        "1M ",
        " 1M",
        "99999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "9223372036854775808",
        "4294967295",
        "4294967296",
        "65535",
        "65536",
        "2147483647",
        "2147483648",
        "-9223372036854775808",
        "-0",
        "+0",
        "0.0",
        "00",
        "zstd",
        "lz4",
        "lzo",
        "lzo-rle",
        "deflate",
        "842",
        "lz4hc",
        "LZ4",
        "zstd\n",
        " zstd",
        "algo=zstd",
        "type=idle",
        "page_index=1",
        "page_indexes=1-2",
        "/dev/null",
        "１",
        "１６M",
        "é",
        "💥",
        "ß\n",
        "\u{202e}1",
    ]
    .iter()
    .map(|s| b(s))
    .collect();
    v.extend([
        b"\0".to_vec(),
        b"1\0".to_vec(),
        b"\x001".to_vec(),
        b"idle\0huge".to_vec(),
        b"all\0".to_vec(),
        b"zstd\0lz4".to_vec(),
        b"\xff\xfe".to_vec(),
        b"1\xff".to_vec(),
        b"\xc3".to_vec(),
        b"\x1b[2J".to_vec(),
        b"\x7f".to_vec(),
        b"1\r\n".to_vec(),
        b"1\r".to_vec(),
    ]);
    for len in [64usize, 255, 256, 1000, 4095, 4096, 5000] {
        v.push(vec![b'1'; len]);
        v.push(vec![b'a'; len]);
    }
    let mut r = Rng::new(4242);
    for _ in 0..40 {
        let n = 1 + r.below(48) as usize;
        v.push((0..n).map(|_| r.next() as u8).collect());
    }
    for _ in 0..20 {
        let n = 1 + r.below(20) as usize;
        v.push(
            (0..n)
                .map(|_| b"0123456789-= \nkKmMgG\t,x"[r.below(23) as usize])
                .collect(),
        );
    }
    v
}

/// Inputs for one attribute, on top of the generic ones: its valid values
/// and near misses.
pub fn attr_inputs(attr: &str, backing: &str) -> Vec<Vec<u8>> {
    let list: Vec<String> = match attr {
        "writeback" => {
            let mut v: Vec<String> = [
                "idle",
                "huge",
                "huge_idle",
                "incompressible",
                "type=idle",
                "type=huge",
                "type=huge_idle",
                "type=incompressible",
                "type=",
                "type",
                "type==idle",
                "type=idle type=huge",
                "idle huge",
                "idle=1",
                "Idle",
                "IDLE",
                "idle\n",
                " idle",
                "idle ",
                "\tidle",
                "page_index=",
                "page_index",
                "page_index=0",
                "page_index=63",
                "page_index=64",
                "page_index=1023",
                "page_index=1024",
                "page_index=1025",
                "page_index=-1",
                "page_index=+1",
                "page_index=0x10",
                "page_index=1,2",
                "page_index=1 page_index=2",
                "page_index=1 garbage",
                "page_index=1 page_index=9999",
                "page_index=18446744073709551615",
                "page_index=18446744073709551616",
                "page_index=4294967296",
                "page_index=1e3",
                "page_index=01",
                "page_index= 1",
                "Page_index=1",
                "page_indexes=0-1023",
                "page_indexes=0-1024",
                "page_indexes=5-3",
                "page_indexes=3-3",
                "page_indexes=-1-3",
                "page_indexes=1-",
                "page_indexes=-3",
                "page_indexes=1--3",
                "page_indexes=0x10-0x20",
                "page_indexes= 1-2",
                "page_indexes=1-2-3",
                "page_indexes=1 -2",
                "page_indexes=",
                "page_indexes",
                "page_indexes=7",
                "page_indexes=a-b",
                "page_indexes=0-18446744073709551615",
                "page_indexes=18446744073709551615-0",
                "page_indexes=1023-1023",
                "page_indexes=1024-1024",
                "page_indexes=0-0 page_indexes=2-1",
                "page_indexes=0-10 type=idle",
                "type=idle page_indexes=0-10",
                "page_index=5 idle",
                "idle page_index=5",
                "type=huge page_index=5",
                "page_indexes=0-63 page_index=3 page_indexes=10-20",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.push(format!("page_index={}", "9".repeat(100)));
            v.push(format!("page_indexes=0-{}", "9".repeat(40)));
            v.push("page_index=1 ".repeat(300));
            v
        }
        "idle" => [
            "all",
            "all\n",
            "ALL",
            "All",
            " all",
            "all ",
            "all all",
            "0",
            "1",
            "60",
            "86400",
            "4294967295",
            "4294967296",
            "-1",
            "1s",
            "1.5",
            "0x10",
            "+5",
            "5 ",
            " 5",
            "5\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "comp_algorithm" | "recomp_algorithm" | "recompress" => [
            "lz4",
            "zstd",
            "lz4hc",
            "lzo",
            "lzo-rle",
            "842",
            "deflate",
            "LZ4",
            "Zstd",
            "zstd\n",
            " zstd",
            "zstd ",
            "zstd lz4",
            "algo=zstd",
            "algo=lz4",
            "algo=zstd priority=1",
            "algo=lz4 priority=2",
            "algo=zstd priority=0",
            "algo=zstd priority=3",
            "algo=zstd priority=4",
            "algo=zstd priority=99999999999",
            "priority=1 algo=zstd",
            "algo=",
            "priority=",
            "priority=1",
            "algo=nope",
            "algo=nope priority=1",
            "algo=zstd priority=-1",
            "algo=zstd priority=x",
            "algo=zstd extra=1",
            "algo=zstd priority=1 priority=2",
            "algo=zstd algo=lz4",
            "algo=zstd\n",
            "algo =zstd",
            "algo= zstd",
            "type=idle",
            "type=huge",
            "type=huge_idle",
            "type=nope",
            "type=",
            "threshold=100",
            "threshold=0",
            "threshold=1",
            "threshold=3072",
            "threshold=4095",
            "threshold=4096",
            "threshold=99999999999",
            "threshold=-1",
            "threshold=",
            "threshold=x",
            "max_pages=10",
            "max_pages=0",
            "max_pages=-1",
            "max_pages=",
            "max_pages=18446744073709551616",
            "type=idle threshold=1000 max_pages=4",
            "type=idle algo=zstd",
            "type=idle algo=zstd priority=1",
            "type=idle priority=1",
            "type=idle priority=2",
            "type=huge priority=0",
            "type=idle algo=lz4",
            "type=idle garbage",
            "garbage=1",
            "type=idle type=huge",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "backing_dev" => {
            let mut v: Vec<String> = [
                "/dev/null",
                "/dev/zero",
                "/nonexistent",
                "relative/path",
                "/",
                "/tmp",
                "/dev",
                "/proc/self/mem",
                "/sys/block",
                "none",
                "/dev/mapper",
                "//",
                "/./",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.push(backing.into());
            v.push(format!("{backing}\n"));
            v.push(format!("{backing} "));
            v.push(format!(" {backing}"));
            v.push(format!("{backing}\n\n"));
            v.push(format!("{backing}x"));
            v.push(format!("/{}", "a".repeat(300)));
            v.push(format!("/{}", "a/".repeat(2100)));
            v
        }
        "disksize" | "mem_limit" => [
            "4M",
            "4m",
            "1",
            "4096",
            "4095",
            "8191",
            "1K",
            "1k",
            "64M",
            "1G",
            "1g",
            "16G",
            "1T",
            "1P",
            "4P",
            "1E",
            "8E",
            "15E",
            "16E",
            "17E",
            "1Z",
            "18446744073709547520",
            "18446744073709551615",
            "0",
            "0K",
            "-4096",
            "-1M",
            "4M\n",
            " 4M",
            "4 M",
            "4MB",
            "4MiB",
            "4M4",
            "0x1000",
            "0x1000M",
            "010",
            "4.5M",
            "+4M",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "writeback_limit"
        | "writeback_limit_enable"
        | "writeback_batch_size"
        | "mem_used_max"
        | "reset"
        | "compact"
        | "hot_remove" => [
            "0",
            "1",
            "2",
            "32",
            "255",
            "256",
            "257",
            "1024",
            "65535",
            "65536",
            "100000",
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "-0",
            "0\n",
            "1\n",
            "1 ",
            " 1",
            "+1",
            "01",
            "0x1",
            "1K",
            "1.0",
            "true",
            "y",
            "Y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        _ => Vec::new(),
    };
    list.into_iter().map(|s| s.into_bytes()).collect()
}
