//! Library half of the eBPF crate: empty. It exists so that zramctl can
//! declare a build-dependency on this crate and be rebuilt when it changes
//! (the programs themselves are the `zramctl-probes` binary).
#![no_std]
