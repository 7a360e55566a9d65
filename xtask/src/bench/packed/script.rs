//! The guest script: the shell template (`packed.sh`) with its
//! placeholders filled in, then the rounds' rows and one-page calls.

use std::fmt::Write as _;

use super::{
    BATCH, BenchArgs, CALLS, LAT_IOS, Mode, ROWS, Row, SLICE2_MIB, TURN, churn_groups, data_mib,
    slice_mib,
};
use crate::bench::stats;

/// The guest script (bash); results in `$ZRAMCTL_RESULTS`.
pub fn script(args: &BenchArgs) -> String {
    let mib = data_mib(args);
    let pages = u64::from(mib) * 256;
    let groups = churn_groups(pages);
    let slice = slice_mib(args);
    let mut s = TEMPLATE
        .replace("@MIB@", &mib.to_string())
        .replace("@PAGES@", &pages.to_string())
        .replace("@DATA_KIB@", &(pages * 4).to_string())
        .replace("@GROUPS@", &groups.to_string())
        .replace("@GROUPS2@", &(groups * 2).to_string())
        .replace("@CHURN_KIB@", &(groups * 80).to_string())
        .replace("@TRIM_KIB@", &(groups * 80).saturating_sub(40).to_string())
        .replace("@SLICE@", &slice.to_string())
        .replace("@SECTORS@", &(u64::from(slice) * 2048).to_string())
        .replace("@DISKSIZE@", &(mib * 2).max(64).to_string())
        .replace("@BATCH@", &BATCH.to_string())
        .replace("@LAT_IOS@", &LAT_IOS.min(pages / 2).to_string())
        .replace("@RUNTIME@", &args.runtime.max(1).to_string())
        .replace("@CALLS@", &CALLS.to_string())
        .replace("@TURN@", &TURN.to_string())
        .replace(
            "@SLICE2_SECTORS@",
            &(u64::from(SLICE2_MIB) * 2048).to_string(),
        )
        .replace("@CALL_PAGES@", &(2 * CALLS).to_string())
        .replace(
            "@SLICE3_START@",
            &(u64::from(slice + SLICE2_MIB) * 2048).to_string(),
        );
    for round in 0..args.rounds {
        let order: Vec<&Row> = if round % 2 == 0 {
            ROWS.iter().collect()
        } else {
            ROWS.iter().rev().collect()
        };
        // The rzram rows go as a pair, in this round's order: set up side
        // by side, their timed writebacks back to back.
        let rzram: Vec<&Row> = order
            .iter()
            .copied()
            .filter(|r| r.dev == "rzram0")
            .collect();
        for r in order {
            if r.dev == "rzram0" {
                if let [first, second] = rzram[..]
                    && std::ptr::eq(r, first)
                {
                    let _ = writeln!(
                        s,
                        "[ $RZRAM = 1 ] && pair {round} {} {} {} {}",
                        first.id,
                        first.mode.as_str(),
                        second.id,
                        second.mode.as_str()
                    );
                }
                continue;
            }
            let gate = match r.mode {
                Mode::Compressed => "[ $ZCOMP = 1 ] && ",
                _ => "",
            };
            let _ = writeln!(
                s,
                "{gate}row {} {} {} {round}",
                r.id,
                r.dev,
                r.mode.as_str()
            );
        }
        let [a, b] = stats::ab_order("zram0", "rzram0", round);
        let _ = writeln!(s, "cost {round} $(avail {a} {b})");
    }
    s.push_str("dmsetup remove pkbench\ndmsetup remove pkbench2\ndmsetup remove pkbench3\n");
    s
}

/// The shell functions the rows and calls run, with `@NAME@` placeholders.
const TEMPLATE: &str = include_str!("packed.sh");

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn script_interleaves_rows_and_churns_30_percent() {
        let mut a = BenchArgs::for_test("packed", 2);
        a.packed_mib = 32;
        let s = script(&a);
        // No placeholder (@NAME@) is left.
        assert!(
            !s.as_bytes()
                .windows(2)
                .any(|w| w[0] == b'@' && w[1].is_ascii_uppercase()),
            "a placeholder is left"
        );
        // The rzram rows as a pair, the order alternating by round.
        assert!(s.contains(
            "\n[ $RZRAM = 1 ] && pair 0 rzram-packed packed rzram-compressed compressed\n"
        ));
        assert!(s.contains(
            "\n[ $RZRAM = 1 ] && pair 1 rzram-compressed compressed rzram-packed packed\n"
        ));
        assert!(!s.contains("row rzram"));
        assert_eq!(
            s.matches("\n[ $ZCOMP = 1 ] && row zram-compressed zram0 compressed ")
                .count(),
            2
        );
        let first = |needle: &str| s.find(needle).unwrap();
        assert!(first("row zram-plain zram0 plain 0") < first("pair 0 "));
        assert!(first("pair 1 ") < first("row zram-plain zram0 plain 1"));
        // The third slice, as large as the first (64 MiB at least), starts
        // after the first two (64 and 8 MiB).
        assert!(s.contains("pkbench3 --table \"0 131072 linear $ZRAMCTL_BACKING_DISK 147456\""));
        assert!(s.contains("\ncost 0 $(avail zram0 rzram0)\n"));
        assert!(s.contains("\ncost 1 $(avail rzram0 zram0)\n"));
        // 8192 pages: 409 groups of 20, 6 pages each churned.
        assert!(s.contains("--size=32720k --number_ios=409"));
        assert!(s.contains("--offset=40k --size=32680k"));
        assert!(s.contains("--number_ios=818"));
        assert!(s.contains("--number_ios=2000 --runtime=5"));
        // It parses as bash.
        let path = std::env::temp_dir().join(format!("xtask-packed-{}.sh", std::process::id()));
        fs::write(&path, &s).unwrap();
        let ok = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap()
            .success();
        fs::remove_file(&path).unwrap();
        assert!(ok, "bash -n failed on the script");
    }
}
