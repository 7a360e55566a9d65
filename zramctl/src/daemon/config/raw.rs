//! The configuration as TOML has it (every value with its span), and the
//! context that turns a bad value into an error naming file, line and field.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, ProbeMode};
use crate::size::ByteSize;

pub(super) type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) policy: RawPolicy,
    #[serde(default)]
    pub(super) device: Vec<Spanned<RawDevice>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) interval_secs: S<f64>,
    pub(super) metrics_listen: S<String>,
    pub(super) probes: S<ProbeMode>,
    pub(super) psi_path: S<String>,
}

/// `[policy]` and `[[device]]` take the same policy fields (serde's flatten
/// would lose the spans and the unknown-field check, so a macro lists them once).
macro_rules! raw_policy {
    ($($f:ident: $t:ty,)*) => {
        #[derive(Deserialize, Default, Clone)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawPolicy {
            $(pub(super) $f: S<$t>,)*
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct RawDevice {
            pub(super) name: Spanned<String>,
            pub(super) disksize: S<SizeValue>,
            pub(super) algorithm: S<String>,
            pub(super) recomp_algorithm: S<Vec<String>>,
            pub(super) backing: S<RawBacking>,
            $($f: S<$t>,)*
        }

        impl RawDevice {
            pub(super) fn policy(&self) -> RawPolicy {
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
    round_candidate_factor: u64,
    round_min_pages: u64,
    round_scale_with_utilisation: bool,
    idle_age_min_evidence_pages: u64,
    round_huge_age_factor: f64,
    idle_age_mature_evidence: bool,
    round_reread_age_factor: f64,
}

/// `[device.backing]`: a backing file zramctl provisions.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBacking {
    pub(super) file: Spanned<String>,
    pub(super) size: S<SizeValue>,
    pub(super) encrypt: S<bool>,
}

/// A size: `"1G"` or a number of bytes.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum SizeValue {
    Bytes(u64),
    Text(String),
}

pub(super) fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) src: &'a str,
    pub(super) section: String,
}

impl Ctx<'_> {
    pub(super) fn err(
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

    pub(super) fn secs(
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

    pub(super) fn ns(
        &self,
        v: &S<f64>,
        field: &str,
        default_s: f64,
        min: f64,
        max: f64,
    ) -> Result<u64, ConfigError> {
        Ok((self.secs(v, field, default_s, min, max)? * 1e9) as u64)
    }

    pub(super) fn int(
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

    pub(super) fn size(
        &self,
        v: &S<SizeValue>,
        field: &str,
        default: u64,
    ) -> Result<u64, ConfigError> {
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
