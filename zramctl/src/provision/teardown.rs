//! What exists of a device's stack ([`observe`]), the plan that takes it
//! down ([`plan_teardown`], pure) and carrying it out.

use std::path::PathBuf;

use super::{
    Error, Progress,
    found::{DmDev, find_dm, loops_on_file},
    record::{Layer, Record, dm_name},
    tools::tool,
};
use crate::sysfs::{BackingDev, Device, Sysfs};

/// The provisioning state of one zram device, read from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub zram: String,
    pub zram_initialised: bool,
    pub zram_backing: Option<PathBuf>,
    pub record: Option<Record>,
    pub crypt: Option<DmDev>,
    pub integrity: Option<DmDev>,
    /// Loop devices of ours (`loop3`): attached to the recorded file or
    /// under our integrity device.
    pub loops: Vec<String>,
}

impl Observed {
    /// Whether any of our layers exists (or a record says one might).
    pub fn has_stack(&self) -> bool {
        self.record.is_some()
            || self.crypt.is_some()
            || self.integrity.is_some()
            || !self.loops.is_empty()
    }

    /// Whether zram's backing device is one of our layers.
    fn backing_is_ours(&self) -> bool {
        let Some(b) = &self.zram_backing else {
            return false;
        };
        let k = b.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut ours = self.loops.clone();
        ours.extend(self.crypt.iter().map(|d| d.kname.clone()));
        ours.extend(self.integrity.iter().map(|d| d.kname.clone()));
        let names = [Layer::Crypt, Layer::Integrity].map(|l| dm_name(&self.zram, l));
        k.is_some_and(|k| ours.contains(&k) || names.contains(&k))
    }
}

/// One teardown action, in the order they must run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `reset` the zram device (frees its memory and lets go of the backing device).
    ResetZram,
    /// `dmsetup remove` this name.
    RemoveDm(String),
    /// `losetup -d /dev/<kname>`.
    DetachLoop(String),
    DeleteFile(PathBuf),
    DropRecord,
}

/// The steps that take `o` down: the zram device first (when asked, or when
/// it still holds one of our layers, as a setup killed after `backing_dev`
/// leaves it), then dm-crypt, dm-integrity, the loop devices, the file (only
/// with `delete_file`) and the record.
pub fn plan_teardown(o: &Observed, reset_zram: bool, delete_file: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if reset_zram || o.backing_is_ours() {
        steps.push(Step::ResetZram);
    }
    if let Some(d) = &o.crypt {
        steps.push(Step::RemoveDm(d.name.clone()));
    }
    if let Some(d) = &o.integrity {
        steps.push(Step::RemoveDm(d.name.clone()));
    }
    for l in &o.loops {
        steps.push(Step::DetachLoop(l.clone()));
    }
    if let Some(r) = &o.record {
        if delete_file {
            steps.push(Step::DeleteFile(r.file.clone()));
        }
        steps.push(Step::DropRecord);
    }
    steps
}

/// Reads what exists of `dev`'s provisioned stack.
pub fn observe(sys: &Sysfs, dev: &Device) -> Result<Observed, Error> {
    let root = sys.root();
    let zram = dev.name().to_owned();
    let record = Record::load(&zram);
    let mut crypt = find_dm(root, &dm_name(&zram, Layer::Crypt));
    let mut integrity = find_dm(root, &dm_name(&zram, Layer::Integrity));
    // A dm device of that name that is not ours is left alone.
    for d in [&mut crypt, &mut integrity] {
        if d.as_ref().is_some_and(|x| !x.uuid.starts_with("ZRAMCTL-")) {
            *d = None;
        }
    }
    let mut loops = Vec::new();
    if let Some(r) = &record {
        loops.extend(loops_on_file(root, &r.file));
    }
    for d in crypt.iter().chain(integrity.iter()) {
        loops.extend(d.slaves.iter().filter(|s| s.starts_with("loop")).cloned());
    }
    loops.sort();
    loops.dedup();
    Ok(Observed {
        zram_initialised: dev.initstate()?,
        zram_backing: match dev.backing_dev()? {
            BackingDev::Path(p) => Some(p),
            _ => None,
        },
        zram,
        record,
        crypt,
        integrity,
        loops,
    })
}

/// Carries out a teardown plan; stops at the first failure (the record
/// stays, so the next run tries again).
pub fn run_teardown(
    dev: &Device,
    steps: &[Step],
    progress: &mut dyn FnMut(Progress),
) -> Result<(), Error> {
    for s in steps {
        match s {
            Step::ResetZram => {
                dev.reset()?;
            }
            Step::RemoveDm(name) => {
                tool("dmsetup", &["remove", "--retry", name], None)
                    .map_err(|e| e.step(format!("{}: removing {name}", dev.name())))?;
                progress(Progress::Removed(name.clone()));
            }
            Step::DetachLoop(k) => {
                tool("losetup", &["-d", &format!("/dev/{k}")], None)
                    .map_err(|e| e.step(format!("{}: detaching /dev/{k}", dev.name())))?;
                progress(Progress::Detached(k.clone()));
            }
            Step::DeleteFile(f) => match std::fs::remove_file(f) {
                Ok(()) => progress(Progress::Deleted(f.clone())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(format!(
                        "{}: deleting {}",
                        dev.name(),
                        f.display()
                    ))(e));
                }
            },
            Step::DropRecord => {
                let _ = std::fs::remove_file(Record::path(dev.name()));
            }
        }
    }
    Ok(())
}

/// Takes down whatever of `dev`'s stack exists. `reset_zram`: reset the
/// device even when it does not hold our stack (the `reset` command).
pub fn teardown(
    sys: &Sysfs,
    dev: &Device,
    reset_zram: bool,
    delete_file: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Observed, Error> {
    let o = observe(sys, dev)?;
    let steps = plan_teardown(&o, reset_zram, delete_file);
    run_teardown(dev, &steps, progress)?;
    Ok(o)
}
