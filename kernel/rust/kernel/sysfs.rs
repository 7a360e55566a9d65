// SPDX-License-Identifier: GPL-2.0

//! Helpers for sysfs attribute callbacks: the output buffer and input parsing.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::{bindings, error::to_result, prelude::*, str::CStr};
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

/// A sysfs store input as C code sees it: NUL-terminated, so parsing stops
/// at the first NUL byte. Its parsers are the kernel's own (`kstrto*`,
/// `memparse`, `sysfs_streq`, `next_arg`), so that a driver that mirrors a C
/// driver's attributes accepts and rejects exactly the same inputs, with the
/// same errnos (`EINVAL`, `ERANGE`, ...).
pub struct CInput(KVec<u8>);

/// One `param[=value]` word of a [`CInput`]: the name and, unless bare,
/// the value.
pub type Arg<'a> = (&'a [u8], Option<&'a [u8]>);

/// A number type the kernel's `kstrto*` functions parse.
pub trait KstrtoInt: Sized + Default {
    /// Calls the `kstrto*` function of this type.
    ///
    /// # Safety
    ///
    /// `s` must be a valid NUL-terminated string.
    unsafe fn kstrto(s: *const crate::ffi::c_char, base: u32, res: &mut Self) -> i32;
}

macro_rules! kstrto_int {
    ($($t:ty => $f:ident),*) => {$(
        impl KstrtoInt for $t {
            unsafe fn kstrto(s: *const crate::ffi::c_char, base: u32, res: &mut Self) -> i32 {
                // SAFETY: per the caller `s` is a C string; `res` is valid.
                unsafe { bindings::$f(s, base, res) }
            }
        }
    )*};
}
kstrto_int!(u64 => kstrtoull, u32 => kstrtouint, i32 => kstrtoint, u16 => kstrtou16);

impl CInput {
    /// Copies `input` and NUL-terminates it.
    pub fn new(input: &[u8]) -> Result<Self> {
        let mut v = KVec::with_capacity(input.len() + 1, GFP_KERNEL)?;
        v.extend_from_slice(input, GFP_KERNEL)?;
        v.push(0, GFP_KERNEL)?;
        Ok(Self(v))
    }

    fn ptr(&self) -> *const crate::ffi::c_char {
        self.0.as_ptr().cast()
    }

    /// The bytes up to the first NUL, as C sees them.
    pub fn as_bytes(&self) -> &[u8] {
        let n = self.0.iter().position(|c| *c == 0).unwrap_or(self.0.len());
        &self.0[..n]
    }

    /// `kstrto*(s, base, &res)`: an optional sign, digits in `base` (0: by
    /// prefix), at most one trailing newline; `EINVAL` or `ERANGE`.
    pub fn kstrto<T: KstrtoInt>(&self, base: u32) -> Result<T> {
        let mut res = T::default();
        // SAFETY: the buffer is NUL-terminated (`new`).
        to_result(unsafe { T::kstrto(self.ptr(), base, &mut res) })?;
        Ok(res)
    }

    /// `memparse(s, &end)`: a number with an optional K/M/G/T/P/E suffix,
    /// rest ignored; returns it and how many bytes it took (0: no number).
    pub fn memparse(&self) -> (u64, usize) {
        let mut end = self.ptr().cast_mut();
        // SAFETY: the buffer is NUL-terminated; `end` receives a pointer
        // into it.
        let v = unsafe { bindings::memparse(self.ptr(), &mut end) };
        // SAFETY: memparse leaves `end` within the string.
        let used = unsafe { end.cast_const().offset_from(self.ptr()) };
        (v, used.max(0) as usize)
    }

    /// `sysfs_streq(s, word)`: equal, ignoring one trailing newline.
    pub fn streq(&self, word: &CStr) -> bool {
        // SAFETY: both are NUL-terminated strings.
        unsafe { bindings::sysfs_streq(self.ptr(), word.as_char_ptr()) }
    }

    /// The `param[=value]` words of the input, split by the kernel's
    /// `next_arg()` (quotes and all), after `skip_spaces()`; a bare word
    /// has no value. Splitting writes NULs into the copy.
    pub fn args(&mut self) -> Result<KVec<Arg<'_>>> {
        let mut out = KVec::new();
        let base = self.0.as_mut_ptr().cast::<crate::ffi::c_char>();
        // SAFETY: the buffer is NUL-terminated and ours to modify.
        let mut pos = unsafe { bindings::skip_spaces(base) };
        let mut raw = KVec::<(usize, usize, Option<(usize, usize)>)>::new();
        // SAFETY: `pos` stays within the NUL-terminated buffer: next_arg
        // returns a pointer past the argument it split off, at most to the
        // terminating NUL.
        while unsafe { *pos } != 0 {
            let (mut param, mut val) = (core::ptr::null_mut(), core::ptr::null_mut());
            // SAFETY: as above; next_arg NUL-terminates `param` and `val`
            // inside the buffer.
            pos = unsafe { bindings::next_arg(pos, &mut param, &mut val) };
            let span = |p: *mut crate::ffi::c_char| {
                // SAFETY: `p` points into the buffer, at a NUL-terminated
                // string next_arg made.
                let start = unsafe { p.offset_from(base) } as usize;
                // SAFETY: as above.
                let len = unsafe { CStr::from_char_ptr(p) }.to_bytes().len();
                (start, len)
            };
            let (ps, pl) = span(param);
            raw.push((ps, pl, (!val.is_null()).then(|| span(val))), GFP_KERNEL)?;
        }
        for (ps, pl, v) in raw {
            let val = v.map(|(vs, vl)| &self.0[vs..vs + vl]);
            out.push((&self.0[ps..ps + pl], val), GFP_KERNEL)?;
        }
        Ok(out)
    }
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
    /// Each attribute's lockdep class key (see [`Group::new`]).
    #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
    _keys: KVec<Pin<KBox<crate::sync::LockClassKey>>>,
    _ptrs: KVec<*mut bindings::attribute>,
    _group: KBox<bindings::attribute_group>,
    groups: KBox<[*const bindings::attribute_group; 2]>,
}

// SAFETY: immutable after construction; the kernel only reads it.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    /// Builds the group, giving each attribute a lockdep class key of its
    /// own, as each static attribute has in C. (`sysfs_attr_init` through
    /// one helper gave them all the helper's one static key: lockdep then
    /// took a write to a class attribute that removes a disk, such as
    /// `hot_remove`, removing the disk's attributes for recursive locking.)
    ///
    /// # Safety
    ///
    /// Every pointer must point to a valid `struct attribute` that stays at
    /// its address, unchanged, for as long as the group is in use.
    pub unsafe fn new(
        attrs: impl ExactSizeIterator<Item = *mut bindings::attribute>,
    ) -> Result<Self> {
        #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
        let mut keys = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
        let mut ptrs = KVec::with_capacity(attrs.len() + 1, GFP_KERNEL)?;
        for p in attrs {
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            {
                let key = KBox::pin_init(crate::sync::LockClassKey::new_dynamic(), GFP_KERNEL)?;
                // SAFETY: the caller guarantees `p` is a valid attribute that
                // nothing else changes; the key is registered with lockdep
                // and lives in `Self` (pinned) as long as the group.
                unsafe { (*p).key = key.as_ptr() };
                keys.push(key, GFP_KERNEL)?;
            }
            #[cfg(not(CONFIG_DEBUG_LOCK_ALLOC))]
            // SAFETY: the caller guarantees `p` is a valid attribute.
            unsafe {
                bindings::sysfs_attr_init(p)
            };
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
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            _keys: keys,
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
