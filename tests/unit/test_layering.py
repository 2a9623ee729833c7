"""Architecture rules checked on every run (docs/architecture.md).

- imports between module_utils layers go downwards only;
- only module_support.py (and modules) may import ``ansible.*``;
- module_utils parses as Python 3.9 and uses ``from __future__ import annotations``;
- library code never prints, exits or reads the environment.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
PREFIX = "ansible_collections.bootc.composefs.plugins.module_utils."

# lower number = lower layer; a file may import its own rank or lower.
RANKS = {"errors": 0, "formats": 1, "repository": 2, "oci": 3, "host": 4, "operations": 5, "module_support": 6}


def _layer_of(relative_module):
    return relative_module.split(".", 1)[0]


def _library_files():
    return sorted(p for p in MODULE_UTILS.rglob("*.py") if p.name != "__init__.py")


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


FILES = _library_files()


def _tree(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:
                yield node.module + "." + alias.name


def test_layer_table_covers_every_folder():
    folders = {p.name for p in MODULE_UTILS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    files = {p.stem for p in MODULE_UTILS.glob("*.py") if p.name != "__init__.py"}
    assert folders | files <= set(RANKS), "add new layers to RANKS in this test and to docs/architecture.md"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_imports_go_down_only(path):
    own = _layer_of(str(path.relative_to(MODULE_UTILS).with_suffix("")).replace("/", "."))
    for name in _imports(_tree(path)):
        if name.startswith(PREFIX):
            target = _layer_of(name[len(PREFIX):])
            assert RANKS[target] <= RANKS[own], "%s (layer %s) imports %s (layer %s)" % (path.name, own, name, target)
        if name == "ansible" or name.startswith("ansible."):
            assert own == "module_support", "%s imports %s: only module_support.py may import ansible" % (path.name, name)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_python39_and_future_annotations(path):
    tree = _tree(path)
    futures = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert any(a.name == "annotations" for n in futures for a in n.names), "%s lacks 'from __future__ import annotations'" % path


def _environment_reads(tree):
    """Yield line numbers where the environment is read for behaviour (copying it for a child is fine)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr == "getenv":
            yield node.lineno
        target = node.value if isinstance(node, (ast.Subscript, ast.Attribute)) else None
        if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "os"
                and target.attr == "environ"):
            yield node.lineno


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_library_never_prints_exits_or_reads_environment(path):
    tree = _tree(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("print", "exit", "quit"), "%s:%d calls %s()" % (path, node.lineno, node.func.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            assert pair not in (("sys", "exit"), ("sys", "stdout"), ("sys", "stderr")), "%s:%d uses %s.%s" % ((path, node.lineno) + pair)
    lines = list(_environment_reads(tree))
    assert not lines, "%s reads os.environ for behaviour at line(s) %s" % (path, lines)
