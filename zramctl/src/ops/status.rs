//! [`DeviceStatus`]: everything `status` shows about one device.

use serde::Serialize;

use crate::{
    platform::page_size,
    sysfs::{self, BackingDev, BdStat, Device, IoStat, MmStat, WritebackLimit},
};

/// Everything `status` shows about one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    pub initialized: bool,
    pub disksize: u64,
    pub algorithm: String,
    pub algorithms_available: Vec<String>,
    pub mm_stat: MmStat,
    pub io_stat: IoStat,
    /// orig_data_size / compr_data_size, absent when empty.
    pub ratio: Option<f64>,
    pub backing_dev: BackingDev,
    /// Absent without CONFIG_ZRAM_WRITEBACK.
    pub bd_stat: Option<BdStat>,
    pub writeback_limit: WritebackLimit,
    pub writeback_batch_size: Option<u64>,
    pub page_size: u64,
}

impl DeviceStatus {
    pub fn read(dev: &Device) -> sysfs::Result<Self> {
        let mm = dev.mm_stat()?;
        let algos = dev.comp_algorithm()?;
        Ok(DeviceStatus {
            name: dev.name().to_owned(),
            initialized: dev.initstate()?,
            disksize: dev.disksize()?,
            algorithm: algos.current,
            algorithms_available: algos.available,
            ratio: mm.ratio(),
            mm_stat: mm,
            io_stat: dev.io_stat()?,
            backing_dev: dev.backing_dev()?,
            bd_stat: dev.bd_stat()?,
            writeback_limit: dev.writeback_limit()?,
            writeback_batch_size: dev.writeback_batch_size()?,
            page_size: page_size(),
        })
    }
}
