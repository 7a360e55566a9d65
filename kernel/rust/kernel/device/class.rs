// SPDX-License-Identifier: GPL-2.0

//! Device classes (`struct class`) with class attributes, such as zram's
//! `/sys/class/zram-control/hot_add`.
//!
//! C header: [`include/linux/device/class.h`](srctree/include/linux/device/class.h)

use crate::{
    bindings,
    error::{from_result, to_result},
    ffi::c_char,
    prelude::*,
    sync::Arc,
    sysfs::{Group, SysfsBuf},
    types::Opaque,
};

/// Shows a class attribute.
pub type ShowFn<T> = fn(&T, &mut SysfsBuf<'_>) -> Result;
/// Stores a class attribute.
pub type StoreFn<T> = fn(&T, &[u8]) -> Result;

/// One attribute of a class whose data is `T`.
pub struct Attribute<T> {
    /// File name under `/sys/class/<class>/`.
    pub name: &'static CStr,
    /// Read callback; `None` for write-only attributes.
    pub show: Option<ShowFn<T>>,
    /// Write callback; `None` for read-only attributes.
    pub store: Option<StoreFn<T>>,
    /// Permission bits, e.g. `0o400` for a root-only read.
    pub mode: u16,
}

/// `struct class_attribute`, the Rust callbacks and the class data.
#[repr(C)]
struct Entry<T> {
    attr: bindings::class_attribute,
    show: Option<ShowFn<T>>,
    store: Option<StoreFn<T>>,
    data: *const T,
}

/// A registered class; unregistered when dropped.
///
/// # Invariants
///
/// `class` was registered with `class_register`; its attribute group points
/// into `entries`, which is never reallocated; every entry's `data` points
/// into `data`.
pub struct Registration<T: Send + Sync> {
    class: KBox<Opaque<bindings::class>>,
    _entries: KVec<Entry<T>>,
    _group: Group,
    _data: Arc<T>,
}

// SAFETY: the C structures are immutable after registration and `T` is
// `Send + Sync`.
unsafe impl<T: Send + Sync> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Registration<T> {}

impl<T: Send + Sync> Registration<T> {
    /// Registers class `name` with `attrs`, whose callbacks receive `data`.
    pub fn new(name: &'static CStr, data: Arc<T>, attrs: &[Attribute<T>]) -> Result<Self> {
        let mut entries = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
        for a in attrs {
            let mut attr: bindings::class_attribute = pin_init::zeroed();
            attr.attr.name = a.name.as_char_ptr();
            attr.attr.mode = a.mode;
            attr.show = a.show.map(|_| show_callback::<T> as CShowFn);
            attr.store = a.store.map(|_| store_callback::<T> as CStoreFn);
            entries.push(
                Entry {
                    attr,
                    show: a.show,
                    store: a.store,
                    data: Arc::as_ptr(&data),
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: the attributes live in `entries`, which is never
        // reallocated and lives as long as the group (both in `Self`).
        let group = unsafe { Group::new(entries.iter_mut().map(|e| &raw mut e.attr.attr))? };
        let mut class: bindings::class = pin_init::zeroed();
        class.name = name.as_char_ptr();
        class.class_groups = group.as_groups();
        let class = KBox::new(Opaque::new(class), GFP_KERNEL)?;
        // SAFETY: `class` is fully initialised and lives in a box that
        // `Registration` keeps until `drop` unregisters it.
        to_result(unsafe { bindings::class_register(class.get()) })?;
        // INVARIANT: registered above; all allocations are final.
        Ok(Self {
            class,
            _entries: entries,
            _group: group,
            _data: data,
        })
    }
}

impl<T: Send + Sync> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `new` (type invariant); after this no
        // callback runs, so the rest can be freed.
        unsafe { bindings::class_unregister(self.class.get()) };
    }
}

type CShowFn = unsafe extern "C" fn(
    *const bindings::class,
    *const bindings::class_attribute,
    *mut c_char,
) -> isize;
type CStoreFn = unsafe extern "C" fn(
    *const bindings::class,
    *const bindings::class_attribute,
    *const c_char,
    usize,
) -> isize;

/// `class_attribute::show` for every attribute of a [`Registration<T>`].
///
/// # Safety
///
/// Called by sysfs with an attribute registered by [`Registration::new`].
unsafe extern "C" fn show_callback<T: Send + Sync>(
    _class: *const bindings::class,
    attr: *const bindings::class_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: `attr` is the first field of a `#[repr(C)]` `Entry<T>` that
    // lives as long as the registration, which outlives this callback.
    let entry = unsafe { &*attr.cast::<Entry<T>>() };
    // SAFETY: `data` points into the registration's `Arc<T>`.
    let data = unsafe { &*entry.data };
    // SAFETY: sysfs hands a buffer of PAGE_SIZE bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE) };
    let mut out = SysfsBuf::new(buf);
    from_result(|| {
        (entry.show.ok_or(EIO)?)(data, &mut out)?;
        Ok(out.len() as isize)
    })
}

/// `class_attribute::store` for every attribute of a [`Registration<T>`].
///
/// # Safety
///
/// As for [`show_callback`]; `buf` holds `count` bytes.
unsafe extern "C" fn store_callback<T: Send + Sync>(
    _class: *const bindings::class,
    attr: *const bindings::class_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `show_callback`.
    let entry = unsafe { &*attr.cast::<Entry<T>>() };
    // SAFETY: as in `show_callback`.
    let data = unsafe { &*entry.data };
    // SAFETY: sysfs hands `count` readable bytes.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    from_result(|| {
        (entry.store.ok_or(EIO)?)(data, input)?;
        Ok(count as isize)
    })
}
