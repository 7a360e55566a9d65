//! Names and the record: how a provisioned stack is found again from the
//! kernel and one file, never from memory.

use std::path::PathBuf;

use super::Error;

/// The layers zramctl stacks with device-mapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Integrity,
    Crypt,
}

impl Layer {
    fn suffix(self) -> &'static str {
        match self {
            Layer::Integrity => "integrity",
            Layer::Crypt => "crypt",
        }
    }
}

/// `zramctl-zram0-crypt`: fixed per zram device and layer, so a crashed
/// setup's devices are found by the next run.
pub fn dm_name(zram: &str, layer: Layer) -> String {
    format!("zramctl-{zram}-{}", layer.suffix())
}

/// `ZRAMCTL-zram0-crypt`: the dm uuid, which says the device is ours.
pub fn dm_uuid(zram: &str, layer: Layer) -> String {
    format!("ZRAMCTL-{zram}-{}", layer.suffix())
}

/// Where records live (`ZRAMCTL_STATE_DIR` overrides; tmpfs, so nothing
/// survives a reboot, like the loop and dm devices themselves).
pub fn state_dir() -> PathBuf {
    std::env::var_os("ZRAMCTL_STATE_DIR")
        .map_or_else(|| PathBuf::from("/run/zramctl"), PathBuf::from)
}

/// What a setup left behind to be found again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub file: PathBuf,
    pub encrypt: bool,
}

impl Record {
    pub(super) fn path(zram: &str) -> PathBuf {
        state_dir().join(format!("{zram}.backing"))
    }

    pub(super) fn render(&self) -> String {
        format!(
            "# zramctl: backing file provisioned for this zram device\nfile={}\nencrypt={}\n",
            self.file.display(),
            u8::from(self.encrypt)
        )
    }

    pub(super) fn parse(s: &str) -> Option<Record> {
        let mut file = None;
        let mut encrypt = false;
        for l in s.lines() {
            if let Some(f) = l.strip_prefix("file=") {
                file = Some(PathBuf::from(f));
            } else if let Some(e) = l.strip_prefix("encrypt=") {
                encrypt = e.trim() == "1";
            }
        }
        Some(Record {
            file: file?,
            encrypt,
        })
    }

    pub fn load(zram: &str) -> Option<Record> {
        Record::parse(&std::fs::read_to_string(Record::path(zram)).ok()?)
    }

    pub(super) fn store(&self, zram: &str) -> Result<(), Error> {
        let p = Record::path(zram);
        std::fs::create_dir_all(state_dir())
            .map_err(Error::io(format!("creating {}", state_dir().display())))?;
        std::fs::write(&p, self.render()).map_err(Error::io(format!("writing {}", p.display())))
    }
}
