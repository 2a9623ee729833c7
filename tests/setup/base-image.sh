#!/usr/bin/env bash
# Build the container image the Molecule scenarios run in, with no registry:
# mmdebstrap a minimal Debian 12 root with python3, `podman import` it once, reuse it afterwards.
# Prints the image name.
#
# PACKAGES is the image's content: python3 for Ansible, skopeo for composefs_pull inside the
# containers (they run with --network=host and pull from the test registry on 127.0.0.1).
# The image carries the package list as a label and the tarball cache is keyed by it, so
# changing PACKAGES rebuilds both instead of reusing a stale image.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/setup/podman-env.sh
. tests/setup/podman-env.sh
# A caller with a podman configuration of its own (tests/molecule: the same settings plus a private
# tmp_dir, with CONTAINERS_STORAGE_CONF for a private store) passes it here.
if [ -n "${BOOTC_COMPOSEFS_CONTAINERS_CONF:-}" ]; then export CONTAINERS_CONF=$BOOTC_COMPOSEFS_CONTAINERS_CONF; fi
IMAGE=${BOOTC_COMPOSEFS_BASE_IMAGE:-localhost/bootc-composefs-test-base:12}
CACHE=${BOOTC_COMPOSEFS_CACHE:-$HOME/.cache/bootc-composefs}
PACKAGES=python3,skopeo
LABEL=org.bootc-composefs.test-base.packages
have=""
if podman image exists "$IMAGE"; then
  have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
fi
if [ "$have" != "$PACKAGES" ]; then
  mkdir -p "$CACHE"
  TAR=$CACHE/base-bookworm-$(echo "$PACKAGES" | sha256sum | cut -c1-12).tar
  if [ ! -s "$TAR" ]; then
    mmdebstrap --quiet --format=tar --variant=minbase --include="$PACKAGES" \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      bookworm "$TAR.tmp" "deb http://deb.debian.org/debian bookworm main" >&2
    mv "$TAR.tmp" "$TAR"
  fi
  podman import --quiet --change 'CMD ["/bin/sleep", "infinity"]' --change "LABEL $LABEL=$PACKAGES" \
    "$TAR" "$IMAGE" >/dev/null
fi
echo "$IMAGE"
