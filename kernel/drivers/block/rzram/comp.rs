// SPDX-License-Identifier: GPL-2.0

//! Compression behind one interface (upstream's `zcomp`): the algorithms
//! rzram offers, their priorities, and one algorithm's state.

use crate::base::PAGE;
use kernel::{
    lz4::{self, Lz4},
    mm::shared::{SharedBytes, SharedBytesMut},
    prelude::*,
    zstd,
};

/// Compression algorithms rzram offers, as `comp_algorithm` lists them; the
/// first is the default.
pub(crate) const ALGORITHMS: &[&str] = &["lz4", "zstd"];

/// The state of one compression algorithm.
pub(crate) enum Codec {
    Lz4(Lz4),
    Zstd {
        c: zstd::Compressor,
        d: zstd::Decompressor,
    },
}

impl Codec {
    /// The codec of `ALGORITHMS[algorithm]`.
    pub(crate) fn new(algorithm: usize) -> Result<Self> {
        match ALGORITHMS.get(algorithm) {
            Some(&"lz4") => Ok(Self::Lz4(Lz4::new()?)),
            Some(&"zstd") => Ok(Self::Zstd {
                c: zstd::Compressor::new(zstd::default_level(), PAGE)?,
                d: zstd::Decompressor::new()?,
            }),
            _ => Err(EINVAL),
        }
    }

    pub(crate) fn compress(&mut self, src: SharedBytes<'_>, dst: &mut [u8]) -> Option<usize> {
        match self {
            Self::Lz4(l) => l.compress(src, dst),
            Self::Zstd { c, .. } => c.compress(src, dst),
        }
    }

    pub(crate) fn decompress(&mut self, src: &[u8], dst: SharedBytesMut<'_>) -> Result {
        match self {
            Self::Lz4(_) => lz4::decompress(src, dst),
            Self::Zstd { d, .. } => d.decompress(src, dst),
        }
    }
}

/// Compression priorities: 0 is the primary algorithm, 1 to 3 the
/// `recomp_algorithm` ones (upstream's `ZRAM_MAX_COMPS`).
pub(crate) const MAX_COMPS: usize = 4;

/// The algorithms of a store by priority, as indexes into `ALGORITHMS`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Algorithms(pub(crate) [Option<usize>; MAX_COMPS]);

impl Algorithms {
    /// Only a primary algorithm.
    pub(crate) fn primary(algorithm: usize) -> Self {
        Self([Some(algorithm), None, None, None])
    }

    /// The highest priority with an algorithm.
    pub(crate) fn highest(&self) -> usize {
        self.0.iter().rposition(Option::is_some).unwrap_or(0)
    }
}
