// SPDX-License-Identifier: GPL-2.0

//! Sleeping bit locks: bit 0 of a word of their own is the lock
//! (`wait_on_bit_lock`), as zram's per-slot locks.
//!
//! A table of many such locks costs one word each; lockdep sees them as one
//! lock class ([`BitLockClass`], one map shared by the table, as zram's
//! `table_lock_map`), so an inversion between any slot lock and another lock
//! is reported, and a slot lock held across a sleep in atomic context is too.
//!
//! C header: [`include/linux/wait_bit.h`](srctree/include/linux/wait_bit.h)

use crate::{bindings, ffi::c_ulong, prelude::*, str::CStr, sync::LockClassKey, types::Opaque};

/// The bit of a [`BitLock`]'s word that is the lock.
const LOCK_BIT: i32 = 0;

/// The lockdep class of a set of [`BitLock`]s: a dynamic key and one
/// `lockdep_map` they all acquire and release. Without `CONFIG_LOCKDEP`
/// both are empty and every lockdep call compiles to nothing.
#[pin_data]
pub struct BitLockClass {
    #[pin]
    key: LockClassKey,
    #[pin]
    map: Opaque<bindings::lockdep_map>,
}

// SAFETY: the map is only passed to lockdep, which serialises its own state;
// the key is registered once and unregistered on drop.
unsafe impl Sync for BitLockClass {}
// SAFETY: as above; nothing in it is bound to a thread.
unsafe impl Send for BitLockClass {}

impl BitLockClass {
    /// A new class named `name` (as lockdep reports it).
    pub fn new(name: &'static CStr) -> impl PinInit<Self> {
        pin_init!(&this in Self {
            key <- LockClassKey::new_dynamic(),
            // SAFETY: `key` was initialised (registered) just above, at its
            // final, pinned place inside `*this`, and outlives the map (it is
            // unregistered only when the class is dropped, after every lock
            // using the map was released); `name` is 'static.
            map <- Opaque::ffi_init(|map| unsafe {
                bindings::lockdep_map_init(
                    map,
                    name.as_char_ptr(),
                    (*this.as_ptr()).key.as_ptr(),
                )
            }),
        })
    }

    #[inline]
    fn map(&self) -> *mut bindings::lockdep_map {
        self.map.get()
    }

    /// Whether lockdep sees a lock of this class held by the current task;
    /// `None` when lockdep is not built in.
    pub fn is_held(&self) -> Option<bool> {
        // SAFETY: the map was initialised by `new`.
        match unsafe { bindings::lockdep_map_is_held(self.map()) } {
            r if r < 0 => None,
            r => Some(r != 0),
        }
    }
}

/// A sleeping lock in bit 0 of a word of its own.
#[repr(transparent)]
pub struct BitLock(Opaque<c_ulong>);

// SAFETY: the word is only accessed through the kernel's atomic bit
// operations.
unsafe impl Sync for BitLock {}
// SAFETY: an unlocked word holds no thread-bound state.
unsafe impl Send for BitLock {}

impl Default for BitLock {
    fn default() -> Self {
        Self::new()
    }
}

impl BitLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self(Opaque::new(0))
    }

    /// Takes the lock, sleeping while another task holds it; lockdep records
    /// it as a lock of `class` (use one class for every lock of a table).
    #[inline]
    pub fn lock<'a>(&'a self, class: &'a BitLockClass) -> BitLockGuard<'a> {
        // SAFETY: the map was initialised by `BitLockClass::new`; the word
        // is used only with the bit-lock functions, and an
        // TASK_UNINTERRUPTIBLE wait cannot fail, so the lock is taken.
        unsafe {
            bindings::lockdep_map_acquire(class.map(), false);
            bindings::wait_on_bit_lock(self.0.get(), LOCK_BIT, bindings::TASK_UNINTERRUPTIBLE);
            bindings::lockdep_map_acquired(class.map());
        }
        BitLockGuard { lock: self, class }
    }

    /// Takes the lock if nobody holds it; never sleeps.
    #[inline]
    pub fn try_lock<'a>(&'a self, class: &'a BitLockClass) -> Option<BitLockGuard<'a>> {
        // SAFETY: test_and_set_bit_lock is atomic on a word used only with
        // the bit-lock functions.
        if unsafe { bindings::test_and_set_bit_lock(LOCK_BIT as crate::ffi::c_long, self.0.get()) }
        {
            return None;
        }
        // SAFETY: the map was initialised by `BitLockClass::new`; we took
        // the lock just above (a trylock, which lockdep does not order).
        unsafe {
            bindings::lockdep_map_acquire(class.map(), true);
            bindings::lockdep_map_acquired(class.map());
        }
        Some(BitLockGuard { lock: self, class })
    }
}

/// A held [`BitLock`]; released when dropped.
///
/// # Invariants
///
/// The current task took `lock` (recorded in `class`'s map) and has not
/// released it.
pub struct BitLockGuard<'a> {
    lock: &'a BitLock,
    class: &'a BitLockClass,
}

impl Drop for BitLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: by the type invariant we hold the lock, recorded in the
        // class's map; this releases both and wakes waiters.
        unsafe {
            bindings::lockdep_map_release(self.class.map());
            bindings::clear_and_wake_up_bit(LOCK_BIT, self.lock.0.get());
        }
    }
}
