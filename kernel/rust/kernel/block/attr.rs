// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes of a disk (`/sys/block/<disk>/<name>`).
//!
//! A driver describes its attributes once, as a table of [`Attribute`]s whose
//! callbacks receive the disk's driver data (the `private_data` of its
//! `struct gendisk`). [`AttributeGroup`] turns the table into the C
//! `attribute_group` that `device_add_disk()` takes.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::{
    bindings,
    block::bio_disk::DiskRef,
    error::{from_result, Result},
    ffi::c_char,
    prelude::*,
    types::ForeignOwnable,
};
use core::{marker::PhantomData, ptr::NonNull};

use crate::sysfs::Group;
pub use crate::sysfs::{CInput, SysfsBuf};

type Borrowed<'a, D> = <D as ForeignOwnable>::Borrowed<'a>;

/// Shows an attribute: writes its text into the buffer.
pub type ShowFn<D> = for<'a> fn(&DiskRef, Borrowed<'a, D>, &mut SysfsBuf<'_>) -> Result;
/// Stores an attribute: parses what userspace wrote.
pub type StoreFn<D> = for<'a> fn(&DiskRef, Borrowed<'a, D>, &[u8]) -> Result;

/// One attribute of a disk whose driver data is `D`.
pub struct Attribute<D: ForeignOwnable> {
    /// File name under `/sys/block/<disk>/`.
    pub name: &'static CStr,
    /// Read callback; `None` for write-only attributes.
    pub show: Option<ShowFn<D>>,
    /// Write callback; `None` for read-only attributes.
    pub store: Option<StoreFn<D>>,
}

/// The C signature of `device_attribute::show`.
type CShowFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *mut c_char,
) -> isize;
/// The C signature of `device_attribute::store`.
type CStoreFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *const c_char,
    usize,
) -> isize;

/// `struct device_attribute` followed by the Rust callbacks it dispatches to.
#[repr(C)]
struct Entry<D: ForeignOwnable> {
    attr: bindings::device_attribute,
    show: Option<ShowFn<D>>,
    store: Option<StoreFn<D>>,
}

/// A C `attribute_group` built from a table of [`Attribute`]s.
///
/// It must outlive every disk it is added to; drivers keep it in their
/// module data, which is dropped after the disks.
///
/// # Invariants
///
/// `entries` is never reallocated, so the attribute pointers in `group`
/// stay valid.
pub struct AttributeGroup<D: ForeignOwnable> {
    entries: KVec<Entry<D>>,
    group: Group,
    _p: PhantomData<D>,
}

// SAFETY: the group is immutable after construction; the kernel only reads it.
unsafe impl<D: ForeignOwnable> Send for AttributeGroup<D> {}
// SAFETY: as above.
unsafe impl<D: ForeignOwnable> Sync for AttributeGroup<D> {}

impl<D: ForeignOwnable> AttributeGroup<D> {
    /// Builds the C structures for `attrs`.
    pub fn new(attrs: &[Attribute<D>]) -> Result<Self> {
        let mut entries = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
        for a in attrs {
            let mut attr: bindings::device_attribute = pin_init::zeroed();
            attr.attr.name = a.name.as_char_ptr();
            attr.attr.mode = match (a.show.is_some(), a.store.is_some()) {
                (true, true) => 0o644,
                (true, false) => 0o444,
                (false, true) => 0o200,
                (false, false) => return Err(EINVAL),
            };
            attr.__bindgen_anon_1.show = a.show.map(|_| show_callback::<D> as CShowFn);
            attr.__bindgen_anon_2.store = a.store.map(|_| store_callback::<D> as CStoreFn);
            entries.push(
                Entry {
                    attr,
                    show: a.show,
                    store: a.store,
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: the attributes live in `entries`, which is never
        // reallocated and lives as long as the group (both in `Self`).
        let group = unsafe { Group::new(entries.iter_mut().map(|e| &raw mut e.attr.attr))? };
        // INVARIANT: `entries` is final.
        Ok(Self {
            entries,
            group,
            _p: PhantomData,
        })
    }

    /// The NULL-terminated array of groups `device_add_disk()` takes.
    pub fn as_groups(&self) -> *mut *const bindings::attribute_group {
        self.group.as_groups().cast_mut()
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the group is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Finds the disk and its driver data from a sysfs `struct device`.
///
/// # Safety
///
/// `dev` must be the device of a live disk built by `BioDiskBuilder::build`
/// with data of type `D`, and `attr` must be the `attr` field of an
/// `Entry<D>`.
unsafe fn context<'a, D: ForeignOwnable>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
) -> (DiskRef, Borrowed<'a, D>, &'a Entry<D>) {
    // SAFETY: `dev` belongs to a disk (caller), so dev_to_disk is valid.
    let disk = unsafe { bindings::dev_to_disk(dev) };
    // SAFETY: the caller guarantees the disk was built with data of type
    // `D`, and the disk (hence the data) outlives this sysfs call:
    // `del_gendisk` waits for it before the data goes.
    let data = unsafe { crate::block::bio_disk::disk_data::<D>(disk) };
    // SAFETY: `attr` is the first field of a `#[repr(C)]` `Entry<D>` (caller).
    let entry = unsafe { &*attr.cast::<Entry<D>>() };
    // SAFETY: `disk` is valid for the duration of the call.
    let disk = unsafe { DiskRef::from_raw(NonNull::new_unchecked(disk)) };
    (disk, data, entry)
}

/// `device_attribute::show` for every attribute of an [`AttributeGroup<D>`].
///
/// # Safety
///
/// Called by sysfs with a disk device and an attribute of a group built by
/// [`AttributeGroup::new`] whose disk data is a `D`.
unsafe extern "C" fn show_callback<D: ForeignOwnable>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: sysfs calls this with the device and attribute registered by
    // `AttributeGroup::new` on a disk built by `BioDiskBuilder::build`.
    let (disk, data, entry) = unsafe { context::<D>(dev, attr) };
    // SAFETY: sysfs hands a zeroed buffer of PAGE_SIZE bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE) };
    let mut out = SysfsBuf::new(buf);
    from_result(|| {
        let show = entry.show.ok_or(EIO)?;
        show(&disk, data, &mut out)?;
        Ok(out.len() as isize)
    })
}

/// `device_attribute::store` for every attribute of an [`AttributeGroup<D>`].
///
/// # Safety
///
/// As for [`show_callback`]; `buf` holds `count` bytes.
unsafe extern "C" fn store_callback<D: ForeignOwnable>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `show_callback`.
    let (disk, data, entry) = unsafe { context::<D>(dev, attr) };
    // SAFETY: sysfs hands `count` readable bytes.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    from_result(|| {
        let store = entry.store.ok_or(EIO)?;
        store(&disk, data, input)?;
        Ok(count as isize)
    })
}
