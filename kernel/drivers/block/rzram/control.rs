// SPDX-License-Identifier: GPL-2.0

//! The disks of the module and their control class
//! (`/sys/class/rzram-control/hot_add` and `hot_remove`, as zram-control's).

use crate::{
    attrs::ATTRIBUTES,
    device::{Rzram, Zram},
    parse::kstrto,
    workspace::{hotplug_state, Hotplug},
};
use kernel::{
    block::{
        attr::{AttributeGroup, SysfsBuf},
        bio_disk::{BioDisk, BioDiskBuilder},
    },
    device::class,
    fmt::Write,
    new_mutex,
    prelude::*,
    sync::{atomic::Relaxed, Arc, Mutex},
};

/// All rzram disks, by index; `None` where one was hot-removed.
#[pin_data]
pub(crate) struct Devices {
    // Declared before `attrs`: disks are removed before the attributes go.
    #[pin]
    disks: Mutex<KVec<Option<BioDisk<Rzram>>>>,
    attrs: AttributeGroup<Arc<Zram>>,
    /// The CPU hotplug state of every disk's compression workspaces.
    hotplug: Arc<Hotplug>,
}

impl Devices {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                disks <- new_mutex!(KVec::new()),
                attrs: AttributeGroup::new(ATTRIBUTES)?,
                hotplug: hotplug_state()?,
            }),
            GFP_KERNEL,
        )
    }

    /// Creates a disk at the lowest free index and returns the index.
    pub(crate) fn add(&self) -> Result<usize> {
        let mut disks = self.disks.lock();
        let id = disks
            .iter()
            .position(Option::is_none)
            .unwrap_or(disks.len());
        let zram = Zram::new(self.hotplug.clone())?;
        let disk = BioDiskBuilder::new()
            .discard(true)
            .write_zeroes(true)
            .synchronous(true)
            .stable_writes(true)
            .build::<Rzram>(fmt!("rzram{id}"), zram.clone(), Some(&self.attrs))?;
        zram.dev.store(disk.disk().devt(), Relaxed);
        if id == disks.len() {
            disks.push(Some(disk), GFP_KERNEL)?;
        } else {
            disks[id] = Some(disk);
        }
        Ok(id)
    }

    /// Removes disk `id`, which must exist and not be open (mounted, swap),
    /// as upstream's `zram_remove`: claimed under the open mutex (so no open
    /// can slip in before the disk is deleted), synced, then deleted; a
    /// reset in progress is waited for by the deletion.
    fn remove(&self, id: usize) -> Result {
        let mut disks = self.disks.lock();
        let slot = disks.get_mut(id).ok_or(ENODEV)?;
        slot.as_ref().ok_or(ENODEV)?.claim_for_removal()?;
        // del_gendisk() in the drop waits for sysfs users and bios in
        // flight; the device's store goes with its data after that.
        drop(slot.take());
        Ok(())
    }
}

/// `/sys/class/rzram-control/hot_add`: reading it creates a disk and
/// returns its index, like zram-control's.
fn hot_add_show(d: &Devices, out: &mut SysfsBuf<'_>) -> Result {
    let id = d.add()?;
    writeln!(out, "{id}").map_err(|_| EINVAL)
}

/// `/sys/class/rzram-control/hot_remove`: writing an index removes that disk.
fn hot_remove_store(d: &Devices, input: &[u8]) -> Result {
    let id: i32 = kstrto(input, 10)?;
    d.remove(usize::try_from(id).map_err(|_| EINVAL)?)
}

/// The attributes of `/sys/class/rzram-control/`.
pub(crate) const CONTROL: &[class::Attribute<Devices>] = &[
    class::Attribute {
        name: c"hot_add",
        show: Some(hot_add_show),
        store: None,
        mode: 0o400,
    },
    class::Attribute {
        name: c"hot_remove",
        show: None,
        store: Some(hot_remove_store),
        mode: 0o200,
    },
];
