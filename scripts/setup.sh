#!/usr/bin/env bash
# Install what cloudimg's build, tests and demo need on a Debian machine.
# Fast when everything is already there: apt is only touched when a
# package is missing, and `apt-get update` runs once before installing.
set -euo pipefail

PACKAGES=(qemu-system-x86 ovmf seabios grub-pc-bin grub-efi-amd64-bin grub-common
          gdisk dosfstools mtools pigz python3 xz-utils bzip2 zstd lz4 zip gcc binutils make
          man-db groff-base python3-jsonschema)

missing=()
for p in "${PACKAGES[@]}" qemu-utils; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # qemu-system-x86 first and on its own: on some images a newer
  # qemu-utils is preinstalled, and asking for both at once makes apt
  # give up ("held broken packages"); in this order apt settles on the
  # matching qemu-utils.
  if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
    $SUDO apt-get install -y -qq qemu-system-x86 >/dev/null
  fi
  rest=()
  for p in "${missing[@]}"; do
    [[ $p == qemu-system-x86 || $p == qemu-utils ]] || rest+=("$p")
  done
  if ((${#rest[@]})); then $SUDO apt-get install -y -qq "${rest[@]}" >/dev/null; fi
  if ! dpkg-query -W -f='${Status}' qemu-utils 2>/dev/null | grep -q 'install ok installed' \
     || ! qemu-img --version >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --allow-downgrades qemu-utils >/dev/null
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust (rustup) first" >&2
  exit 2
fi
# The lint gate of scripts/test.sh needs rustfmt and clippy.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy
  else
    echo "setup: cargo fmt and cargo clippy are missing; install rustfmt and clippy" >&2
    exit 2
  fi
fi
