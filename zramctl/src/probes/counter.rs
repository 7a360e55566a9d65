//! [`BioCounter`]: the smallest use of the probes object, one counter of
//! bios queued to one device.

use aya::{Ebpf, EbpfLoader, maps::PerCpuArray, programs::RawTracePoint};
use zramctl_common::{
    BioCounts, GLOBAL_OFFSETS, GLOBAL_TARGET_DEV, MAP_BIO_COUNTS, PROG_BIO_QUEUE, kernel_dev,
};

use super::{PROBES_OBJECT, ProbeError, btf::Btf, error::classify, programs::kernel_offsets};

/// Counts bios queued to one block device (raw tracepoint `block_bio_queue`).
/// Detaches when dropped.
pub struct BioCounter {
    ebpf: Ebpf,
}

impl BioCounter {
    /// Attaches to the device with numbers `major:minor` (as in `/sys/block/X/dev`).
    pub fn attach(major: u32, minor: u32) -> Result<Self, ProbeError> {
        let offsets = kernel_offsets(&Btf::from_sys_fs()?)?;
        let dev = kernel_dev(major, minor);
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_TARGET_DEV, &dev, true)
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .load(PROBES_OBJECT)
            .map_err(|e| classify("loading the object", e))?;
        let prog: &mut RawTracePoint = ebpf
            .program_mut(PROG_BIO_QUEUE)
            .ok_or_else(|| ProbeError::Failed {
                what: "finding the program".into(),
                detail: format!("{PROG_BIO_QUEUE} is not in the object"),
            })?
            .try_into()
            .map_err(|e| classify("program type", e))?;
        prog.load()
            .map_err(|e| classify(&format!("loading {PROG_BIO_QUEUE}"), e))?;
        prog.attach("block_bio_queue")
            .map_err(|e| classify("attaching to block_bio_queue", e))?;
        Ok(BioCounter { ebpf })
    }

    /// Counts so far, summed over CPUs.
    pub fn counts(&self) -> Result<BioCounts, ProbeError> {
        let map = self
            .ebpf
            .map(MAP_BIO_COUNTS)
            .ok_or_else(|| ProbeError::Failed {
                what: "finding the map".into(),
                detail: format!("{MAP_BIO_COUNTS} is not in the object"),
            })?;
        let array: PerCpuArray<_, BioCounts> =
            PerCpuArray::try_from(map).map_err(|e| classify("map type", e))?;
        let per_cpu = array
            .get(&0, 0)
            .map_err(|e| classify("reading the map", e))?;
        let mut total = BioCounts::default();
        for c in per_cpu.iter() {
            total.accumulate(c);
        }
        Ok(total)
    }
}
