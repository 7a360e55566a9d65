// SPDX-License-Identifier: GPL-2.0

//! Helpers for sysfs attribute callbacks: the output buffer and input parsing.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::{bindings, prelude::*};
use core::fmt;

/// The text of a sysfs read: at most one page, as `sysfs_emit()` allows.
pub struct SysfsBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SysfsBuf<'a> {
    /// Wraps the page-sized buffer sysfs hands to a `show` callback.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far (what `show` returns).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Write for SysfsBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses a sysfs input as an unsigned number: trims whitespace (and the
/// trailing newline `echo` adds), accepts decimal, `0x` hex and `0` octal like
/// the kernel's `kstrtoull(s, 0)`.
pub fn parse_u64(input: &[u8]) -> Result<u64> {
    let s = parse_str(input)?;
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return Err(EINVAL);
    }
    u64::from_str_radix(digits, radix).map_err(|_| EINVAL)
}

/// Returns the input as trimmed UTF-8 text.
pub fn parse_str(input: &[u8]) -> Result<&str> {
    Ok(core::str::from_utf8(input).map_err(|_| EINVAL)?.trim())
}

/// A C `attribute_group` (and the NULL-terminated group list that
/// `device_add_disk()` and `struct class` take) over attributes that live
/// elsewhere.
///
/// # Invariants
///
/// `ptrs` is NULL-terminated and `group.attrs` points to it; `groups[0]`
/// points to `group`; none of the three is reallocated.
pub struct Group {
    _ptrs: KVec<*mut bindings::attribute>,
    _group: KBox<bindings::attribute_group>,
    groups: KBox<[*const bindings::attribute_group; 2]>,
}

// SAFETY: immutable after construction; the kernel only reads it.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    /// Builds the group, initialising each attribute for lockdep
    /// (`sysfs_attr_init`).
    ///
    /// # Safety
    ///
    /// Every pointer must point to a valid `struct attribute` that stays at
    /// its address, unchanged, for as long as the group is in use.
    pub unsafe fn new(
        attrs: impl ExactSizeIterator<Item = *mut bindings::attribute>,
    ) -> Result<Self> {
        let mut ptrs = KVec::with_capacity(attrs.len() + 1, GFP_KERNEL)?;
        for p in attrs {
            // SAFETY: the caller guarantees `p` is a valid attribute.
            unsafe { bindings::sysfs_attr_init(p) };
            ptrs.push(p, GFP_KERNEL)?;
        }
        ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
        let mut group: bindings::attribute_group = pin_init::zeroed();
        group.__bindgen_anon_2.attrs = ptrs.as_mut_ptr();
        let group = KBox::new(group, GFP_KERNEL)?;
        let groups = KBox::new(
            [core::ptr::from_ref(&*group), core::ptr::null()],
            GFP_KERNEL,
        )?;
        // INVARIANT: built above; the vectors and boxes are not touched again.
        Ok(Self {
            _ptrs: ptrs,
            _group: group,
            groups,
        })
    }

    /// The NULL-terminated list holding this one group.
    pub fn as_groups(&self) -> *const *const bindings::attribute_group {
        self.groups.as_ptr()
    }
}
