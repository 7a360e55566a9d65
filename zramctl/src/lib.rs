//! zramctl: inspect and drive zram writeback.
//!
//! - [`sysfs`]: the typed zram sysfs ABI, rooted at a path;
//! - [`commands`]: the CLI commands over it;
//! - [`ebpf`]: loader for the embedded eBPF programs;
//! - [`fake`]: a simulated zram sysfs for tests and demos.

pub mod btf;
pub mod cli;
pub mod commands;
pub mod ebpf;
pub mod fake;
pub mod hist;
pub mod size;
pub mod sysfs;
