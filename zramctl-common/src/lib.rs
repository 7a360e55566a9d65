//! Types shared between the zramctl eBPF programs (`zramctl-ebpf`, built for
//! `bpfel-unknown-none`) and userspace (`zramctl`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of pointers so that the
//! same bytes mean the same thing on both sides of a BPF map. With the `user`
//! feature the types implement [`aya::Pod`] so userspace can read them from
//! maps directly.
#![no_std]

/// Name of the raw tracepoint program that counts bios queued to one device.
pub const PROG_BIO_QUEUE: &str = "bio_queue";
/// Name of the per-CPU array map that holds [`BioCounts`] (one entry).
pub const MAP_BIO_COUNTS: &str = "BIO_COUNTS";
/// Name of the global holding the watched device number (`dev_t`, kernel encoding).
pub const GLOBAL_TARGET_DEV: &str = "TARGET_DEV";
/// Name of the global holding the [`KernelOffsets`] the programs read with.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";

/// `REQ_OP_*` values from `include/linux/blk_types.h` (stable kernel ABI for tracing).
pub mod req_op {
    /// Mask of the operation bits in `bio->bi_opf`.
    pub const MASK: u32 = (1 << 8) - 1;
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const FLUSH: u32 = 2;
    pub const DISCARD: u32 = 3;
    pub const WRITE_ZEROES: u32 = 9;
}

/// Byte offsets of the kernel struct fields the probes read.
///
/// aya has no CO-RE relocations, so userspace reads these from the running
/// kernel's BTF (`/sys/kernel/btf/vmlinux`) at load time and hands them to the
/// programs as a global; one object then runs on any kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `offsetof(struct bio, bi_bdev)`
    pub bio_bi_bdev: u32,
    /// `offsetof(struct bio, bi_opf)`
    pub bio_bi_opf: u32,
    /// `offsetof(struct bio, bi_iter) + offsetof(struct bvec_iter, bi_sector)`
    pub bio_bi_sector: u32,
    /// `offsetof(struct bio, bi_iter) + offsetof(struct bvec_iter, bi_size)`
    pub bio_bi_size: u32,
    /// `offsetof(struct block_device, bd_dev)`
    pub bdev_bd_dev: u32,
    /// Explicit padding so the layout has no implicit holes.
    pub _pad: u32,
}

/// Counts of bios queued to the watched device, by operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioCounts {
    pub reads: u64,
    pub writes: u64,
    pub discards: u64,
    /// Flushes, write-zeroes and everything else.
    pub other: u64,
    /// Bytes carried by all counted bios.
    pub bytes: u64,
}

impl BioCounts {
    /// Sum of all bios counted.
    pub const fn total(&self) -> u64 {
        self.reads + self.writes + self.discards + self.other
    }

    /// Adds `other` into `self` (used to fold per-CPU values).
    pub fn accumulate(&mut self, other: &Self) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.discards += other.discards;
        self.other += other.other;
        self.bytes += other.bytes;
    }
}

/// The kernel's internal `dev_t` encoding (`MKDEV` in `include/linux/kdev_t.h`),
/// which is what `block_device::bd_dev` holds. It differs from userspace's
/// `makedev` encoding returned by `stat(2)`.
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & ((1 << 20) - 1))
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are `#[repr(C)]`, `Copy`, contain only integers and
    // have no padding bytes, so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::BioCounts {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_matches_mkdev() {
        // zram0 is 253:0 on this machine's kernel; loop3 is 7:3.
        assert_eq!(kernel_dev(253, 0), 253 << 20);
        assert_eq!(kernel_dev(7, 3), (7 << 20) | 3);
    }

    #[test]
    fn layouts_have_no_holes() {
        assert_eq!(core::mem::size_of::<KernelOffsets>(), 6 * 4);
        assert_eq!(core::mem::size_of::<BioCounts>(), 5 * 8);
    }

    #[test]
    fn accumulate_sums_fields() {
        let mut a = BioCounts {
            reads: 1,
            writes: 2,
            discards: 3,
            other: 4,
            bytes: 4096,
        };
        a.accumulate(&BioCounts {
            reads: 10,
            writes: 0,
            discards: 0,
            other: 1,
            bytes: 8192,
        });
        assert_eq!(a.total(), 21);
        assert_eq!(a.bytes, 12288);
    }
}
