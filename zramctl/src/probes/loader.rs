//! [`Probes::attach`]: loads the object with the watch table and the
//! kernel's offsets, attaches the programs the devices need (falling back
//! from tp_btf to raw tracepoints, and leaving rzram's out when they cannot
//! attach), and maps the slot array.

use std::os::fd::OwnedFd;

use aya::{Ebpf, EbpfLoader, maps::Map};
use serde::Serialize;
use zramctl_common::{GLOBAL_OFFSETS, GLOBAL_WATCH, WatchTable, map, watch};

use super::{
    LatencyKind, NotAttached, PROBES_OBJECT, ProbeError, WatchSpec,
    btf::Btf,
    error::{classify, failed},
    maps::SlotsArray,
    programs::{
        ACCESS_PROGS, BIO_LATENCY_PROGS, COST_FLOOR_PROG, ProgSpec, RQ_LATENCY_PROGS, RZRAM_PROGS,
        attach_one, kernel_offsets, rzram_loaded,
    },
    watch_table,
};

/// Which program type the probes are loaded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// BTF-enabled tracepoints: direct kernel loads, the cheaper kind.
    TpBtf,
    /// Raw tracepoints reading through `bpf_probe_read_kernel`.
    RawTp,
}

/// What [`Probes::attach`] should do besides watching the devices.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeOptions {
    /// Program type; `None` tries `tp_btf` and falls back to raw tracepoints.
    pub flavour: Option<Flavour>,
    /// Enable the kernel's BPF run-time stats while attached (for
    /// [`Probes::costs`]); costs a little on every BPF program of the
    /// system. Best effort: see [`Probes::stats_enabled`].
    pub stats: bool,
    /// Also attach `cost_floor`, a program that does nothing, to
    /// `block_bio_queue`: its cost per event, listed by [`Probes::costs`],
    /// is what any program there pays on this machine.
    pub cost_floor: bool,
}

/// Access tracking and latency probes on a set of devices. Detaches when
/// dropped.
pub struct Probes {
    // Reads the SLOTS map of `ebpf` in place (its fd stays open with it).
    pub(super) slots: Option<SlotsArray>,
    pub(super) ebpf: Ebpf,
    pub(super) devices: Vec<WatchSpec>,
    pub(super) table: WatchTable,
    pub(super) flavour: Flavour,
    pub(super) attached: Vec<ProgSpec>,
    /// Keeps the kernel's BPF run-time stats on, or why they are not.
    stats: Result<OwnedFd, NotAttached>,
    /// Whether rzram's programs are attached, or why not.
    rzram: Result<(), NotAttached>,
}

