#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection at a real .../ansible_collections/bootc/composefs
# path outside the git work tree (ansible-test resolves symlinks and skips git-ignored copies).
# No ignore file: every test must pass as is.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${SANITY_PYTHON:-3.11}
ACROOT=$(mktemp -d)
trap 'rm -rf "$ACROOT"' EXIT
COLL=$ACROOT/ansible_collections/bootc/composefs
mkdir -p "$COLL"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null | tar -xf - -C "$COLL"
if [ -e "$COLL/tests/sanity" ]; then
  echo "sanity: tests/sanity/ exists; the project keeps no ignore files" >&2
  exit 1
fi
cd "$COLL"
git init -q . && git add -A >/dev/null 2>&1 && git -c user.name=s -c user.email=s@s commit -qm snapshot >/dev/null
exec "$OLDPWD/.venv/bin/ansible-test" sanity --python "$PY" --color no "$@" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
