#!/usr/bin/env bash
# Prepare everything the tests and the demo need on a fresh Debian 12 machine (run as root):
# Debian packages, the pinned Python venv (.venv), the composefs oracle tools, containers.podman
# and the offline get-pip stand-in for ansible-test. Every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${BOOTC_COMPOSEFS_CACHE:-$HOME/.cache/bootc-composefs}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
log() { echo "== bootstrap: $*" >&2; }
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }

APT_PACKAGES=(podman runc mmdebstrap skopeo docker-registry fsverity erofs-utils zstd python3-venv
              uidmap slirp4netns fuse-overlayfs shellcheck binutils libxxhash0)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "bootstrap: need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned tool venv; rebuilt when requirements-dev.txt changes.
REQ_SUM=$(sha256sum requirements-dev.txt | cut -c1-16)
if [ ! -f .venv/.stamp-"$REQ_SUM" ]; then
  log "python venv .venv"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements-dev.txt 2> >(quiet_pip)
  touch .venv/.stamp-"$REQ_SUM"
fi

# containers.podman: galaxy is unreachable, the PyPI 'ansible' wheel bundles it.
PURELIB=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -d "$PURELIB/ansible_collections/containers/podman" ]; then
  log "containers.podman from the ansible 12.3.0 wheel"
  .venv/bin/pip download -q --no-deps -d "$CACHE/wheels" 'ansible==12.3.0' 2> >(quiet_pip)
  .venv/bin/python - "$CACHE"/wheels/ansible-12.3.0-py3-none-any.whl "$PURELIB" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("ansible_collections/containers/podman/")])
PY
fi

# ansible-test downloads get-pip.py from the internet; give it an offline stand-in.
PIPV=$(.venv/bin/python - <<'PY'
import pathlib, re, ansible_test
p = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", p.read_text()).group(1))
PY
)
mkdir -p "$HOME/.ansible/test/cache"
cp tests/setup/get_pip_offline.py "$HOME/.ansible/test/cache/get_pip_${PIPV//./_}.py"

# Oracle: Debian's composefs tools (mkcomposefs, composefs-info) need a newer glibc than
# bookworm, so they live in a small sid root and run through its own dynamic loader.
tests/setup/composefs-oracle --ensure >/dev/null

# A collection path for ansible runs outside pytest (demo, ad hoc).
mkdir -p .ci/tmp/collections/ansible_collections/bootc
ln -sfn "$ROOT" .ci/tmp/collections/ansible_collections/bootc/composefs
log "ready"
