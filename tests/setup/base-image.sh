#!/usr/bin/env bash
# Build the container image the Molecule scenarios run in, with no registry:
# mmdebstrap a minimal Debian 12 root with python3, `podman import` it once, reuse it afterwards.
# Prints the image name.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/setup/podman-env.sh
. tests/setup/podman-env.sh
IMAGE=${BOOTC_COMPOSEFS_BASE_IMAGE:-localhost/bootc-composefs-test-base:12}
CACHE=${BOOTC_COMPOSEFS_CACHE:-$HOME/.cache/bootc-composefs}
if ! podman image exists "$IMAGE"; then
  mkdir -p "$CACHE"
  TAR=$CACHE/base-bookworm.tar
  if [ ! -s "$TAR" ]; then
    mmdebstrap --quiet --format=tar --variant=minbase --include=python3 \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      bookworm "$TAR.tmp" "deb http://deb.debian.org/debian bookworm main" >&2
    mv "$TAR.tmp" "$TAR"
  fi
  podman import --quiet --change 'CMD ["/bin/sleep", "infinity"]' "$TAR" "$IMAGE" >/dev/null
fi
echo "$IMAGE"
