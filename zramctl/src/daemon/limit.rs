//! The writeback limit the daemon found, recorded so that it is put back
//! even after a daemon that was killed.

use tracing::warn;

use crate::sysfs::{Sysfs, WritebackLimit};

/// Writeback-limit state found at start, put back at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SavedLimit {
    pub(super) enable: bool,
    pub(super) pages: u64,
}

/// Where the daemon records, per device, the writeback limit it found
/// before it first opened it, removed once it is put back. A daemon that
/// was killed (SIGKILL, OOM, crash) cannot put it back; the next one finds
/// the record and restores the admin's limit at its shutdown instead of
/// taking the half-open one the killed daemon left for the admin's.
/// `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else
/// `/run/zramctl`; none for a simulated sysfs tree (tests set one with
/// [`DaemonCore::set_limit_record_dir`]).
pub(super) fn limit_record_path(sys: &Sysfs, dev: &str) -> Option<std::path::PathBuf> {
    if !sys.root().starts_with("/sys") {
        return None;
    }
    let dir = std::env::var_os("RUNTIME_DIRECTORY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/run/zramctl".into());
    Some(dir.join(format!("{dev}.writeback_limit")))
}

pub(super) fn read_limit_record(path: &std::path::Path) -> Option<SavedLimit> {
    let text = std::fs::read_to_string(path).ok()?;
    let (enable, pages) = text.trim().split_once(' ')?;
    Some(SavedLimit {
        enable: enable == "1",
        pages: pages.parse().ok()?,
    })
}

pub(super) fn write_limit_record(path: &std::path::Path, s: SavedLimit) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{} {}\n", u8::from(s.enable), s.pages))?;
    std::fs::rename(&tmp, path)
}

/// The limit to put back at shutdown, decided before the daemon first
/// opens the limit: the one a record of an earlier (killed) daemon names,
/// else the one `found` now, which is recorded.
pub(super) fn remember_limit(
    device: &str,
    record: Option<&std::path::Path>,
    found: Option<WritebackLimit>,
) -> SavedLimit {
    let found = match found {
        Some(WritebackLimit::On { pages_left }) => SavedLimit {
            enable: true,
            pages: pages_left,
        },
        _ => SavedLimit {
            enable: false,
            pages: 0,
        },
    };
    match record.and_then(read_limit_record) {
        Some(earlier) => {
            if earlier != found {
                warn!(
                    device = %device,
                    enable = earlier.enable,
                    pages = earlier.pages,
                    "a previous daemon stopped without restoring the writeback limit (killed?): the limit it found is put back at shutdown"
                );
            }
            earlier
        }
        None => {
            if let Some(p) = record
                && let Err(e) = write_limit_record(p, found)
            {
                warn!(
                    device = %device,
                    "cannot record the writeback limit in {}: {e} (if this daemon is killed, the next one cannot restore it)",
                    p.display()
                );
            }
            found
        }
    }
}
