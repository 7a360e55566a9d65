//! The sections of the configuration, validated: the policy fields (of
//! `[policy]` and each `[[device]]`), recompression, and a device's setup.

use std::path::PathBuf;

use toml::Spanned;

use super::{
    ConfigError, RecompressConfig,
    raw::{Ctx, RawDevice, RawPolicy, SizeValue},
};
use crate::{
    ops::setup::{Backing, DeviceSpec},
    policy::{BatchConfig, PolicyConfig, RefaultConfig},
    provision::{BackingSize, BackingSpec},
};

/// Fills `base` with what `raw` sets; fields it leaves out keep `base`'s.
pub(super) fn policy(
    cx: &Ctx<'_>,
    raw: &RawPolicy,
    base: &PolicyConfig,
) -> Result<PolicyConfig, ConfigError> {
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
        round: crate::policy::RoundConfig {
            candidate_factor: cx.int(
                &raw.round_candidate_factor,
                "round_candidate_factor",
                b.round.candidate_factor,
                1,
                64,
            )?,
            min_pages: cx.int(
                &raw.round_min_pages,
                "round_min_pages",
                b.round.min_pages,
                1,
                1 << 32,
            )?,
            scale_with_utilisation: raw
                .round_scale_with_utilisation
                .as_ref()
                .map_or(b.round.scale_with_utilisation, |v| *v.get_ref()),
            min_evidence_pages: cx.int(
                &raw.idle_age_min_evidence_pages,
                "idle_age_min_evidence_pages",
                b.round.min_evidence_pages,
                0,
                1 << 32,
            )?,
            // 0 turns the huge-page pass off.
            huge_age_factor: match &raw.round_huge_age_factor {
                None => b.round.huge_age_factor,
                v => Some(cx.secs(v, "round_huge_age_factor", 0.0, 0.0, 1.0)?).filter(|f| *f > 0.0),
            },
            mature_evidence: raw
                .idle_age_mature_evidence
                .as_ref()
                .map_or(b.round.mature_evidence, |v| *v.get_ref()),
            // 1 turns it off.
            reread_age_factor: match &raw.round_reread_age_factor {
                None => b.round.reread_age_factor,
                v => Some(cx.secs(v, "round_reread_age_factor", 1.0, 1.0, 64.0)?)
                    .filter(|f| *f > 1.0),
            },
        },
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
pub(super) fn recompress(
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
pub(super) fn setup(cx: &Ctx<'_>, d: &RawDevice) -> Result<Option<DeviceSpec>, ConfigError> {
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
    let backing =
        match &d.backing {
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
                let size =
                    match &r.size {
                        None => BackingSize::Auto,
                        Some(v) => match v.get_ref() {
                            SizeValue::Text(t) => {
                                t.parse().map_err(|e: crate::provision::SizingError| {
                                    bcx.err(v.span(), "size", e.0)
                                })?
                            }
                            SizeValue::Bytes(n) => format!("{n}").parse().map_err(
                                |e: crate::provision::SizingError| bcx.err(v.span(), "size", e.0),
                            )?,
                        },
                    };
                Some(BackingSpec {
                    file,
                    size,
                    encrypt: r.encrypt.as_ref().is_some_and(|e| *e.get_ref()),
                })
            }
        };
    // Both checked above, with the field's span.
    let spec = DeviceSpec::new(disksize)
        .and_then(|s| s.with_recomp_algorithms(recomp_algorithms))
        .map_err(|e| cx.err(ds.span(), "disksize", e.to_string()))?
        .with_algorithm(d.algorithm.as_ref().map(|a| a.get_ref().clone()))
        .with_backing(backing.map(Backing::File));
    Ok(Some(spec))
}
