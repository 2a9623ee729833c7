"""Make ``ocigen`` and the collection (``ansible_collections.bootc.composefs``) importable.

simhost runs as a script (``python3 tests/tools/simhost.py``), from pytest and from the demo. The
collection is found through ``<repo>/.ci/tmp/collections/ansible_collections/bootc/composefs``, a
symlink to the repository root (what ``tests/setup/bootstrap.sh`` creates); it is created here
when missing. Nothing is added when the collection is importable already (pytest-ansible).
"""

import importlib.util
import os
import sys

TOOLS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(TOOLS_DIR))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, ".ci", "tmp", "collections")


def _collection_importable() -> bool:
    try:
        return importlib.util.find_spec("ansible_collections.bootc.composefs.plugins") is not None
    except ImportError:
        return False


def ensure_import_paths() -> None:
    """Put ``tests/tools`` and, if needed, ``.ci/tmp/collections`` on ``sys.path``."""
    if TOOLS_DIR not in sys.path:
        sys.path.insert(0, TOOLS_DIR)
    if _collection_importable():
        return
    link = os.path.join(COLLECTIONS_DIR, "ansible_collections", "bootc", "composefs")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO_ROOT, link)
    if COLLECTIONS_DIR not in sys.path:
        sys.path.insert(0, COLLECTIONS_DIR)
    importlib.invalidate_caches()
