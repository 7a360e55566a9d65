//! The daemon's TOML configuration: parsing and validation.
//!
//! Every error names the file, the line and the field (`daemon.interval_secs`)
//! and says what is wrong, whether TOML itself refused it (syntax, unknown
//! field, wrong type) or a value is out of range.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    policy::{BatchConfig, PolicyConfig, RefaultConfig},
    size::ByteSize,
    sysfs::normalize_device_name,
};

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

/// How the daemon sets an unused device up at start (`disksize` and a
/// `[device.backing]` section; see `zramctl setup`).
#[derive(Clone, Debug, PartialEq)]
pub struct SetupConfig {
    pub disksize: u64,
    pub algorithm: Option<String>,
    pub recomp_algorithms: Vec<String>,
    pub backing: Option<crate::provision::BackingSpec>,
}

/// One managed device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceConfig {
    pub name: String,
    pub policy: PolicyConfig,
    /// `None`: no recompression (`recompress_idle_age_secs` not set).
    pub recompress: Option<RecompressConfig>,
    /// `None`: the device is set up by someone else.
    pub setup: Option<SetupConfig>,
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

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    interval_secs: S<f64>,
    metrics_listen: S<String>,
    probes: S<ProbeMode>,
    psi_path: S<String>,
}

/// `[policy]` and `[[device]]` take the same policy fields (serde's flatten
/// would lose the spans and the unknown-field check, so a macro lists them once).
macro_rules! raw_policy {
    ($($f:ident: $t:ty,)*) => {
        #[derive(Deserialize, Default, Clone)]
        #[serde(deny_unknown_fields)]
        struct RawPolicy {
            $($f: S<$t>,)*
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawDevice {
            name: Spanned<String>,
            disksize: S<SizeValue>,
            algorithm: S<String>,
            recomp_algorithm: S<Vec<String>>,
            backing: S<RawBacking>,
            $($f: S<$t>,)*
        }

        impl RawDevice {
            fn policy(&self) -> RawPolicy {
                RawPolicy {
                    $($f: self.$f.clone(),)*
                }
            }
        }
    };
}

raw_policy! {
    budget_per_day: SizeValue,
    budget_burst: SizeValue,
    max_pages_per_round: u64,
    period_secs: f64,
    min_interval_secs: f64,
    psi_some_avg10: f64,
    utilisation: f64,
    backoff_initial_secs: f64,
    backoff_max_secs: f64,
    refault_window_secs: f64,
    idle_age_initial_secs: u64,
    idle_age_floor_secs: u64,
    idle_age_ceiling_secs: u64,
    refault_high: f64,
    refault_low: f64,
    batch_min: u64,
    batch_max: u64,
    batch_initial: u64,
    target_p99_ms: f64,
    batch_band: f64,
    recompress_idle_age_secs: u64,
    recompress_algorithm: String,
    recompress_threshold: u64,
    recompress_interval_secs: f64,
    recompress_max_pages: u64,
}

/// `[device.backing]`: a backing file zramctl provisions.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawBacking {
    file: Spanned<String>,
    size: S<SizeValue>,
    encrypt: S<bool>,
}

/// A size: `"1G"` or a number of bytes.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

struct Ctx<'a> {
    path: &'a Path,
    src: &'a str,
    section: String,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: line_of(self.src, span.start),
            field: format!("{}.{field}", self.section),
            message: message.into(),
        }
    }

    fn secs(
        &self,
        v: &S<f64>,
        field: &str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let x = *v.get_ref();
        if !x.is_finite() || x < min || x > max {
            return Err(self.err(
                v.span(),
                field,
                format!("{x} is out of range: must be between {min} and {max}"),
            ));
        }
        Ok(x)
    }

    fn ns(
        &self,
        v: &S<f64>,
        field: &str,
        default_s: f64,
        min: f64,
        max: f64,
    ) -> Result<u64, ConfigError> {
        Ok((self.secs(v, field, default_s, min, max)? * 1e9) as u64)
    }

    fn int(
        &self,
        v: &S<u64>,
        field: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let x = *v.get_ref();
        if x < min || x > max {
            return Err(self.err(
                v.span(),
                field,
                format!("{x} is out of range: must be between {min} and {max}"),
            ));
        }
        Ok(x)
    }

    fn size(&self, v: &S<SizeValue>, field: &str, default: u64) -> Result<u64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match v.get_ref() {
            SizeValue::Bytes(n) => Ok(*n),
            SizeValue::Text(t) => t
                .parse::<ByteSize>()
                .map(|b| b.0)
                .map_err(|e| self.err(v.span(), field, format!("{t:?} is not a size: {e}"))),
        }
    }
}

