//! rzram's `packed_writeback` (beyond upstream): compressed objects share
//! backing blocks, one stream per bio, an object that does not fit running
//! on into the next block; so a page costs the backing device its
//! compressed size, `writeback_limit` (in blocks) moves that many more
//! pages, and a block is free once its last object is.

use super::*;
use zramctl_tests::discard_pages;

const SEED: u64 = 0x9ac4_ed00;
/// 8 MiB of the layout: text (compresses 2-3x), same-filled and random
/// (huge) pages.
const PAGES: u64 = 2048;

/// rzram1, packed, on its slice.
fn packed_device(disksize: &str) -> Dev {
    let name = prepare(Kind::Rzram);
    set_packed(name, true);
    attach(Kind::Rzram, name, disksize)
}

/// The pages writeback may pick in `0..pages`.
fn candidates(pages: u64) -> u64 {
    (0..pages).filter(|&i| !Model::same(i)).count() as u64
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_packed_writeback_stores_pages_at_their_compressed_size() {
    // The attribute: 0 or 1, kstrtobool spellings, set before init.
    let name = prepare(Kind::Rzram);
    assert_eq!(sysfs_read(name, "packed_writeback"), "0\n");
    assert_eq!(
        sysfs_write(name, "packed_writeback", "maybe"),
        Err(libc::EINVAL)
    );
    sysfs_write(name, "packed_writeback", "yes").unwrap();
    assert_eq!(sysfs_read(name, "packed_writeback"), "1\n");
    let d = attach(Kind::Rzram, name, "16M");
    assert_eq!(
        sysfs_write(name, "packed_writeback", "0"),
        Err(libc::EBUSY),
        "set before init only"
    );

    write_layout(&d.path, SEED, 0, PAGES);
    let before = stats(name);
    mark_idle(name);
    writeback(name, "idle").unwrap();
    let s = stats(name);
    let n = candidates(PAGES);
    println!(
        "{name}: {n} pages written back packed: {} compressed bytes in RAM before, {} blocks written ({:.3} x the compressed size; unpacked: {n} blocks, {:.3} x)",
        before.compr,
        s.bd_writes,
        (s.bd_writes * PAGE as u64) as f64 / before.compr as f64,
        (n * PAGE as u64) as f64 / before.compr as f64,
    );
    assert_eq!(s.compr, 0, "every object left RAM: {s:?}");
    assert_eq!(s.bd_count, s.bd_writes, "every block written holds objects");
    assert!(
        s.bd_writes >= before.compr.div_ceil(PAGE as u64),
        "the blocks hold the bytes"
    );
    assert!(
        s.bd_writes * PAGE as u64 * 10 <= before.compr * 11,
        "packed: at most 1.1 x the compressed size: {} blocks for {} bytes",
        s.bd_writes,
        before.compr
    );
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
    let reads = stats(name).bd_reads;
    assert!(
        (n..=2 * n).contains(&reads),
        "each page read back reads the one or two blocks its object is in: {reads} for {n} pages"
    );

    // Churn: 30 % of the written-back pages rewritten or discarded; the
    // rest still reads back, and the blocks holding only dead objects go.
    let churn: Vec<u64> = (0..PAGES)
        .filter(|&i| !Model::same(i) && i % 10 < 3)
        .collect();
    for &i in &churn {
        if i % 2 == 0 {
            write_bytes_direct(&d.path, i, &layout_page(SEED + 1, i)).unwrap();
        } else {
            discard_pages(&d.path, i, 1).unwrap();
        }
    }
    let c = stats(name);
    println!(
        "{name}: after rewriting or discarding {} of {n} written-back pages: {} of {} blocks in use",
        churn.len(),
        c.bd_count,
        s.bd_count
    );
    assert!(c.bd_count < s.bd_count && c.bd_count > 0, "{c:?}");
    drop_caches();
    let data = read_bytes_direct(&d.path, 0, PAGES).unwrap();
    for (i, page) in (0..PAGES).zip(data.chunks(PAGE)) {
        let want = match churn.binary_search(&i) {
            Ok(_) if i % 2 == 0 => layout_page(SEED + 1, i),
            Ok(_) => vec![0; PAGE],
            Err(_) => layout_page(SEED, i),
        };
        assert!(page == want.as_slice(), "{name}: page {i} after the churn");
    }

    // Every block goes back once its last object does.
    discard_pages(&d.path, 0, PAGES).unwrap();
    let e = stats(name);
    assert_eq!(e.bd_count, 0, "no block left with no page stored: {e:?}");
    drop(d);
    assert_eq!(
        sysfs_read(name, "packed_writeback"),
        "1\n",
        "kept across reset"
    );
    set_packed(name, false);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_packed_writeback_limit_counts_blocks() {
    const LIMIT: u64 = 64;
    let d = packed_device("16M");
    let name = d.name;
    write_layout(&d.path, SEED, 0, PAGES);
    mark_idle(name);
    sysfs_write(name, "writeback_limit_enable", "1").unwrap();
    sysfs_write(name, "writeback_limit", &LIMIT.to_string()).unwrap();
    let before = stats(name);
    assert_eq!(
        writeback(name, "idle"),
        Err(libc::EIO),
        "the limit is spent"
    );
    let s = stats(name);
    assert_eq!(sysfs_read(name, "writeback_limit"), "0\n");
    assert_eq!(s.bd_writes, LIMIT, "the limit counts blocks: {s:?}");
    // The bytes that left RAM fill the blocks but for the tail of each
    // bio's last block (32-block bios: two tails of under a page).
    let moved = before.compr - s.compr;
    let mean = before.compr as f64 / candidates(PAGES) as f64;
    println!(
        "{name}: writeback_limit {LIMIT} blocks moved {moved} compressed bytes, about {:.0} pages of {mean:.0} bytes (unpacked: {LIMIT} pages)",
        moved as f64 / mean
    );
    assert!(
        moved <= LIMIT * PAGE as u64 && moved >= (LIMIT - 2) * PAGE as u64,
        "{moved} bytes in {LIMIT} blocks"
    );
    assert!(
        moved as f64 / mean >= 1.4 * LIMIT as f64,
        "the same limit moves more pages than unpacked"
    );
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
}

#[test]
#[ignore = "runs in the VM: cargo xtask vm-test"]
fn rzram_packed_writeback_loses_nothing_to_backing_faults() {
    const PAGES: u64 = 1024;
    let d = packed_device("16M");
    let name = d.name;
    let backing = d.backing.as_ref().unwrap();
    write_layout(&d.path, SEED, 0, PAGES);
    mark_idle(name);
    sysfs_write(name, "writeback_limit_enable", "1").unwrap();
    sysfs_write(name, "writeback_limit", "100000").unwrap();
    let before = stats(name);

    // Writes fail: EIO, every block back, the pages in RAM, no charge.
    backing.fail_all_io();
    assert_eq!(writeback(name, "idle"), Err(libc::EIO));
    let after = stats(name);
    zramctl_tests::assert_failed_writeback_kept_nothing(
        name,
        "writes fail",
        &before,
        &after,
        100000,
    );
    assert_eq!(
        after.failed_writes - before.failed_writes,
        candidates(PAGES),
        "every failed page counted"
    );

    // A healthy disk takes them all.
    backing.restore();
    assert_eq!(writeback(name, "idle"), Ok(()));
    let s = stats(name);
    assert_eq!(s.compr, 0);
    assert_eq!(s.bd_count, s.bd_writes);

    // Reads fail: EIO, never other data; same-filled pages still read.
    backing.fail_all_io();
    drop_caches();
    for i in [0u64, 1, 500, 1023] {
        let r = read_bytes_direct(&d.path, i, 1);
        assert_eq!(
            r.as_ref().map_err(|e| e.raw_os_error()).err(),
            Some(Some(libc::EIO)),
            "reading written-back page {i} from a failing disk: {:?}",
            r.map(|_| "data")
        );
    }
    assert_eq!(
        read_bytes_direct(&d.path, 3, 1).unwrap(),
        layout_page(SEED, 3)
    );
    backing.restore();
    drop_caches();
    assert_layout_intact(&d.path, SEED, PAGES);
    discard_pages(&d.path, 0, PAGES).unwrap();
    assert_eq!(stats(name).bd_count, 0, "every block free again");
}
