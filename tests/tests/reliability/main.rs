//! Reliability (issue 9) in the VM: races, faults, bad input and daemon
//! chaos on rzram, with upstream C zram (`zram1`) as the oracle wherever
//! both can do the same thing.
//!
//! - `rzram_races_lose_nothing`: writeback in every mode, `idle` marking,
//!   batch / bio size / limit changes, `compact`, `recompress` and `reset`
//!   attempts loop on two rzram devices with backing disks while one is a
//!   raw disk with its own writer, discarder and full verifier (>= 10 passes
//!   over every page) and the other is swap under a memory-limited cgroup
//!   with a process verifying its memory.
//! - `{zram,rzram}_backing_faults`: dm-flakey (error_writes, drop_writes),
//!   dm `error`, and fail_make_request at 5, 30 and 100 % on the backing
//!   device: counters, the RAM copy, EIO to readers, no leaked blocks,
//!   zsmalloc back to 0 after reset.
//! - `sysfs_fuzz_errnos_match_upstream`: thousands of malformed values to
//!   every writable attribute of rzram1 and zram1 (and of their control
//!   classes), before and after init; the errno of each must be upstream's.
//! - `daemon_chaos`: the real daemon on rzram0 killed mid-writeback and
//!   restarted, its backing disk failing and removed, the device reset and
//!   hot-removed under it, its metrics port taken.
//! - `rzram_unloads_cleanly`: rmmod at the end.
//!
//! `#[ignore]`d on the host; `cargo xtask vm-test reliability` runs them.
//! One file per suite; `common.rs` holds what they share, and the VM
//! helpers of every suite are in `zramctl_tests`.

mod common;
mod daemon_chaos;
mod faults;
mod fuzz;
mod fuzz_inputs;
mod races;
mod unload;
