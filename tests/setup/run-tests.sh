#!/usr/bin/env bash
# Everything CI checks, in order (the README's `make test` runs this after tests/setup/bootstrap.sh):
# ansible-test sanity, ansible-lint (production profile), collection build + install, unit tests,
# integration tests, Molecule scenarios. Stops at the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.ci/tmp/collections
export ANSIBLE_NOCOLOR=1 PY_COLORS=0 NO_COLOR=1
# shellcheck source=tests/setup/podman-env.sh
. tests/setup/podman-env.sh
T0=$SECONDS
stage() { echo; echo "== [$((SECONDS - T0))s] $*"; }

stage "ansible-test sanity (no ignore file)"
tests/setup/sanity.sh

stage "ansible-lint --profile production"
ansible-lint --profile production

stage "collection build and install"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
ansible-galaxy collection build --force --output-path "$BUILD" . >/dev/null
# --force: ansible-lint may have put a copy under ~/.ansible, which would make this install a no-op.
ansible-galaxy collection install --offline --force -p "$BUILD/installed" "$BUILD"/bootc-composefs-*.tar.gz >/dev/null
# ansible-doc exits 0 with a warning for a module it cannot load: check that each one is documented.
for module in composefs_status composefs_pull composefs_gc; do
  ANSIBLE_COLLECTIONS_PATH=$BUILD/installed ansible-doc --json "bootc.composefs.$module" 2>/dev/null \
    | python3 -c 'import json, sys; doc = json.load(sys.stdin); sys.exit(0 if doc else 1)' \
    || { echo "the installed collection does not document bootc.composefs.$module" >&2; exit 1; }
done
echo "built and installed $(basename "$BUILD"/bootc-composefs-*.tar.gz)"

stage "unit tests"
pytest -q -p no:cacheprovider tests/unit

stage "integration tests"
pytest -q -p no:cacheprovider tests/integration

stage "molecule scenarios"
pytest -q -p no:cacheprovider tests/molecule

stage "all green"
