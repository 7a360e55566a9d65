//! zramctl: inspect and drive zram writeback.
//!
//! - [`sysfs`]: the typed zram sysfs ABI, rooted at a path;
//! - [`commands`]: the CLI commands over it;
//! - [`ebpf`]: loader for the embedded eBPF programs;
//! - [`hist`]: latency and slot-age histograms, percentiles, rates;
//! - [`top`]: the `zramctl top` live view;
//! - [`fake`]: a simulated zram sysfs for tests and demos.

pub mod btf;
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod ebpf;
pub mod fake;
pub mod hist;
pub mod policy;
pub mod provision;
pub mod simulate;
pub mod size;
pub mod sysfs;
pub mod top;
