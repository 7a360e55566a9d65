//! Byte sizes as people type them (`512M`, `1.5GiB`, `4096`) and as
//! util-linux prints them (`256M`, `4.6K`).

use std::fmt;

/// A size given on the command line or in a config file, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (examples: 4096, 512K, 256M, 1.5G, 2GiB)")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

const UNITS: [(&str, u32); 6] = [("K", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5), ("E", 6)];

impl std::str::FromStr for ByteSize {
    type Err = SizeError;

    /// Parses a decimal number with an optional binary suffix: `K`, `M`, `G`,
    /// `T`, `P`, `E`, each optionally followed by `iB` or `B` (all powers of
    /// 1024, as zram's own `disksize` and util-linux do). A bare number or a
    /// `B` suffix is bytes. Fractions are allowed with a suffix.
    fn from_str(input: &str) -> Result<Self, SizeError> {
        let err = |reason| SizeError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = (s[..split].trim(), s[split..].trim());
        if num.is_empty() {
            return Err(err("no number"));
        }
        let upper = unit.to_ascii_uppercase();
        let unit_core = upper
            .strip_suffix("IB")
            .or_else(|| upper.strip_suffix('B'))
            .unwrap_or(&upper);
        let shift = if unit_core.is_empty() {
            0
        } else {
            match UNITS.iter().find(|(u, _)| *u == unit_core) {
                Some((_, p)) => p * 10,
                None => return Err(err("unknown unit")),
            }
        };
        let (int, frac) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err(err("malformed number"));
        }
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err("number too large"))?
        };
        let whole = int.checked_shl(shift).filter(|v| v >> shift == int);
        let mut bytes = whole.ok_or_else(|| err("number too large"))?;
        if !frac.is_empty() {
            if shift == 0 {
                return Err(err("fractional bytes"));
            }
            // frac / 10^len * 2^shift, computed exactly in u128.
            let digits = frac.len().min(18) as u32;
            let f: u128 = frac[..digits as usize]
                .parse()
                .map_err(|_| err("malformed number"))?;
            let part = (f << shift) / 10u128.pow(digits);
            bytes = bytes
                .checked_add(u64::try_from(part).map_err(|_| err("number too large"))?)
                .ok_or_else(|| err("number too large"))?;
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// util-linux style: `0B`, `4K`, `4.6M`, `256M`, `1.5G` (one decimal
    /// below 10 units, none above).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b < 1024 {
            return write!(f, "{b}B");
        }
        let mut unit = 0;
        let mut scaled = b as f64;
        while scaled >= 1024.0 && unit < UNITS.len() {
            scaled /= 1024.0;
            unit += 1;
        }
        let name = UNITS[unit - 1].0;
        let rounded = (scaled * 10.0).round() / 10.0;
        if rounded >= 10.0 || rounded.fract() == 0.0 {
            write!(f, "{}{name}", scaled.round() as u64)
        } else {
            write!(f, "{rounded:.1}{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<u64, SizeError> {
        s.parse::<ByteSize>().map(|b| b.0)
    }

    #[test]
    fn parses_plain_and_suffixed() {
        assert_eq!(p("4096"), Ok(4096));
        assert_eq!(p("512K"), Ok(512 << 10));
        assert_eq!(p("256m"), Ok(256 << 20));
        assert_eq!(p("1G"), Ok(1 << 30));
        assert_eq!(p("2GiB"), Ok(2 << 30));
        assert_eq!(p("3 MB"), Ok(3 << 20));
        assert_eq!(p("1.5G"), Ok(3 << 29));
        assert_eq!(p(".5K"), Ok(512));
        assert_eq!(p("10B"), Ok(10));
        assert_eq!(p(" 8M "), Ok(8 << 20));
    }

    #[test]
    fn rejects_garbage_with_reason() {
        assert_eq!(p("").unwrap_err().reason, "empty");
        assert_eq!(p("M").unwrap_err().reason, "no number");
        assert_eq!(p("12Q").unwrap_err().reason, "unknown unit");
        assert_eq!(p("1.2.3K").unwrap_err().reason, "malformed number");
        assert_eq!(p("1.5").unwrap_err().reason, "fractional bytes");
        assert_eq!(
            p("99999999999999999999").unwrap_err().reason,
            "number too large"
        );
        assert_eq!(p("16385P").unwrap_err().reason, "number too large");
        assert_eq!(p("-1G").unwrap_err().reason, "no number");
        let msg = p("x").unwrap_err().to_string();
        assert!(msg.contains("\"x\"") && msg.contains("examples"), "{msg}");
    }

    #[test]
    fn formats_like_util_linux() {
        let s = |b| ByteSize(b).to_string();
        assert_eq!(s(0), "0B");
        assert_eq!(s(1023), "1023B");
        assert_eq!(s(4096), "4K");
        assert_eq!(s(4710), "4.6K");
        assert_eq!(s(256 << 20), "256M");
        assert_eq!(s(3 << 29), "1.5G");
        assert_eq!(s((10 << 20) + 1), "10M");
        assert_eq!(s(u64::MAX), "16E");
    }

    #[test]
    fn round_trips_formatted_sizes() {
        for b in [4096u64, 1 << 20, 3 << 29, 5 << 40] {
            assert_eq!(p(&ByteSize(b).to_string()), Ok(b));
        }
    }
}
