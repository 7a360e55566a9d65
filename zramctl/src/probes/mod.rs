//! Loader for zramctl's eBPF programs (built from `zramctl-ebpf` by
//! `build.rs` and embedded in the binary).
//!
//! Field offsets come from the running kernel's BTF ([`btf`]) and are
//! handed to the programs as globals, so one object runs on any kernel with
//! BTF. When the kernel refuses BPF the error says what is missing, and
//! callers can fall back to sysfs-only operation.
//!
//! - [`BioCounter`]: bios queued to one device, by operation.
//! - [`Probes`]: per-slot access tracking of zram devices and issue to
//!   completion latency histograms of zram and backing devices, read into
//!   typed [`Snapshot`]s; per-program cost from the kernel's BPF stats. On
//!   rzram devices ([`WatchSpec::rzram`]) also rzram's own tracepoints:
//!   slot accesses (swap slot frees included), writeback latency and errors,
//!   refaults with the time since their writeback ([`RzramStats`]). Those
//!   attach only while `rzram.ko` is loaded; otherwise they are skipped and
//!   [`Probes::rzram_status`] says why.
//! - [`trace`]: `zramctl trace record`, per-slot events into a swap trace.

pub mod btf;
mod counter;
mod error;
pub mod hist;
mod loader;
mod maps;
mod programs;
pub mod trace;
mod watch;

pub use counter::BioCounter;
pub use error::{NotAttached, ProbeError};
pub use loader::{Flavour, ProbeOptions, Probes};
pub use maps::{DeviceSnapshot, ProbeHealth, ProgramCost, Snapshot};
pub use programs::kernel_offsets;
pub use watch::{
    BlockDevInfo, LatencyKind, Role, WatchError, WatchList, WatchSpec, watch_list, watch_table,
};

/// The eBPF object (an ELF file for bpfel-unknown-none).
pub static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zramctl-probes"));

#[cfg(test)]
mod tests;
