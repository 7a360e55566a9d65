// SPDX-License-Identifier: GPL-2.0

//! Compression workspaces, one per online CPU (upstream's per-CPU
//! `zcomp_strm`): made when a CPU comes up and freed when it goes, through
//! a CPU hotplug state, so that their memory follows the online CPUs and
//! not every possible one.

use crate::{
    base::PAGE,
    comp::{Algorithms, Codec, MAX_COMPS},
};
use kernel::{
    cpu::{nr_cpu_ids, CpuId},
    cpuhp::{self, Instance, MultiState},
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex, MutexGuard},
};

/// A compression workspace: each priority's algorithm state and two pages:
/// `buf[..PAGE]` for compressed data (and zsmalloc's bounce),
/// `buf[PAGE..]` for a page copied in from, or out to, a bio. Empty (no
/// codecs, no pages) while its CPU is down.
///
/// Each CPU's workspace, with its mutex, is a separate allocation; aligned
/// (and so sized) to a cache line, no two CPUs' mutexes share one, which
/// they would in a small kmalloc cache (a mutex is taken per page).
#[repr(align(64))]
pub(crate) struct Workspace {
    pub(crate) codecs: KVec<Option<Codec>>,
    pub(crate) buf: KVec<u8>,
}

impl Workspace {
    /// The workspace of a CPU that is down.
    fn empty() -> Self {
        Self {
            codecs: KVec::new(),
            buf: KVec::new(),
        }
    }

    /// A workspace ready for `algorithms`.
    fn new(algorithms: Algorithms) -> Result<Self> {
        let mut buf = KVec::with_capacity(2 * PAGE, GFP_KERNEL)?;
        buf.resize(2 * PAGE, 0, GFP_KERNEL)?;
        let mut codecs = KVec::with_capacity(MAX_COMPS, GFP_KERNEL)?;
        for algorithm in algorithms.0 {
            codecs.push(algorithm.map(Codec::new).transpose()?, GFP_KERNEL)?;
        }
        Ok(Self { codecs, buf })
    }

    fn is_ready(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// A slot per possible CPU (a mutex and an empty workspace, a cache line);
/// the workspaces themselves only for the CPUs that are up.
pub(crate) struct PerCpu {
    slots: KVec<Pin<KBox<Mutex<Workspace>>>>,
    algorithms: Algorithms,
}

impl PerCpu {
    fn slot(&self, cpu: CpuId) -> &Mutex<Workspace> {
        // There is a slot per CPU id (`nr_cpu_ids` of them), so `cpu` always
        // indexes one: a bounds check, not a division. The fallback is never
        // taken (and `nr_cpu_ids` >= 1 makes it in bounds).
        match self.slots.get(cpu.as_u32() as usize) {
            Some(ws) => ws,
            None => &self.slots[0],
        }
    }
}

impl cpuhp::Callbacks for PerCpu {
    fn prepare(&self, cpu: CpuId) -> Result {
        // Allocated before the lock is taken, as upstream's
        // `zcomp_cpu_up_prepare`.
        let ws = Workspace::new(self.algorithms)?;
        *self.slot(cpu).lock() = ws;
        Ok(())
    }

    fn dead(&self, cpu: CpuId) {
        // Waits for a task that took the workspace on `cpu` before it went
        // down and was moved to another CPU since; freed outside the lock.
        let ws = core::mem::replace(&mut *self.slot(cpu).lock(), Workspace::empty());
        drop(ws);
    }
}

/// The hotplug state of the module's workspaces.
pub(crate) type Hotplug = MultiState<PerCpu>;

/// Sets up the hotplug state that all devices' workspaces are instances of.
pub(crate) fn hotplug_state() -> Result<Arc<Hotplug>> {
    MultiState::new(c"block/rzram:prepare")
}

/// A store's workspaces.
pub(crate) struct Workspaces(Pin<KBox<Instance<PerCpu>>>);

impl Workspaces {
    /// Workspaces for `algorithms`, made for each online CPU now and for
    /// each CPU that comes up later, as instances of `state`.
    pub(crate) fn new(state: &Arc<Hotplug>, algorithms: Algorithms) -> Result<Self> {
        let n = nr_cpu_ids() as usize;
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(
                KBox::pin_init(new_mutex!(Workspace::empty()), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let per_cpu = PerCpu { slots, algorithms };
        Ok(Self(KBox::pin_init(
            Instance::new(state.clone(), per_cpu),
            GFP_KERNEL,
        )?))
    }

    /// Locks the workspace of the CPU we run on. If that CPU went down
    /// after we read its id, its workspace is gone and the one of the CPU
    /// we were moved to is taken instead (as upstream's `zcomp_stream_get`).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Workspace> {
        loop {
            let guard = self.0.slot(CpuId::current()).lock();
            if guard.is_ready() {
                return guard;
            }
        }
    }
}
