//! The programs of the probes object, the tracepoints they attach to, and
//! how one is loaded and attached.

use std::path::Path;

use aya::{
    Ebpf,
    programs::{BtfTracePoint, Program, RawTracePoint},
};
use zramctl_common::{KernelOffsets, prog, rzram_tp};

use super::{
    Flavour, ProbeError,
    btf::{Btf, BtfError},
    error::{classify, failed},
};

/// The struct offsets the programs read, from the kernel's BTF. A kernel
/// lacking one of the fields gives an error naming the struct and member.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    Ok(KernelOffsets {
        bio_bi_bdev: btf.offset_of("bio", "bi_bdev")?,
        bio_bi_opf: btf.offset_of("bio", "bi_opf")?,
        bio_bi_sector: btf.offset_of("bio", "bi_iter.bi_sector")?,
        bio_bi_size: btf.offset_of("bio", "bi_iter.bi_size")?,
        bdev_bd_dev: btf.offset_of("block_device", "bd_dev")?,
        rq_part: btf.offset_of("request", "part")?,
        rq_cmd_flags: btf.offset_of("request", "cmd_flags")?,
        _pad: 0,
    })
}

/// A program of [`Probes`] and the tracepoint it is attached to.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProgSpec {
    pub(super) tp_btf: &'static str,
    pub(super) raw: &'static str,
    pub(super) tracepoint: &'static str,
}

impl ProgSpec {
    pub(super) fn name(&self, flavour: Flavour) -> &'static str {
        match flavour {
            Flavour::TpBtf => self.tp_btf,
            Flavour::RawTp => self.raw,
        }
    }
}

pub(super) const COST_FLOOR_PROG: ProgSpec = ProgSpec {
    tp_btf: prog::COST_FLOOR,
    raw: prog::COST_FLOOR_RAW,
    tracepoint: "block_bio_queue",
};
/// rzram's programs: raw tracepoints only, one name for both flavours.
pub(super) const fn rz_prog(name: &'static str, tracepoint: &'static str) -> ProgSpec {
    ProgSpec {
        tp_btf: name,
        raw: name,
        tracepoint,
    }
}
// Completion before submission (a page submitted unseen is only a count).
pub(super) const RZRAM_PROGS: [ProgSpec; 4] = [
    rz_prog(prog::RZ_SLOT_ACCESS, rzram_tp::SLOT_ACCESS),
    rz_prog(prog::RZ_WB_COMPLETE, rzram_tp::WB_COMPLETE),
    rz_prog(prog::RZ_WB_SUBMIT, rzram_tp::WB_SUBMIT),
    rz_prog(prog::RZ_BD_READ, rzram_tp::BD_READ),
];
pub(super) const ACCESS_PROGS: [ProgSpec; 1] = [ProgSpec {
    tp_btf: prog::SLOT_ACCESS,
    raw: prog::SLOT_ACCESS_RAW,
    tracepoint: "block_bio_queue",
}];
// Completion first: a start recorded before its completion program is
// attached would never be removed from the in-flight map.
pub(super) const BIO_LATENCY_PROGS: [ProgSpec; 2] = [
    ProgSpec {
        tp_btf: prog::BIO_DONE,
        raw: prog::BIO_DONE_RAW,
        tracepoint: "block_bio_complete",
    },
    ProgSpec {
        tp_btf: prog::BIO_START,
        raw: prog::BIO_START_RAW,
        tracepoint: "block_bio_queue",
    },
];
pub(super) const RQ_LATENCY_PROGS: [ProgSpec; 2] = [
    ProgSpec {
        tp_btf: prog::RQ_DONE,
        raw: prog::RQ_DONE_RAW,
        tracepoint: "block_rq_complete",
    },
    ProgSpec {
        tp_btf: prog::RQ_START,
        raw: prog::RQ_START_RAW,
        tracepoint: "block_rq_issue",
    },
];

/// Whether rzram.ko is loaded (its tracepoints exist).
pub(super) fn rzram_loaded() -> bool {
    Path::new("/sys/module/rzram").exists()
}

pub(super) fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProgSpec,
    flavour: Flavour,
    btf: Option<&aya::Btf>,
) -> Result<(), ProbeError> {
    let name = spec.name(flavour);
    let tp = spec.tracepoint;
    let p: &mut Program = ebpf.program_mut(name).ok_or_else(|| {
        failed(
            "finding the program",
            format!("{name} is not in the object"),
        )
    })?;
    match (flavour, btf) {
        (Flavour::TpBtf, Some(btf)) => {
            let p: &mut BtfTracePoint = p.try_into().map_err(|e| classify("program type", e))?;
            p.load(tp, btf)
                .map_err(|e| classify(&format!("loading {name} (tp_btf/{tp})"), e))?;
            p.attach()
                .map_err(|e| classify(&format!("attaching {name} to tp_btf/{tp}"), e))?;
        }
        (Flavour::TpBtf, None) => return Err(failed("loading tp_btf", "no kernel BTF")),
        (Flavour::RawTp, _) => {
            let p: &mut RawTracePoint = p.try_into().map_err(|e| classify("program type", e))?;
            p.load()
                .map_err(|e| classify(&format!("loading {name} (raw_tp/{tp})"), e))?;
            p.attach(tp)
                .map_err(|e| classify(&format!("attaching {name} to raw_tp/{tp}"), e))?;
        }
    }
    Ok(())
}
