//! Kernel memory and the read-only globals userspace fills in at load time:
//! the struct field offsets (aya has no CO-RE, userspace reads them from
//! the running kernel's BTF), the watched devices, and the device lookups
//! every program starts with.

use core::ptr::read_volatile;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use zramctl_common::{KernelOffsets, MAX_DEVS, WatchTable, WatchedDev};

/// Reads one field of a read-only global. Volatile so the compiler does
/// not fold the zero initialisers; the verifier reads the frozen map and
/// knows the value.
macro_rules! global {
    ($($field:tt)+) => {
        // SAFETY: a plain read of an initialised global that nothing writes
        // after load.
        unsafe { core::ptr::read_volatile(&raw const $($field)+) }
    };
}
pub(crate) use global;

/// Kernel `dev_t` of the device `bio_queue` counts (see `zramctl_common::kernel_dev`).
#[unsafe(no_mangle)]
pub static TARGET_DEV: u32 = 0;

/// Struct field offsets read from the running kernel's BTF by userspace.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    bio_bi_bdev: 0,
    bio_bi_opf: 0,
    bio_bi_sector: 0,
    bio_bi_size: 0,
    bdev_bd_dev: 0,
    rq_part: 0,
    rq_cmd_flags: 0,
    _pad: 0,
};

/// The watched devices, set by userspace.
#[unsafe(no_mangle)]
pub static WATCH: WatchTable = WatchTable {
    devs: [WatchedDev {
        dev: 0,
        flags: 0,
        slot_base: 0,
        slot_count: 0,
    }; MAX_DEVS],
    count: 0,
    _pad: 0,
};

/// How a program reads kernel memory.
pub trait Kmem {
    /// Reads a `T` at `base + off` in kernel memory.
    fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32>;
}

/// `tp_btf`: direct loads from BTF-typed pointers.
pub struct Direct;

impl Kmem for Direct {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32> {
        // SAFETY: in a tp_btf program `base` is a BTF-typed kernel pointer
        // (a tracepoint argument, or loaded from one); the verifier checks
        // the constant `off` and the size against the kernel's BTF and
        // turns the load into an exception-handled PROBE_MEM load that
        // yields 0 instead of faulting (a NULL `base` included).
        // `wrapping_add` does no dereference.
        Ok(unsafe { read_volatile(base.wrapping_add(off as usize).cast::<T>()) })
    }
}

/// `raw_tracepoint`: `bpf_probe_read_kernel`.
pub struct Probe;

impl Kmem for Probe {
    #[inline(always)]
    fn read<T: Copy>(base: *const u8, off: u32) -> Result<T, i32> {
        // SAFETY: bpf_probe_read_kernel validates the address itself and
        // returns an error instead of faulting; `wrapping_add` does no
        // dereference.
        unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }
    }
}

/// A watched device, as [`watch_index`] finds it.
pub struct Watched {
    /// Index in [`WATCH`].
    pub index: usize,
    pub flags: u32,
    pub slot_base: u32,
    pub slot_count: u32,
}

/// `dev` if it is watched with `flag`. Indexing stays inside the loop,
/// where the index is provably in bounds: a bounds check that can fail
/// would link a panic path, which the verifier rejects.
#[inline(always)]
pub fn watch_index(dev: u32, flag: u32) -> Option<Watched> {
    let count = global!(WATCH.count) as usize;
    let mut i = 0;
    while i < MAX_DEVS {
        if i >= count {
            return None;
        }
        if global!(WATCH.devs[i].dev) == dev && global!(WATCH.devs[i].flags) & flag != 0 {
            return Some(Watched {
                index: i,
                flags: global!(WATCH.devs[i].flags),
                slot_base: global!(WATCH.devs[i].slot_base),
                slot_count: global!(WATCH.devs[i].slot_count),
            });
        }
        i += 1;
    }
    None
}

/// The `dev_t` of a `struct block_device *`.
#[inline(always)]
pub fn bdev_dev<K: Kmem>(bdev: *const u8) -> Result<u32, i32> {
    K::read(bdev, global!(OFFSETS.bdev_bd_dev))
}

/// The `dev_t` a bio is queued to.
#[inline(always)]
pub fn bio_dev<K: Kmem>(bio: *const u8) -> Result<u32, i32> {
    let bdev: *const u8 = K::read(bio, global!(OFFSETS.bio_bi_bdev))?;
    bdev_dev::<K>(bdev)
}

/// The `dev_t` of the (partition) device a request is for.
#[inline(always)]
pub fn rq_dev<K: Kmem>(rq: *const u8) -> Result<u32, i32> {
    let part: *const u8 = K::read(rq, global!(OFFSETS.rq_part))?;
    if part.is_null() {
        return Err(-1);
    }
    bdev_dev::<K>(part)
}
