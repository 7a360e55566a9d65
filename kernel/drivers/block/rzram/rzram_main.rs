// SPDX-License-Identifier: GPL-2.0

//! rzram: zram in Rust.
//!
//! Block devices `/dev/rzram<N>` that keep their pages compressed in RAM
//! (zsmalloc + lz4/zstd), with upstream zram's sysfs interface
//! (Documentation/admin-guide/blockdev/zram.rst) so that zram tools work
//! unchanged, and named apart so that rzram and zram run side by side.
//!
//! The parts, from the bottom up: `base` (page size, clocks), `slots` (the
//! slot table), `comp` (compression), `workspace` (per-CPU compression
//! workspaces), `backing` (the backing device and its blocks), `store` (the
//! RAM store), `writeback` (the writeback engine),
//! `device` (a device and its bio path), `parse` and `attrs` (the sysfs
//! attributes), `control` (the disks and their control class).

mod attrs;
mod backing;
mod base;
mod comp;
mod control;
mod device;
mod parse;
mod slots;
mod store;
mod trace;
mod wb_select;
mod workspace;
mod writeback;

use control::{Devices, CONTROL};
use kernel::{device::class, prelude::*, sync::Arc};

module! {
    type: RzramModule,
    name: "rzram",
    authors: ["zramctl developers"],
    description: "Compressed RAM block devices (zram in Rust)",
    license: "GPL",
    params: {
        num_devices: u32 {
            default: 1,
            description: "Number of rzram devices created at load",
        },
    },
}

struct RzramModule {
    // Unregistered first, so no hot_add runs while the disks go away.
    _control: class::Registration<Devices>,
    _devices: Arc<Devices>,
}

impl kernel::Module for RzramModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let devices = Devices::new()?;
        let n = module_parameters::num_devices.value();
        for _ in 0..n {
            devices.add()?;
        }
        let control = class::Registration::new(c"rzram-control", devices.clone(), CONTROL)?;
        pr_info!("{n} device(s) created\n");
        Ok(Self {
            _control: control,
            _devices: devices,
        })
    }
}
