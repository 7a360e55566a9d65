//! Builds zramctl-ebpf for bpfel-unknown-none and leaves the object in OUT_DIR,
//! where `src/ebpf.rs` embeds it.
//!
//! aya-build 0.2.0 would use the `nightly` toolchain and only passes
//! `-Z build-std=core` when RUSTC_BOOTSTRAP=1; this machine has stable 1.95
//! with Debian's rust-src, so use the current toolchain and set the variable
//! here (plain `cargo build` then needs nothing exported).
use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .join("../zramctl-ebpf")
        .canonicalize()
        .context("locating ../zramctl-ebpf")?;
    let root = root.to_str().context("non-UTF-8 path to zramctl-ebpf")?;
    // SAFETY: the build script is single-threaded; the variable is read by
    // aya-build and inherited by the nested cargo it spawns.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "zramctl-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
    .context(
        "building the eBPF programs (needs bpf-linker and rust-src: run scripts/setup.sh --user)",
    )
}
