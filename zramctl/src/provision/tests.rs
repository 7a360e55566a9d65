use std::path::Path;

use super::{
    stack::{integrity_table, random_key},
    *,
};

const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

#[test]
fn auto_size_is_a_bounded_fraction_of_free_space() {
    // A quarter of free space, in whole MiB ...
    assert_eq!(auto_size(10 * G + 3, 64 * G), Ok(2560 * M));
    // ... capped at the zram disk size ...
    assert_eq!(auto_size(100 * G, 2 * G), Ok(2 * G));
    assert_eq!(auto_size(100 * G, 2 * G + 1), Ok(2 * G + M));
    // ... and at 8 GiB.
    assert_eq!(auto_size(1000 * G, 64 * G), Ok(8 * G));
    // Refused below 64 MiB: 256 MiB free is the least auto takes.
    assert_eq!(auto_size(256 * M, 4 * G), Ok(64 * M));
    let e = auto_size(256 * M - 1, 4 * G).unwrap_err();
    assert!(e.0.contains("not enough free space"), "{e}");
    assert!(e.0.contains("at least 64M (so 256M free)"), "{e}");
    // A disk smaller than 64 MiB needs only its own size.
    assert_eq!(auto_size(200 * M, 32 * M), Ok(32 * M));
    assert!(auto_size(100 * M, 32 * M).is_err());
}

#[test]
fn file_plans() {
    // Explicit size: a file of that size is reused, another is reallocated.
    let b = BackingSize::Bytes(512 * M);
    assert_eq!(
        plan_file(b, None, 10 * G, G),
        Ok(FilePlan::Allocate(512 * M))
    );
    assert_eq!(
        plan_file(b, Some((512 * M, 512 * M)), 0, G),
        Ok(FilePlan::Reuse(512 * M))
    );
    assert_eq!(
        plan_file(b, Some((256 * M, 256 * M)), 300 * M, G),
        Ok(FilePlan::Allocate(512 * M))
    );
    let e = plan_file(b, Some((256 * M, 256 * M)), 200 * M, G).unwrap_err();
    assert!(
        e.0.contains("not enough free space for a 512M backing file: 456M free"),
        "{e}"
    );
    // auto reuses an existing file of a size auto could have picked.
    let a = BackingSize::Auto;
    assert_eq!(
        plan_file(a, Some((300 * M, 300 * M)), 0, G),
        Ok(FilePlan::Reuse(300 * M))
    );
    assert_eq!(
        plan_file(a, Some((2 * G, 2 * G)), 8 * G, G),
        Ok(FilePlan::Allocate(G))
    );
    assert_eq!(
        plan_file(a, None, 2 * G, 4 * G),
        Ok(FilePlan::Allocate(512 * M))
    );
    assert!(plan_file(a, None, 100 * M, 4 * G).is_err());
}

#[test]
fn backing_size_parses() {
    assert_eq!("auto".parse(), Ok(BackingSize::Auto));
    assert_eq!("AUTO".parse(), Ok(BackingSize::Auto));
    assert_eq!("1G".parse(), Ok(BackingSize::Bytes(G)));
    assert!(
        "1K".parse::<BackingSize>()
            .unwrap_err()
            .0
            .contains("too small")
    );
    assert!(
        "lots"
            .parse::<BackingSize>()
            .unwrap_err()
            .0
            .contains("or auto")
    );
}

#[test]
fn names_are_deterministic() {
    assert_eq!(dm_name("zram0", Layer::Crypt), "zramctl-zram0-crypt");
    assert_eq!(
        dm_name("rzram1", Layer::Integrity),
        "zramctl-rzram1-integrity"
    );
    assert_eq!(dm_uuid("zram0", Layer::Crypt), "ZRAMCTL-zram0-crypt");
    let r = Record {
        file: "/var/lib/zramctl/zram0.img".into(),
        encrypt: true,
    };
    assert_eq!(Record::parse(&r.render()), Some(r));
    assert_eq!(Record::parse("encrypt=1\n"), None);
}

#[test]
fn integrity_table_and_key_stay_apart() {
    assert_eq!(
        integrity_table(8, Path::new("/dev/loop3")),
        "0 8 integrity /dev/loop3 0 28 D 2 block_size:4096 fix_padding"
    );
    let k = random_key().unwrap();
    assert_eq!(k.0.len(), 32);
    assert!(k.0.iter().any(|&b| b != 0));
}

fn dm(name: &str, kname: &str, slaves: &[&str]) -> DmDev {
    DmDev {
        name: name.into(),
        kname: kname.into(),
        uuid: format!("ZRAMCTL-{name}"),
        slaves: slaves.iter().map(|s| s.to_string()).collect(),
    }
}

fn full_stack() -> Observed {
    Observed {
        zram: "zram0".into(),
        zram_initialised: true,
        zram_backing: Some("/dev/dm-5".into()),
        record: Some(Record {
            file: "/var/swap/zram0".into(),
            encrypt: true,
        }),
        crypt: Some(dm("zramctl-zram0-crypt", "dm-5", &["dm-4"])),
        integrity: Some(dm("zramctl-zram0-integrity", "dm-4", &["loop2"])),
        loops: vec!["loop2".into()],
    }
}

#[test]
fn teardown_runs_top_down() {
    let o = full_stack();
    assert_eq!(
        plan_teardown(&o, true, false),
        [
            Step::ResetZram,
            Step::RemoveDm("zramctl-zram0-crypt".into()),
            Step::RemoveDm("zramctl-zram0-integrity".into()),
            Step::DetachLoop("loop2".into()),
            Step::DropRecord,
        ]
    );
    let with_delete = plan_teardown(&o, true, true);
    assert_eq!(
        with_delete[4..],
        [Step::DeleteFile("/var/swap/zram0".into()), Step::DropRecord]
    );
}

#[test]
fn teardown_after_crashes_between_steps() {
    let full = full_stack();
    // Killed after backing_dev, before disksize: zram is not initialised
    // but holds the crypt device; setup's cleanup must reset it first.
    let o = Observed {
        zram_initialised: false,
        ..full.clone()
    };
    assert_eq!(plan_teardown(&o, false, false)[0], Step::ResetZram);
    // Killed after dm-integrity: no crypt, zram untouched.
    let o = Observed {
        zram_initialised: false,
        zram_backing: None,
        crypt: None,
        ..full.clone()
    };
    assert_eq!(
        plan_teardown(&o, false, false),
        [
            Step::RemoveDm("zramctl-zram0-integrity".into()),
            Step::DetachLoop("loop2".into()),
            Step::DropRecord,
        ]
    );
    // Killed after the loop device: only the record finds it.
    let o = Observed {
        zram_initialised: false,
        zram_backing: None,
        crypt: None,
        integrity: None,
        ..full.clone()
    };
    assert_eq!(
        plan_teardown(&o, false, false),
        [Step::DetachLoop("loop2".into()), Step::DropRecord]
    );
    // Killed after the file: the record alone.
    let o = Observed { loops: vec![], ..o };
    assert_eq!(plan_teardown(&o, false, false), [Step::DropRecord]);
    assert!(o.has_stack());
    // Nothing of ours: a plain reset, and a user's own backing device
    // (not ours) does not make setup reset the device.
    let o = Observed {
        zram: "zram0".into(),
        zram_backing: Some("/dev/vdb".into()),
        ..Observed::default()
    };
    assert!(!o.has_stack());
    assert_eq!(plan_teardown(&o, false, false), []);
    assert_eq!(plan_teardown(&o, true, true), [Step::ResetZram]);
}
