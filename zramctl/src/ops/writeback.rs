//! Writeback with its measured outcome, and the writeback limit.

use std::time::{Duration, Instant};

use super::{Error, Result};
use crate::{
    platform::page_size,
    sysfs::{self, Device, WritebackMode},
};

/// What one writeback achieved, from `bd_stat` before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritebackOutcome {
    pub pages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// The modes for page index ranges (inclusive), checked against the
/// device: it must be initialised and every index inside its disk.
pub fn page_modes(dev: &Device, ranges: &[(u64, u64)]) -> Result<Vec<WritebackMode>> {
    if !dev.initstate()? {
        return Err(Error::NotInitialised(dev.name().to_owned()));
    }
    let disk_pages = dev.disksize()? / page_size();
    ranges
        .iter()
        .map(|&(first, last)| {
            if last >= disk_pages {
                return Err(Error::invalid(
                    dev.name(),
                    format!(
                        "page {last} is out of range: the device has {disk_pages} pages (0-{})",
                        disk_pages.saturating_sub(1)
                    ),
                ));
            }
            Ok(WritebackMode::Pages { first, last })
        })
        .collect()
}

/// Runs writeback of `modes` on `dev` and measures it.
pub fn run(dev: &Device, modes: &[WritebackMode]) -> Result<WritebackOutcome> {
    let before = dev.bd_stat()?;
    let start = Instant::now();
    dev.writeback(modes)?;
    let elapsed = start.elapsed();
    let after = dev.bd_stat()?;
    let pages = match (before, after) {
        (Some(b), Some(a)) => a.bd_writes.saturating_sub(b.bd_writes),
        _ => {
            return Err(Error::invalid(
                dev.name(),
                "bd_stat disappeared during writeback",
            ));
        }
    };
    Ok(WritebackOutcome {
        pages,
        bytes: pages * page_size(),
        elapsed,
    })
}

/// Turns the writeback limit on at `pages`: the limit first, then the
/// switch, so it is never on at a stale value.
pub fn set_limit(dev: &Device, pages: u64) -> sysfs::Result<()> {
    dev.set_writeback_limit(pages)?;
    dev.set_writeback_limit_enable(true)
}

/// Puts a writeback limit back as it was found: the value first, then the
/// switch (never enabled with a stale limit).
pub fn restore_limit(dev: &Device, enable: bool, pages: u64) -> sysfs::Result<()> {
    dev.set_writeback_limit(pages)?;
    dev.set_writeback_limit_enable(enable)
}
