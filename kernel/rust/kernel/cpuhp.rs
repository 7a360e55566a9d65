// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug: multi-instance states.
//!
//! A driver that keeps something per online CPU (a buffer, a compression
//! context) sets up one [`MultiState`] and makes each object an [`Instance`]
//! of it. The state's callbacks run for every instance when a CPU comes up
//! or goes away, and for every online CPU when an instance is added or
//! removed, so memory follows the CPUs that are online, not every possible
//! one (`nr_cpu_ids`, which on hotplug-capable machines can be many more).
//!
//! C header: [`include/linux/cpuhotplug.h`](srctree/include/linux/cpuhotplug.h)

use crate::{
    bindings, container_of,
    cpu::CpuId,
    error::{from_result, to_result},
    ffi::{c_int, c_uint},
    prelude::*,
    str::CStr,
    sync::Arc,
    types::Opaque,
};
use core::{marker::PhantomData, ops::Deref};

/// What an instance of a [`MultiState`] does as CPUs come and go.
pub trait Callbacks: Send + Sync + Sized {
    /// Makes ready what `cpu` will use. Called before `cpu` boots, and for
    /// each online CPU when an instance is added; it may sleep. An error
    /// stops the CPU coming up (or the instance being added), and the calls
    /// that succeeded are undone with [`Callbacks::dead`].
    fn prepare(&self, cpu: CpuId) -> Result;

    /// Frees what [`Callbacks::prepare`] made for `cpu`. Called after `cpu`
    /// died, and for each online CPU when an instance is removed, from a
    /// task on another CPU; it may sleep.
    fn dead(&self, cpu: CpuId);
}

/// A multi-instance state in the prepare section (`CPUHP_BP_PREPARE_DYN`,
/// as zram's `CPUHP_ZCOMP_PREPARE`): its callbacks run on a control CPU
/// before a CPU boots and after it died, in a task, so they may sleep and
/// allocate with `GFP_KERNEL`.
///
/// # Invariants
///
/// `state` is a dynamic state set up by `cpuhp_setup_state_multi` with the
/// callbacks `startup::<T>` and `teardown::<T>`; it is removed on drop, after
/// its last instance (each holds a reference to the state).
pub struct MultiState<T: Callbacks> {
    state: bindings::cpuhp_state,
    _callbacks: PhantomData<fn(&T)>,
}

impl<T: Callbacks> MultiState<T> {
    /// Sets up a state named `name` (as `/sys/devices/system/cpu/hotplug/states`
    /// lists it), with no instance yet.
    pub fn new(name: &'static CStr) -> Result<Arc<Self>> {
        // SAFETY: `name` is 'static; the callbacks have the signature the
        // multi-instance state calls them with.
        let ret = unsafe {
            bindings::cpuhp_setup_state_multi(
                bindings::cpuhp_state_CPUHP_BP_PREPARE_DYN,
                name.as_char_ptr(),
                Some(startup::<T>),
                Some(teardown::<T>),
            )
        };
        to_result(ret)?;
        // INVARIANT: a dynamic state returns its number, which is positive.
        let state = Self {
            state: ret as bindings::cpuhp_state,
            _callbacks: PhantomData,
        };
        // On an allocation failure `state` is dropped, which removes it.
        Ok(Arc::new(state, GFP_KERNEL)?)
    }
}

impl<T: Callbacks> Drop for MultiState<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariants the state was set up and has no
        // instance left (each held a reference to `self`).
        unsafe { bindings::cpuhp_remove_multi_state(self.state) };
    }
}

/// Data `T` added to a [`MultiState`]: `T::prepare` has run for each online
/// CPU, and `T::dead` runs for each when it is dropped.
///
/// # Invariants
///
/// `node` is in `state`'s list of instances from initialisation until drop.
#[pin_data(PinnedDrop)]
pub struct Instance<T: Callbacks> {
    #[pin]
    node: Opaque<bindings::hlist_node>,
    state: Arc<MultiState<T>>,
    data: T,
}

// SAFETY: the node is only touched by the hotplug core, under its own
// lock; `T` is `Send`.
unsafe impl<T: Callbacks> Send for Instance<T> {}
// SAFETY: `&Instance` gives only `&T` (and `T` is `Sync`); the node is only
// touched by the hotplug core, under its own lock.
unsafe impl<T: Callbacks> Sync for Instance<T> {}

impl<T: Callbacks> Instance<T> {
    /// Adds `data` to `state`, calling `T::prepare` for each online CPU;
    /// on an error the CPUs prepared are undone with `T::dead`.
    pub fn new(state: Arc<MultiState<T>>, data: T) -> impl PinInit<Self, Error> {
        let id = state.state;
        try_pin_init!(&this in Self {
            node: Opaque::uninit(),
            state,
            data,
            // INVARIANT: the node is added last, when `data` is initialised
            // for the callbacks, and only if the call succeeds.
            _: {
                // SAFETY: `this` is pinned until `PinnedDrop::drop` removes
                // the node; all fields are initialised, so the callbacks
                // (which start right away) may use them; `id` is a
                // multi-instance state.
                to_result(unsafe {
                    bindings::cpuhp_state_add_instance(
                        id,
                        Opaque::cast_into(&raw const (*this.as_ptr()).node),
                    )
                })?;
            },
        })
    }
}

impl<T: Callbacks> Deref for Instance<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

#[pinned_drop]
impl<T: Callbacks> PinnedDrop for Instance<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariants the node is in the state's list;
        // this removes it (calling `T::dead` for each online CPU) before
        // `data` is dropped.
        unsafe { bindings::cpuhp_state_remove_instance(self.state.state, self.node.get()) };
    }
}

/// The instance whose `node` field `node` is.
///
/// # Safety
///
/// `node` is the node of a live `Instance<T>`.
unsafe fn instance<'a, T: Callbacks>(node: *mut bindings::hlist_node) -> &'a Instance<T> {
    // SAFETY: by the function's safety requirements `node` is the `node`
    // field of an `Instance<T>`, which is live.
    unsafe { &*container_of!(Opaque::cast_from(node).cast_mut(), Instance<T>, node) }
}

/// `startup` of a [`MultiState<T>`].
///
/// # Safety
///
/// Called by the hotplug core for a node added by `Instance::new` (so of a
/// live `Instance<T>`, removed before it is dropped) and a CPU id.
unsafe extern "C" fn startup<T: Callbacks>(cpu: c_uint, node: *mut bindings::hlist_node) -> c_int {
    // SAFETY: the hotplug core passes an id below `nr_cpu_ids`.
    let cpu = unsafe { CpuId::from_u32_unchecked(cpu) };
    // SAFETY: by the function's safety requirements.
    let inst = unsafe { instance::<T>(node) };
    from_result(|| inst.data.prepare(cpu).map(|()| 0))
}

/// `teardown` of a [`MultiState<T>`].
///
/// # Safety
///
/// As [`startup`].
unsafe extern "C" fn teardown<T: Callbacks>(cpu: c_uint, node: *mut bindings::hlist_node) -> c_int {
    // SAFETY: the hotplug core passes an id below `nr_cpu_ids`.
    let cpu = unsafe { CpuId::from_u32_unchecked(cpu) };
    // SAFETY: by the function's safety requirements.
    let inst = unsafe { instance::<T>(node) };
    inst.data.dead(cpu);
    0
}