impl Probes {
    /// Loads and attaches what `devices` need: access tracking for devices
    /// with slots, bio or request latency for the others' kinds.
    pub fn attach(devices: &[WatchSpec], opts: ProbeOptions) -> Result<Self, ProbeError> {
        let (table, total_slots) = watch_table(devices)?;
        let rz_wanted = devices.iter().any(|d| d.rzram);
        // The same table without rzram: used when its programs cannot attach.
        let mut plain_table = table;
        for d in &mut plain_table.devs {
            d.flags &= !watch::RZRAM;
        }
        let offsets = kernel_offsets(&Btf::from_sys_fs()?)?;
        let mut wanted: Vec<ProgSpec> = Vec::new();
        if total_slots > 0 {
            wanted.extend(ACCESS_PROGS);
        }
        if devices.iter().any(|d| d.latency == Some(LatencyKind::Bio)) {
            wanted.extend(BIO_LATENCY_PROGS);
        }
        if devices
            .iter()
            .any(|d| d.latency == Some(LatencyKind::Request))
        {
            wanted.extend(RQ_LATENCY_PROGS);
        }
        if opts.cost_floor {
            wanted.push(COST_FLOOR_PROG);
        }
        // Best effort: enabling stats needs CAP_SYS_ADMIN, which the probes
        // themselves do not (CAP_BPF and CAP_PERFMON do).
        let stats = if opts.stats {
            aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| {
                NotAttached(
                    classify("enabling BPF run-time stats", e)
                        .to_string()
                        .replace("the kernel refused BPF", "the kernel refused"),
                )
            })
        } else {
            Err("not asked for".into())
        };
        // Loads the object and attaches `wanted`, then (with `rz`) rzram's
        // programs; an rzram failure comes back apart from the rest.
        type Loaded = (Ebpf, Result<(), ProbeError>);
        let load_with = |flavour, table: &WatchTable, rz: bool| -> Result<Loaded, ProbeError> {
            let wb_time_entries = if rz { total_slots.max(1) } else { 1 };
            let mut ebpf = EbpfLoader::new()
                .override_global(GLOBAL_OFFSETS, &offsets, true)
                .override_global(GLOBAL_WATCH, table, true)
                .map_max_entries(map::SLOTS, total_slots.max(1))
                .map_max_entries(map::RZ_WB_TIME, wb_time_entries)
                .load(PROBES_OBJECT)
                .map_err(|e| classify("loading the object", e))?;
            let btf = match flavour {
                Flavour::TpBtf => Some(
                    aya::Btf::from_sys_fs()
                        .map_err(|e| classify("reading kernel BTF for tp_btf", e))?,
                ),
                Flavour::RawTp => None,
            };
            for spec in &wanted {
                attach_one(&mut ebpf, spec, flavour, btf.as_ref())?;
            }
            let rz_result = if rz {
                RZRAM_PROGS
                    .iter()
                    .try_for_each(|spec| attach_one(&mut ebpf, spec, Flavour::RawTp, None))
            } else {
                Ok(())
            };
            Ok((ebpf, rz_result))
        };
        let load = |flavour| -> Result<(Ebpf, Result<(), NotAttached>), ProbeError> {
            if !rz_wanted {
                let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                return Ok((ebpf, Err("no rzram device watched".into())));
            }
            if !rzram_loaded() {
                let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                return Ok((ebpf, Err("the rzram module is not loaded".into())));
            }
            match load_with(flavour, &table, true)? {
                (ebpf, Ok(())) => Ok((ebpf, Ok(()))),
                (ebpf, Err(e)) => {
                    // Detach everything and start over without rzram, so
                    // block_bio_queue keeps the rzram devices' slots.
                    drop(ebpf);
                    let (ebpf, _) = load_with(flavour, &plain_table, false)?;
                    Ok((ebpf, Err(e.to_string().into())))
                }
            }
        };
        let ((ebpf, rzram), flavour) = match opts.flavour {
            Some(f) => (load(f)?, f),
            None => match load(Flavour::TpBtf) {
                Ok(e) => (e, Flavour::TpBtf),
                Err(btf_err) => match load(Flavour::RawTp) {
                    Ok(e) => (e, Flavour::RawTp),
                    Err(ProbeError::Failed { what, detail }) => {
                        return Err(ProbeError::Failed {
                            what,
                            detail: format!("{detail} (tp_btf failed too: {btf_err})"),
                        });
                    }
                    // Permission problems look the same both ways: report the
                    // raw tracepoint attempt, which needs less of the kernel.
                    Err(e) => return Err(e),
                },
            },
        };
        let slots = if total_slots > 0 {
            let data = match ebpf.map(map::SLOTS) {
                Some(Map::Array(data)) => data,
                _ => {
                    return Err(failed(
                        "finding the map",
                        format!("no array {}", map::SLOTS),
                    ));
                }
            };
            Some(SlotsArray::new(data, total_slots))
        } else {
            None
        };
        let table = if rzram.is_ok() {
            wanted.extend(RZRAM_PROGS);
            table
        } else {
            plain_table
        };
        Ok(Probes {
            slots,
            ebpf,
            devices: devices.to_vec(),
            table,
            flavour,
            attached: wanted,
            stats,
            rzram,
        })
    }

    /// The program type in use.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// `Ok` if rzram's programs are attached (rzram devices get
    /// [`DeviceSnapshot::rzram`]), else why not: no rzram device watched,
    /// the module not loaded, or the kernel's error. Not attaching them is
    /// not an error of [`Self::attach`].
    pub fn rzram_status(&self) -> Result<(), &str> {
        self.rzram.as_ref().map(|_| ()).map_err(|e| e.0.as_str())
    }

    /// The watched devices, in watch-index order.
    pub fn devices(&self) -> &[WatchSpec] {
        &self.devices
    }

    /// `Ok` if these probes keep the kernel's BPF run-time stats enabled,
    /// else why not (then [`Self::costs`] only grows while
    /// `sysctl kernel.bpf_stats_enabled=1`).
    pub fn stats_enabled(&self) -> Result<(), &str> {
        self.stats.as_ref().map(|_| ()).map_err(|e| e.0.as_str())
    }
}
