//! zramctl's eBPF programs.
//!
//! `bio_queue` (raw tracepoint `block_bio_queue`) counts bios queued to one
//! watched block device, by operation. The device and the kernel struct
//! offsets are globals that userspace fills in at load time (aya has no
//! CO-RE; see `zramctl::ebpf`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod probes {
    use aya_ebpf::{
        helpers::bpf_probe_read_kernel,
        macros::{map, raw_tracepoint},
        maps::PerCpuArray,
        programs::RawTracePointContext,
    };
    use zramctl_common::{BioCounts, KernelOffsets, req_op};

    /// Kernel `dev_t` of the watched device (see `zramctl_common::kernel_dev`).
    #[unsafe(no_mangle)]
    static TARGET_DEV: u32 = 0;

    /// Struct field offsets read from the running kernel's BTF by userspace.
    #[unsafe(no_mangle)]
    static OFFSETS: KernelOffsets = KernelOffsets {
        bio_bi_bdev: 0,
        bio_bi_opf: 0,
        bio_bi_sector: 0,
        bio_bi_size: 0,
        bdev_bd_dev: 0,
        _pad: 0,
    };

    #[map(name = "BIO_COUNTS")]
    static BIO_COUNTS: PerCpuArray<BioCounts> = PerCpuArray::with_max_entries(1, 0);

    #[raw_tracepoint(tracepoint = "block_bio_queue")]
    pub fn bio_queue(ctx: RawTracePointContext) -> i32 {
        // A failed kernel read only means this bio is not counted.
        let _ = count_bio(&ctx);
        0
    }

    /// Reads a `T` at `base + offset` in kernel memory.
    #[inline(always)]
    fn read_at<T>(base: *const u8, offset: u32) -> Result<T, i32> {
        // SAFETY: bpf_probe_read_kernel validates the address itself and
        // returns an error instead of faulting; `wrapping_add` does no
        // dereference.
        unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) }
    }

    #[inline(always)]
    fn count_bio(ctx: &RawTracePointContext) -> Result<(), i32> {
        // block_bio_queue's TP_PROTO is (struct bio *bio).
        let bio: *const u8 = ctx.arg(0);
        // SAFETY: plain reads of globals that userspace sets before load;
        // volatile so the compiler does not fold the zero initialisers.
        let (off, target) = unsafe {
            (
                core::ptr::read_volatile(&OFFSETS),
                core::ptr::read_volatile(&TARGET_DEV),
            )
        };
        let bdev: *const u8 = read_at(bio, off.bio_bi_bdev)?;
        let dev: u32 = read_at(bdev, off.bdev_bd_dev)?;
        if dev != target {
            return Ok(());
        }
        let opf: u32 = read_at(bio, off.bio_bi_opf)?;
        let size: u32 = read_at(bio, off.bio_bi_size)?;
        let counts = BIO_COUNTS.get_ptr_mut(0).ok_or(-1)?;
        // SAFETY: the pointer comes from the map lookup, is non-null, and the
        // per-CPU slot is only touched by this CPU with preemption disabled.
        let counts = unsafe { &mut *counts };
        match opf & req_op::MASK {
            req_op::READ => counts.reads += 1,
            req_op::WRITE => counts.writes += 1,
            req_op::DISCARD => counts.discards += 1,
            _ => counts.other += 1,
        }
        counts.bytes += u64::from(size);
        Ok(())
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
}

/// On the host this crate only has to type-check (`cargo test --workspace`).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
