//! zramctl's eBPF programs, one module per concern:
//!
//! - [`kmem`]: reading kernel memory (`tp_btf` direct loads or
//!   `bpf_probe_read_kernel`), the read-only globals userspace fills in at
//!   load time (struct offsets, watched devices) and the device lookups.
//! - [`counter`]: `bio_queue` (raw tracepoint `block_bio_queue`) counts
//!   bios queued to one watched block device, by operation; `cost_floor`
//!   does nothing, so its cost is the floor every program pays.
//! - [`slots`]: `slot_access` (`block_bio_queue`): per-slot access tracking
//!   of watched zram devices (last access time and read/write/discard
//!   counts per slot in the mmapable `SLOTS` array) and per-device counters.
//! - [`latency`]: `bio_start`/`bio_done` and `rq_start`/`rq_done`: bio and
//!   request completion latency into log2 histograms per operation.
//! - [`rzram`]: `rz_slot_access`, `rz_wb_submit`, `rz_wb_complete`,
//!   `rz_bd_read` on rzram's module tracepoints.
//!
//! Every program on a block tracepoint exists twice: as `tp_btf` (kernel
//! memory read with direct loads, which the verifier turns into
//! fault-tolerant loads) and with a `_raw` suffix as `raw_tracepoint`
//! (reads through `bpf_probe_read_kernel`), for kernels that refuse
//! `tp_btf`. The devices and the kernel struct offsets are read-only
//! globals that userspace fills in at load time (aya has no CO-RE; see
//! `zramctl::ebpf`). The verifier sees frozen read-only globals as
//! constants, which is what lets the `tp_btf` programs add those offsets to
//! BTF pointers. Userspace attaches only the programs a reader needs.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod counter;
#[cfg(target_arch = "bpf")]
mod kmem;
#[cfg(target_arch = "bpf")]
mod latency;
#[cfg(target_arch = "bpf")]
mod rzram;
#[cfg(target_arch = "bpf")]
mod slots;
#[cfg(target_arch = "bpf")]
mod trace; // zramctl trace record (ring buffer)

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// On the host this crate only has to type-check (`cargo test --workspace`).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
