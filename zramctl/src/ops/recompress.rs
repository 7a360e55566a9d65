//! Recompression with a secondary algorithm, with its measured outcome.

use std::time::Instant;

use serde::Serialize;

use super::{Error, Result};
use crate::sysfs::{self, Device, Recompress};

/// What one `recompress` achieved, from `mm_stat` before and after.
#[derive(Debug, Clone, Serialize)]
pub struct RecompressOutcome {
    pub device: String,
    pub request: String,
    pub compr_before: u64,
    pub compr_after: u64,
    /// compr_data_size drop (0 if it grew meanwhile).
    pub saved_bytes: u64,
    pub mem_used_before: u64,
    pub mem_used_after: u64,
    pub huge_before: Option<u64>,
    pub huge_after: Option<u64>,
    /// Slots now recompressed, from debugfs block_state (upstream only).
    pub recompressed_slots: Option<u64>,
    pub elapsed_secs: f64,
}

/// Why `dev` has no recompression, in the kernel's terms.
pub fn unsupported_hint(dev: &Device) -> &'static str {
    if dev.name().starts_with("rzram") {
        "this rzram module has no recompression (recomp_algorithm/recompress attributes)"
    } else {
        "this kernel's zram was built without CONFIG_ZRAM_MULTI_COMP"
    }
}

/// Runs one recompression on `dev` and measures it. The request's
/// algorithm or priority must be one configured on the device.
pub fn run(dev: &Device, req: &Recompress) -> Result<RecompressOutcome> {
    if !dev.has_recompression() {
        return Err(sysfs::Error::Unsupported {
            device: dev.name().to_owned(),
            attr: "recompress",
            hint: unsupported_hint(dev),
        }
        .into());
    }
    if !dev.initstate()? {
        return Err(Error::NotInitialised(dev.name().to_owned()));
    }
    let configured = dev.recomp_algorithms()?.unwrap_or_default();
    if configured.is_empty() {
        return Err(Error::NoRecompAlgorithm(dev.name().to_owned()));
    }
    if let Some(algo) = &req.algo
        && !configured.iter().any(|r| &r.algorithms.current == algo)
    {
        return Err(Error::invalid(
            dev.name(),
            format!(
                "{algo} is not a configured recompression algorithm (configured: {})",
                configured
                    .iter()
                    .map(|r| format!("{}={}", r.priority, r.algorithms.current))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(p) = req.priority
        && !configured.iter().any(|r| r.priority == p)
    {
        return Err(Error::invalid(
            dev.name(),
            format!("no recompression algorithm at priority {p}"),
        ));
    }
    let before = dev.mm_stat()?;
    let start = Instant::now();
    dev.recompress(req)?;
    let elapsed = start.elapsed();
    let after = dev.mm_stat()?;
    Ok(RecompressOutcome {
        device: dev.name().to_owned(),
        request: req.sysfs_value(),
        compr_before: before.compr_data_size,
        compr_after: after.compr_data_size,
        saved_bytes: before.compr_data_size.saturating_sub(after.compr_data_size),
        mem_used_before: before.mem_used_total,
        mem_used_after: after.mem_used_total,
        huge_before: before.huge_pages,
        huge_after: after.huge_pages,
        recompressed_slots: dev.recompressed_slots(),
        elapsed_secs: elapsed.as_secs_f64(),
    })
}