/// Fills `base` with what `raw` sets; fields it leaves out keep `base`'s.
fn policy(cx: &Ctx<'_>, raw: &RawPolicy, base: &PolicyConfig) -> Result<PolicyConfig, ConfigError> {
    let b = base;
    let max_s = 30.0 * 86_400.0;
    let batch = BatchConfig {
        min: cx.int(&raw.batch_min, "batch_min", b.batch.min, 1, 1 << 20)?,
        max: cx.int(&raw.batch_max, "batch_max", b.batch.max, 1, 1 << 20)?,
        initial: cx.int(
            &raw.batch_initial,
            "batch_initial",
            b.batch.initial,
            1,
            1 << 20,
        )?,
        target_p99_ns: cx.secs(
            &raw.target_p99_ms,
            "target_p99_ms",
            b.batch.target_p99_ns / 1e6,
            0.001,
            60_000.0,
        )? * 1e6,
        band: cx.secs(&raw.batch_band, "batch_band", b.batch.band, 0.0, 0.9)?,
        ..b.batch.clone()
    };
    if batch.min > batch.max {
        let span = raw
            .batch_min
            .as_ref()
            .or(raw.batch_max.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        return Err(cx.err(
            span,
            "batch_min",
            format!(
                "batch_min {} is larger than batch_max {}",
                batch.min, batch.max
            ),
        ));
    }
    let refault = RefaultConfig {
        initial_secs: cx.int(
            &raw.idle_age_initial_secs,
            "idle_age_initial_secs",
            b.refault.initial_secs,
            1,
            max_s as u64,
        )?,
        floor_secs: cx.int(
            &raw.idle_age_floor_secs,
            "idle_age_floor_secs",
            b.refault.floor_secs,
            1,
            max_s as u64,
        )?,
        ceiling_secs: cx.int(
            &raw.idle_age_ceiling_secs,
            "idle_age_ceiling_secs",
            b.refault.ceiling_secs,
            1,
            max_s as u64,
        )?,
        high: cx.secs(&raw.refault_high, "refault_high", b.refault.high, 0.0, 1e6)?,
        low: cx.secs(&raw.refault_low, "refault_low", b.refault.low, 0.0, 1e6)?,
        ..b.refault.clone()
    };
    if refault.floor_secs > refault.ceiling_secs {
        let span = raw
            .idle_age_floor_secs
            .as_ref()
            .or(raw.idle_age_ceiling_secs.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        return Err(cx.err(
            span,
            "idle_age_floor_secs",
            format!(
                "floor {} s is above the ceiling {} s",
                refault.floor_secs, refault.ceiling_secs
            ),
        ));
    }
    if refault.low > refault.high {
        let span = raw
            .refault_low
            .as_ref()
            .or(raw.refault_high.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        return Err(cx.err(
            span,
            "refault_low",
            format!(
                "refault_low {} is above refault_high {}",
                refault.low, refault.high
            ),
        ));
    }
    let cfg = PolicyConfig {
        budget_bytes_per_day: cx.size(
            &raw.budget_per_day,
            "budget_per_day",
            b.budget_bytes_per_day,
        )?,
        budget_burst_bytes: cx.size(&raw.budget_burst, "budget_burst", b.budget_burst_bytes)?,
        max_pages_per_round: cx.int(
            &raw.max_pages_per_round,
            "max_pages_per_round",
            b.max_pages_per_round,
            1,
            1 << 32,
        )?,
        period_ns: cx.ns(
            &raw.period_secs,
            "period_secs",
            b.period_ns as f64 / 1e9,
            0.01,
            max_s,
        )?,
        min_interval_ns: cx.ns(
            &raw.min_interval_secs,
            "min_interval_secs",
            b.min_interval_ns as f64 / 1e9,
            0.0,
            max_s,
        )?,
        psi_some_avg10: cx.secs(
            &raw.psi_some_avg10,
            "psi_some_avg10",
            b.psi_some_avg10,
            0.0,
            100.0,
        )?,
        utilisation: cx.secs(&raw.utilisation, "utilisation", b.utilisation, 0.0, 1.0)?,
        backoff_initial_ns: cx.ns(
            &raw.backoff_initial_secs,
            "backoff_initial_secs",
            b.backoff_initial_ns as f64 / 1e9,
            0.0,
            max_s,
        )?,
        backoff_max_ns: cx.ns(
            &raw.backoff_max_secs,
            "backoff_max_secs",
            b.backoff_max_ns as f64 / 1e9,
            0.0,
            max_s,
        )?,
        refault_window_ns: cx.ns(
            &raw.refault_window_secs,
            "refault_window_secs",
            b.refault_window_ns as f64 / 1e9,
            1.0,
            max_s,
        )?,
        batch,
        refault,
    };
    if cfg.budget_burst_bytes == 0 && cfg.budget_bytes_per_day > 0 {
        let span = raw.budget_burst.as_ref().map(Spanned::span).unwrap_or(0..0);
        return Err(cx.err(
            span,
            "budget_burst",
            "must be at least one page (4096) when budget_per_day is set",
        ));
    }
    Ok(cfg)
}

/// The recompression settings; `None` when `recompress_idle_age_secs` is unset.
fn recompress(
    cx: &Ctx<'_>,
    raw: &RawPolicy,
    base: Option<&RecompressConfig>,
) -> Result<Option<RecompressConfig>, ConfigError> {
    let max_s = 30 * 86_400;
    let idle_age_secs = match (&raw.recompress_idle_age_secs, base) {
        (Some(_), _) => cx.int(
            &raw.recompress_idle_age_secs,
            "recompress_idle_age_secs",
            0,
            1,
            max_s,
        )?,
        (None, Some(b)) => b.idle_age_secs,
        (None, None) => {
            for (set, f) in [
                (
                    raw.recompress_algorithm.as_ref().map(Spanned::span),
                    "recompress_algorithm",
                ),
                (
                    raw.recompress_threshold.as_ref().map(Spanned::span),
                    "recompress_threshold",
                ),
                (
                    raw.recompress_interval_secs.as_ref().map(Spanned::span),
                    "recompress_interval_secs",
                ),
                (
                    raw.recompress_max_pages.as_ref().map(Spanned::span),
                    "recompress_max_pages",
                ),
            ] {
                if let Some(span) = set {
                    return Err(cx.err(span, f, "has no effect without recompress_idle_age_secs (the age of pages to recompress)"));
                }
            }
            return Ok(None);
        }
    };
    let algorithm = match &raw.recompress_algorithm {
        Some(a) if a.get_ref().trim().is_empty() => {
            return Err(cx.err(a.span(), "recompress_algorithm", "empty algorithm name"));
        }
        Some(a) => a.get_ref().trim().to_owned(),
        None => base.map_or_else(|| "zstd".to_owned(), |b| b.algorithm.clone()),
    };
    Ok(Some(RecompressConfig {
        idle_age_secs,
        algorithm,
        threshold: cx.int(
            &raw.recompress_threshold,
            "recompress_threshold",
            base.map_or(0, |b| b.threshold),
            0,
            3071,
        )?,
        interval_secs: cx.secs(
            &raw.recompress_interval_secs,
            "recompress_interval_secs",
            base.map_or(600.0, |b| b.interval_secs),
            0.0,
            max_s as f64,
        )?,
        max_pages: match &raw.recompress_max_pages {
            Some(_) => Some(cx.int(
                &raw.recompress_max_pages,
                "recompress_max_pages",
                0,
                1,
                u64::MAX,
            )?),
            None => base.and_then(|b| b.max_pages),
        },
    }))
}

/// `disksize`, `algorithm`, `recomp_algorithm` and `[device.backing]`.
fn setup(cx: &Ctx<'_>, d: &RawDevice) -> Result<Option<SetupConfig>, ConfigError> {
    let Some(ds) = &d.disksize else {
        for (span, f, what) in [
            (
                d.backing.as_ref().map(Spanned::span),
                "backing",
                "[device.backing]",
            ),
            (
                d.algorithm.as_ref().map(Spanned::span),
                "algorithm",
                "algorithm",
            ),
            (
                d.recomp_algorithm.as_ref().map(Spanned::span),
                "recomp_algorithm",
                "recomp_algorithm",
            ),
        ] {
            if let Some(span) = span {
                return Err(cx.err(
                    span,
                    f,
                    format!("{what} sets the device up at start, which needs disksize on the device (e.g. disksize = \"4G\")"),
                ));
            }
        }
        return Ok(None);
    };
    let disksize = cx.size(&d.disksize, "disksize", 0)?;
    if disksize == 0 {
        return Err(cx.err(ds.span(), "disksize", "must be larger than 0"));
    }
    let recomp_algorithms = match &d.recomp_algorithm {
        Some(v) if v.get_ref().len() > 3 => {
            return Err(cx.err(
                v.span(),
                "recomp_algorithm",
                format!(
                    "{} algorithms: at most 3 (priorities 1-3)",
                    v.get_ref().len()
                ),
            ));
        }
        Some(v) => v.get_ref().clone(),
        None => Vec::new(),
    };
    let backing = match &d.backing {
        None => None,
        Some(b) => {
            let bcx = Ctx {
                path: cx.path,
                src: cx.src,
                section: format!("{}.backing", cx.section),
            };
            let r = b.get_ref();
            let file = PathBuf::from(r.file.get_ref());
            if !file.is_absolute() {
                return Err(bcx.err(
                    r.file.span(),
                    "file",
                    format!("{:?} is not an absolute path", r.file.get_ref()),
                ));
            }
            let size = match &r.size {
                None => crate::provision::BackingSize::Auto,
                Some(v) => match v.get_ref() {
                    SizeValue::Text(t) => t
                        .parse()
                        .map_err(|e: String| bcx.err(v.span(), "size", e))?,
                    SizeValue::Bytes(n) => format!("{n}")
                        .parse()
                        .map_err(|e: String| bcx.err(v.span(), "size", e))?,
                },
            };
            Some(crate::provision::BackingSpec {
                file,
                size,
                encrypt: r.encrypt.as_ref().is_some_and(|e| *e.get_ref()),
            })
        }
    };
    Ok(Some(SetupConfig {
        disksize,
        algorithm: d.algorithm.as_ref().map(|a| a.get_ref().clone()),
        recomp_algorithms,
        backing,
    }))
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
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/zramctl/zramctl.toml"), s)
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse(
            "[policy]\nbudget_per_day = \"512M\"\n\n[[device]]\nname = \"zram0\"\n\n[[device]]\nname = \"/dev/zram1\"\nbudget_per_day = 4096\nbatch_max = 64\n",
        )
        .unwrap();
        assert_eq!(c.interval_secs, 10.0);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9466".parse().unwrap()));
        assert_eq!(c.devices[0].name, "zram0");
        assert_eq!(c.devices[0].policy.budget_bytes_per_day, 512 << 20);
        assert_eq!(c.devices[1].name, "zram1");
        assert_eq!(c.devices[1].policy.budget_bytes_per_day, 4096);
        assert_eq!(c.devices[1].policy.batch.max, 64);
        assert_eq!(c.devices[0].policy.batch.max, 256);
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                "[daemon]\ninterval_secs = \"x\"\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:2: daemon.interval_secs: ",
            ),
            (
                "[daemon]\n\ninterval_secs = 0\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:3: daemon.interval_secs: 0 is out of range",
            ),
            (
                "[policy]\nbogus = 1\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:2: policy.bogus: unknown field `bogus`",
            ),
            (
                "[policy]\nbatch_min = 10\nbatch_max = 5\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:2: policy.batch_min: batch_min 10 is larger than batch_max 5",
            ),
            (
                "[policy]\nbudget_per_day = \"lots\"\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:2: policy.budget_per_day: \"lots\" is not a size",
            ),
            (
                "[daemon]\nmetrics_listen = \"0.0.0.0:9466\"\n[[device]]\nname=\"zram0\"\n",
                "zramctl.toml:2: daemon.metrics_listen: 0.0.0.0:9466 is not a loopback",
            ),
            (
                "[[device]]\nname=\"zram0\"\n[[device]]\nname=\"sda\"\n",
                "zramctl.toml:4: device[1].name: invalid device \"sda\"",
            ),
            (
                "[[device]]\nname=\"zram0\"\n[[device]]\nname=\"/dev/zram0\"\n",
                "zramctl.toml:4: device[1].name: zram0 is listed twice",
            ),
            (
                "[[device]]\nname=\"zram0\"\nutilisation = 1.5\n",
                "zramctl.toml:3: device[0].utilisation: 1.5 is out of range",
            ),
            ("[daemon\n", "zramctl.toml:1: "),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_err().to_string();
            assert!(e.contains(want), "{src:?}\n got: {e}\nwant: {want}");
        }
        let e = parse("[daemon]\n").unwrap_err().to_string();
        assert!(e.contains("no [[device]] section"), "{e}");
        assert!(
            parse("[daemon]\nmetrics_listen = \"off\"\n[[device]]\nname=\"zram0\"\n")
                .unwrap()
                .metrics_listen
                .is_none()
        );
    }

    #[test]
    fn recompress_and_backing_sections() {
        let c = parse(
            "[policy]\nrecompress_idle_age_secs = 600\n\n[[device]]\nname = \"zram0\"\ndisksize = \"1G\"\nrecomp_algorithm = [\"zstd\"]\nrecompress_threshold = 1000\n\n[device.backing]\nfile = \"/var/lib/zramctl/zram0.img\"\nsize = \"256M\"\nencrypt = true\n\n[[device]]\nname = \"zram1\"\n",
        )
        .unwrap();
        let r = c.devices[0].recompress.as_ref().unwrap();
        assert_eq!(
            (r.idle_age_secs, r.algorithm.as_str(), r.threshold),
            (600, "zstd", 1000)
        );
        let s = c.devices[0].setup.as_ref().unwrap();
        assert_eq!(s.disksize, 1 << 30);
        assert_eq!(s.recomp_algorithms, ["zstd"]);
        let b = s.backing.as_ref().unwrap();
        assert_eq!(b.size, crate::provision::BackingSize::Bytes(256 << 20));
        assert!(b.encrypt);
        assert_eq!(c.devices[1].recompress.as_ref().unwrap().threshold, 0);
        assert!(c.devices[1].setup.is_none());
        let cases = [
            (
                "[[device]]\nname=\"zram0\"\n[device.backing]\nfile = \"/f\"\n",
                "zramctl.toml:3: device[0].backing: [device.backing] sets the device up at start, which needs disksize",
            ),
            (
                "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"rel/f\"\n",
                "zramctl.toml:5: device[0].backing.file: \"rel/f\" is not an absolute path",
            ),
            (
                "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"/f\"\nsize = \"1K\"\n",
                "zramctl.toml:6: device[0].backing.size: backing file size 1K is too small",
            ),
            (
                "[[device]]\nname=\"zram0\"\ndisksize=\"1G\"\n[device.backing]\nfile = \"/f\"\nencrypted = true\n",
                "zramctl.toml:6: device.backing.encrypted: unknown field `encrypted`",
            ),
            (
                "[[device]]\nname=\"zram0\"\nrecompress_algorithm = \"zstd\"\n",
                "zramctl.toml:3: device[0].recompress_algorithm: has no effect without recompress_idle_age_secs",
            ),
            (
                "[[device]]\nname=\"zram0\"\nrecompress_idle_age_secs = 60\nrecompress_threshold = 4096\n",
                "zramctl.toml:4: device[0].recompress_threshold: 4096 is out of range",
            ),
            (
                "[[device]]\nname=\"zram0\"\ndisksize = 0\n",
                "zramctl.toml:3: device[0].disksize: must be larger than 0",
            ),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_err().to_string();
            assert!(e.contains(want), "{src:?}\n got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let src = include_str!("../../../packaging/zramctl.toml");
        let c = parse(src).unwrap();
        assert_eq!(c.devices[0].name, "zram0");
        assert_eq!(c.devices[0].policy.budget_bytes_per_day, 1 << 30);
    }
}
