//! The daemon's TOML configuration: parsing and validation.
//!
//! Every error names the file, the line and the field (`daemon.interval_secs`)
//! and says what is wrong, whether TOML itself refused it (syntax, unknown
//! field, wrong type) or a value is out of range.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

mod raw;
mod sections;

use serde::Deserialize;

use self::{
    raw::{Ctx, RawConfig, line_of},
    sections::{policy, recompress, setup},
};
use crate::{ops::setup::DeviceSpec, policy::PolicyConfig, sysfs::normalize_device_name};

/// Default path of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/zramctl/zramctl.toml";
/// Default metrics address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9466";

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {io}")]
    Read { path: PathBuf, io: std::io::Error },
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Whole { path: PathBuf, message: String },
}

/// Whether to use the eBPF probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeMode {
    /// Try them; fall back to sysfs-only policy if they cannot attach.
    Auto,
    /// Never load them.
    Off,
}

/// Recompression of idle pages before writeback (`recompress_*` fields).
#[derive(Clone, Debug, PartialEq)]
pub struct RecompressConfig {
    /// Pages idle at least this long are recompressed.
    pub idle_age_secs: u64,
    /// The secondary algorithm (must be the device's `recomp_algorithm`).
    pub algorithm: String,
    /// Only pages whose compressed size is at least this (bytes, < 3072).
    pub threshold: u64,
    /// At most one recompression per this many seconds.
    pub interval_secs: f64,
    pub max_pages: Option<u64>,
}

/// One managed device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    pub name: String,
    pub policy: PolicyConfig,
    /// `None`: no recompression (`recompress_idle_age_secs` not set).
    pub recompress: Option<RecompressConfig>,
    /// How the daemon sets the device up at start if it is unused
    /// (`disksize` and a `[device.backing]` section, as `zramctl setup`);
    /// `None`: the device is set up by someone else.
    pub setup: Option<DeviceSpec>,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub interval_secs: f64,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub probes: ProbeMode,
    pub psi_path: PathBuf,
    pub devices: Vec<DeviceConfig>,
}

/// Describes a TOML error as file:line: field: message.
fn toml_error(path: &Path, src: &str, e: &toml::de::Error) -> ConfigError {
    let Some(span) = e.span() else {
        return ConfigError::Whole {
            path: path.to_owned(),
            message: e.message().to_owned(),
        };
    };
    let line = line_of(src, span.start);
    // The field: the key on that line, under the nearest section header.
    let text = src.lines().nth(line - 1).unwrap_or("");
    let section = src
        .lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            (t.starts_with('[') && t.ends_with(']'))
                .then(|| t.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .last();
    // An empty key (`= 1`) names no field: fall back to the section.
    let key = text
        .split_once('=')
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let field = match (section, key) {
        (Some(s), Some(k)) => format!("{s}.{k}"),
        (None, Some(k)) => k,
        (Some(s), None) => s,
        (None, None) => "(top level)".into(),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        field,
        message: e.message().trim().to_owned(),
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|io| ConfigError::Read {
            path: path.to_owned(),
            io,
        })?;
        Self::parse(path, &src)
    }

    /// Validates `src` (named `path` in errors).
    pub fn parse(path: &Path, src: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(src).map_err(|e| toml_error(path, src, &e))?;
        let mut cx = Ctx {
            path,
            src,
            section: "daemon".into(),
        };
        let d = &raw.daemon;
        let interval_secs = cx.secs(&d.interval_secs, "interval_secs", 10.0, 0.05, 3600.0)?;
        let metrics_listen = match &d.metrics_listen {
            None => Some(DEFAULT_LISTEN.parse().expect("valid default address")),
            Some(s) if s.get_ref().is_empty() || s.get_ref() == "off" => None,
            Some(s) => {
                let addr: SocketAddr = s.get_ref().parse().map_err(|_| {
                    cx.err(
                        s.span(),
                        "metrics_listen",
                        format!("{:?} is not an address:port", s.get_ref()),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(cx.err(
                        s.span(),
                        "metrics_listen",
                        format!("{addr} is not a loopback address: metrics are served on 127.0.0.1 or ::1 only"),
                    ));
                }
                Some(addr)
            }
        };
        let probes = d.probes.as_ref().map_or(ProbeMode::Auto, |p| *p.get_ref());
        let psi_path = d.psi_path.as_ref().map_or_else(
            || PathBuf::from("/proc/pressure/memory"),
            |p| PathBuf::from(p.get_ref()),
        );
        cx.section = "policy".into();
        let base = policy(&cx, &raw.policy, &PolicyConfig::default())?;
        let base_recompress = recompress(&cx, &raw.policy, None)?;
        if raw.device.is_empty() {
            return Err(ConfigError::Whole {
                path: path.to_owned(),
                message:
                    "no [[device]] section: name at least one device to manage (name = \"zram0\")"
                        .into(),
            });
        }
        let mut devices: Vec<DeviceConfig> = Vec::new();
        for (i, dev) in raw.device.iter().enumerate() {
            cx.section = format!("device[{i}]");
            let d = dev.get_ref();
            let name = normalize_device_name(d.name.get_ref())
                .map_err(|e| cx.err(d.name.span(), "name", e.to_string()))?;
            if devices.iter().any(|x| x.name == name) {
                return Err(cx.err(d.name.span(), "name", format!("{name} is listed twice")));
            }
            let policy = policy(&cx, &d.policy(), &base)?;
            let recompress = recompress(&cx, &d.policy(), base_recompress.as_ref())?;
            let setup = setup(&cx, d)?;
            devices.push(DeviceConfig {
                name,
                policy,
                recompress,
                setup,
            });
        }
        Ok(Config {
            interval_secs,
            metrics_listen,
            probes,
            psi_path,
            devices,
        })
    }
}

#[cfg(test)]
mod tests;
