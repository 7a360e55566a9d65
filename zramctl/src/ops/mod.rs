//! Domain operations on one device, shared by the CLI and the daemon: each
//! checks its request against the device, carries it out through
//! [`crate::sysfs`] (and [`crate::provision`] for backing files) and returns
//! what it achieved as a value. Nothing here prints or knows the command
//! line; callers render the outcomes and add their own hints to errors.
//!
//! - [`status`]: everything `status` shows about a device;
//! - [`setup`]: [`setup::DeviceSpec`], the one validated description of a
//!   device to set up (from `zramctl setup` arguments or a daemon
//!   configuration's `[[device]]`), and [`setup::setup`];
//! - [`writeback`]: writeback with its measured outcome, and the writeback
//!   limit (opened limit-first, closed, restored);
//! - [`recompress`]: recompression with its measured outcome;
//! - [`reset`]: reset, taking down a provisioned backing file;
//! - [`ulcompat`]: what util-linux's zramctl does to devices (find with
//!   `hot_add`, reset with `hot_remove`, attributes with their errno).

mod error;
pub mod recompress;
pub mod reset;
pub mod setup;
pub mod status;
pub mod ulcompat;
pub mod writeback;

pub use error::{Error, Result};
