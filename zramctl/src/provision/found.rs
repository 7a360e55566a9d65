//! What the kernel shows of loop and device-mapper devices under the sysfs
//! root: found by name and backing file, never remembered.

use std::path::Path;

/// A device-mapper device as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmDev {
    pub name: String,
    /// `dm-3`.
    pub kname: String,
    pub uuid: String,
    /// Kernel names of the devices under it (`loop0`, `dm-2`).
    pub slaves: Vec<String>,
}

pub(super) fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn list_dir(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The dm device called `name`, from `<sys>/block/dm-*/dm/name`.
pub fn find_dm(sys_root: &Path, name: &str) -> Option<DmDev> {
    let block = sys_root.join("block");
    list_dir(&block)
        .into_iter()
        .filter(|k| k.starts_with("dm-"))
        .find(|k| read_trim(&block.join(k).join("dm/name")).as_deref() == Some(name))
        .map(|k| DmDev {
            name: name.to_owned(),
            uuid: read_trim(&block.join(&k).join("dm/uuid")).unwrap_or_default(),
            slaves: list_dir(&block.join(&k).join("slaves")),
            kname: k,
        })
}

/// Loop devices whose backing file is `file`.
pub fn loops_on_file(sys_root: &Path, file: &Path) -> Vec<String> {
    let want = file.canonicalize().unwrap_or_else(|_| file.to_owned());
    let block = sys_root.join("block");
    let mut out: Vec<String> = list_dir(&block)
        .into_iter()
        .filter(|k| k.starts_with("loop"))
        .filter(|k| {
            read_trim(&block.join(k).join("loop/backing_file")).is_some_and(|b| {
                let b = b.strip_suffix(" (deleted)").unwrap_or(&b);
                Path::new(b) == want || Path::new(b) == file
            })
        })
        .collect();
    out.sort();
    out
}
