//! Loader for zramctl's eBPF programs (built from `zramctl-ebpf` by
//! `build.rs` and embedded in the binary).
//!
//! Field offsets come from the running kernel's BTF ([`crate::btf`]) and are
//! handed to the programs as globals, so one object runs on any kernel with
//! BTF. When the kernel refuses BPF the error says what is missing, and
//! callers can fall back to sysfs-only operation.

use aya::{Ebpf, EbpfLoader, maps::PerCpuArray, programs::RawTracePoint};
use zramctl_common::{
    BioCounts, GLOBAL_OFFSETS, GLOBAL_TARGET_DEV, KernelOffsets, MAP_BIO_COUNTS, PROG_BIO_QUEUE,
    kernel_dev,
};

use crate::btf::{Btf, BtfError};

/// The eBPF object (an ELF file for bpfel-unknown-none).
pub static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/zramctl-probes"));

/// Why the probes could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("kernel BTF is needed for eBPF: {0}")]
    Btf(#[from] BtfError),
    #[error(
        "the kernel refused BPF ({what}): run as root (or with CAP_BPF and CAP_PERFMON); \
         kernel lockdown or kernel.unprivileged_bpf_disabled can also forbid it: {detail}"
    )]
    Refused { what: String, detail: String },
    #[error("eBPF {what} failed: {detail}")]
    Failed { what: String, detail: String },
}

fn is_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn classify(what: &str, e: impl std::error::Error + 'static) -> ProbeError {
    let detail = {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    };
    if is_permission(&e) {
        ProbeError::Refused {
            what: what.into(),
            detail,
        }
    } else {
        ProbeError::Failed {
            what: what.into(),
            detail,
        }
    }
}

/// The struct offsets the programs read, from the kernel's BTF.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    Ok(KernelOffsets {
        bio_bi_bdev: btf.offset_of("bio", "bi_bdev")?,
        bio_bi_opf: btf.offset_of("bio", "bi_opf")?,
        bio_bi_sector: btf.offset_of("bio", "bi_iter.bi_sector")?,
        bio_bi_size: btf.offset_of("bio", "bi_iter.bi_size")?,
        bdev_bd_dev: btf.offset_of("block_device", "bd_dev")?,
        _pad: 0,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_object_has_program_map_and_globals() {
        let obj = aya_obj::Object::parse(PROBES_OBJECT).expect("embedded object parses");
        let prog = obj
            .programs
            .get(PROG_BIO_QUEUE)
            .expect("bio_queue program present");
        assert!(
            matches!(prog.section, aya_obj::ProgramSection::RawTracePoint),
            "bio_queue is a raw tracepoint: {:?}",
            prog.section
        );
        assert!(
            obj.maps.contains_key(MAP_BIO_COUNTS),
            "maps: {:?}",
            obj.maps.keys().collect::<Vec<_>>()
        );
        use object::{Object as _, ObjectSymbol as _};
        let elf = object::File::parse(PROBES_OBJECT).expect("ELF");
        for global in [GLOBAL_TARGET_DEV, GLOBAL_OFFSETS] {
            assert!(
                elf.symbols().any(|s| s.name() == Ok(global)),
                "global {global} missing"
            );
        }
    }
}
