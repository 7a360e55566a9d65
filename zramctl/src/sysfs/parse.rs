//! Parsers of the attribute files into [`super::model`] values.

use super::model::{BdStat, CompAlgorithms, DebugStat, IoStat, MmStat, RecompAlgorithm};

/// Why an attribute's contents could not be read as what it should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        ParseError(s.to_owned())
    }
}

impl RecompAlgorithm {
    /// Parses the whole `recomp_algorithm` file (empty: none configured).
    ///
    /// Linux 7.3's `recomp_algorithm_show()` adds the length of each
    /// `#N: ` prefix twice (`zcomp_available_show()` returns the new offset,
    /// not what it added), so the file ends in that many NUL bytes per
    /// priority: they are skipped.
    pub fn parse_all(s: &str) -> Result<Vec<Self>, ParseError> {
        let mut out = Vec::new();
        for line in s
            .lines()
            .map(|l| l.trim_matches(|c: char| c == '\0' || c.is_whitespace()))
            .filter(|l| !l.is_empty())
        {
            let (prio, rest) = line
                .strip_prefix('#')
                .and_then(|l| l.split_once(':'))
                .ok_or_else(|| {
                    ParseError::from(format!("expected \"#PRIO: algorithms\", found {line:?}"))
                })?;
            let priority = prio
                .trim()
                .parse()
                .map_err(|_| ParseError::from(format!("{prio:?} is not a priority")))?;
            out.push(RecompAlgorithm {
                priority,
                algorithms: CompAlgorithms::parse(rest)?,
            });
        }
        Ok(out)
    }
}

fn parse_u64_fields(s: &str) -> Result<Vec<u64>, ParseError> {
    s.split_whitespace()
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| ParseError::from(format!("{t:?} is not a number")))
        })
        .collect()
}

fn need(fields: &[u64], n: usize) -> Result<(), ParseError> {
    if fields.len() < n {
        Err(ParseError::from(format!(
            "expected at least {n} numbers, found {}",
            fields.len()
        )))
    } else {
        Ok(())
    }
}

impl MmStat {
    /// Parses `mm_stat`; the two huge-page fields are optional (older kernels).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let f = parse_u64_fields(s)?;
        need(&f, 7)?;
        Ok(MmStat {
            orig_data_size: f[0],
            compr_data_size: f[1],
            mem_used_total: f[2],
            mem_limit: f[3],
            mem_used_max: f[4],
            same_pages: f[5],
            pages_compacted: f[6],
            huge_pages: f.get(7).copied(),
            huge_pages_since: f.get(8).copied(),
        })
    }

    /// orig / compr, or `None` when nothing is stored.
    pub fn ratio(&self) -> Option<f64> {
        (self.compr_data_size > 0).then(|| self.orig_data_size as f64 / self.compr_data_size as f64)
    }
}

impl IoStat {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let f = parse_u64_fields(s)?;
        need(&f, 3)?;
        Ok(IoStat {
            failed_reads: f[0],
            failed_writes: f[1],
            invalid_io: f[2],
            notify_free: f.get(3).copied().unwrap_or(0),
        })
    }
}

impl BdStat {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let f = parse_u64_fields(s)?;
        need(&f, 3)?;
        Ok(BdStat {
            bd_count: f[0],
            bd_reads: f[1],
            bd_writes: f[2],
        })
    }
}

impl DebugStat {
    /// `version: N` on the first line, then numbers.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut lines = s.lines();
        let first = lines.next().unwrap_or("");
        let version = first
            .trim()
            .strip_prefix("version:")
            .ok_or_else(|| ParseError::from("missing \"version:\" line"))?
            .trim()
            .parse()
            .map_err(|_| ParseError::from("bad version number"))?;
        let rest: Vec<&str> = lines.collect();
        Ok(DebugStat {
            version,
            values: parse_u64_fields(&rest.join(" "))?,
        })
    }
}

impl CompAlgorithms {
    /// `lzo [lz4] zstd`: the bracketed one is current.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut current = None;
        let mut available = Vec::new();
        for tok in s.split_whitespace() {
            if let Some(name) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                if current.replace(name.to_owned()).is_some() {
                    return Err(ParseError::from(
                        "more than one algorithm is marked current",
                    ));
                }
                available.push(name.to_owned());
            } else {
                available.push(tok.to_owned());
            }
        }
        match current {
            Some(current) => Ok(CompAlgorithms { current, available }),
            None => Err(ParseError::from(
                "no algorithm is marked current with [brackets]",
            )),
        }
    }
}

pub(super) fn parse_bool01(s: &str) -> Result<bool, ParseError> {
    match s.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(ParseError::from(format!(
            "expected 0 or 1, found {other:?}"
        ))),
    }
}

pub(super) fn parse_one_u64(s: &str) -> Result<u64, ParseError> {
    s.trim()
        .parse()
        .map_err(|_| ParseError::from("expected one number"))
}
