#!/usr/bin/env bash
# zramctl: one-command setup for a fresh Debian 12 (bookworm) machine.
#
# Installs everything the build, the tests, the kernel and the VM need (each
# pin is explained where it is made, below, and in docs/testing.md). Idempotent:
# every step checks first and is skipped when already satisfied, so a second
# run takes about a second. Any step that cannot be done stops the script with
# a message naming the step.
#
#   scripts/setup.sh            everything (userspace + kernel + VM)
#   scripts/setup.sh --user     only what `cargo build` / host tests need
set -euo pipefail

MODE=all
case "${1:-}" in
  --user) MODE=user ;;
  ""|--all) MODE=all ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown argument '$1' (expected --user or --all)" >&2; exit 2 ;;
esac

RUST_SRC_VERSION="1.95.0+dfsg1-2~bpo13+1"
LLVM_VER=22
BINDGEN_MIN="0.72.1"

step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[setup] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs Debian packages); re-run with sudo"
command -v cargo >/dev/null || die "cargo not found: this machine needs a Rust toolchain (rustup stable 1.95)"

export DEBIAN_FRONTEND=noninteractive

# --- Debian suites, pinned low so nothing is upgraded behind our back -------
SRC=/etc/apt/sources.list.d/zramctl-backports.sources
PIN=/etc/apt/preferences.d/zramctl-backports
if [ ! -f "$SRC" ] || [ ! -f "$PIN" ]; then
  step "adding bookworm-backports and trixie-backports (Pin-Priority 100)"
  cat >"$SRC" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat >"$PIN" <<'PINS'
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100

Package: *
Pin: release n=trixie
Pin-Priority: 100
PINS
  rm -f /var/lib/apt/zramctl-updated
fi

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    step "apt-get update"
    apt-get update -qq || die "apt-get update failed (are the Debian mirrors reachable?)"
    apt_updated=1
  fi
}

# have PKG [VERSION]: installed (at VERSION if given)?
have() {
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null) || return 1
  case "$v" in "install ok installed"*) ;; *) return 1 ;; esac
  [ -z "${2:-}" ] || [ "${v##* }" = "$2" ]
}

# install SUITE PKG...: install the missing ones (SUITE "-" = default)
install() {
  local suite=$1; shift
  local missing=() p
  for p in "$@"; do
    case "$p" in
      *=*) have "${p%%=*}" "${p#*=}" || missing+=("$p") ;;
      *) have "$p" || missing+=("$p") ;;
    esac
  done
  [ ${#missing[@]} = 0 ] && return 0
  apt_update
  step "apt-get install ${missing[*]}${suite:+ (from $suite)}"
  local t=()
  [ "$suite" = - ] || t=(-t "$suite")
  apt-get install -y -qq --no-install-recommends "${t[@]}" "${missing[@]}" >/dev/null \
    || die "could not install ${missing[*]} from ${suite/-/default suites}"
}

# --- userspace build: eBPF needs LLVM 22 (bpf-linker) and rust-src (build-std)
install - build-essential pkg-config "clang-$LLVM_VER" "lld-$LLVM_VER" "llvm-$LLVM_VER-dev" \
  "libclang-$LLVM_VER-dev" libzstd-dev zlib1g-dev xz-utils prometheus
install trixie-backports "rust-src=$RUST_SRC_VERSION"

# rustup cannot download components here: point the toolchain at Debian's rust-src.
SYSROOT=$(rustc --print sysroot)
if [ ! -e "$SYSROOT/lib/rustlib/src/rust/library/core/Cargo.toml" ]; then
  step "linking Debian rust-src into $SYSROOT"
  mkdir -p "$SYSROOT/lib/rustlib/src"
  rm -rf "$SYSROOT/lib/rustlib/src/rust"
  mkdir -p "$SYSROOT/lib/rustlib/src/rust"
  ln -s /usr/lib/rustlib/src/rust/library "$SYSROOT/lib/rustlib/src/rust/library"
  # Cargo.lock of the library workspace is needed by -Z build-std
  [ -e /usr/lib/rustlib/src/rust/Cargo.lock ] && ln -sf /usr/lib/rustlib/src/rust/Cargo.lock "$SYSROOT/lib/rustlib/src/rust/Cargo.lock"
  [ -e "$SYSROOT/lib/rustlib/src/rust/library/core/Cargo.toml" ] || die "rust-src link is broken: $SYSROOT/lib/rustlib/src/rust/library"
fi

if ! command -v bpf-linker >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/bpf-linker" ]; then
  step "cargo install bpf-linker (LLVM $LLVM_VER, ~2 min)"
  LLVM_PREFIX=/usr/lib/llvm-$LLVM_VER cargo install bpf-linker --locked --no-default-features \
    --features "llvm-$LLVM_VER" -q || die "cargo install bpf-linker failed"
fi

[ "$MODE" = user ] && { step "userspace toolchain ready"; exit 0; }

# --- kernel build ------------------------------------------------------------
install - bc flex bison libelf-dev libssl-dev cpio dwarves busybox-static make patch iproute2 \
  e2fsprogs kmod util-linux fio
install trixie-backports linux-source-7.3
# the .deb (cargo xtask deb: lintian) and its systemd test (systemd-nspawn
# of a debootstrapped root)
install - debootstrap lintian systemd-container
install bookworm-backports qemu-system-x86

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
bg=$(bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ -z "$bg" ] || ! version_ge "$bg" "$BINDGEN_MIN"; then
  step "cargo install bindgen-cli (libclang $LLVM_VER, ~4 min)"
  LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VER/lib cargo install bindgen-cli --locked -q \
    || die "cargo install bindgen-cli failed"
fi

[ -f /usr/src/linux-source-7.3.tar.xz ] || die "linux-source-7.3 installed but /usr/src/linux-source-7.3.tar.xz is missing"
step "kernel + VM toolchain ready"
