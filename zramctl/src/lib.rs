//! zramctl: inspect and drive zram writeback.
//!
//! Layers, each importing only from those below it (see
//! `docs/ARCHITECTURE.md`):
//!
//! 1. [`platform`] (page size, clocks, terminals), [`size`] (byte sizes) and
//!    [`swaptrace`] (the swap trace file format);
//! 2. [`sysfs`]: the typed zram sysfs ABI behind one I/O trait (with a
//!    simulated kernel, [`sysfs::fake`]); [`probes`]: the eBPF loader, the
//!    watch list, the maps read into snapshots and histograms, the trace
//!    recorder;
//!    [`provision`]: backing files on loop, dm-integrity and dm-crypt;
//! 3. [`policy`]: the writeback policy, pure; [`simulate`]: replaying a
//!    trace through it; [`ops`]: operations on a device (setup, writeback,
//!    recompress, reset) returning outcomes, shared by CLI and daemon;
//! 4. [`daemon`]: the policy daemon; [`top`]: the live view;
//! 5. [`cli`] (the command line as clap types) and [`app`] (dispatch and
//!    output); [`ulcompat`]: util-linux's `zramctl(8)` forms (no command),
//!    their parse and output, over [`ops::ulcompat`].

pub mod app;
pub mod cli;
pub mod daemon;
pub mod ops;
pub mod platform;
pub mod policy;
pub mod probes;
pub mod provision;
pub mod simulate;
pub mod size;
pub mod swaptrace;
pub mod sysfs;
pub mod top;
pub mod ulcompat;
