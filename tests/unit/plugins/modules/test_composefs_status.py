"""plugins/modules/composefs_status.py: argument handling, result shape, check mode, failures, docs vs argspec.

The module runs in-process (``patch_module_args``); its JSON result is read from stdout. Hosts are
hand-built (tests/unit/builders/host_tree.py); what the module reports about them in depth is
tested in operations/test_status.py, here only what the module adds.
"""

import hashlib
import importlib
import json
import os

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bootc.composefs.plugins.doc_fragments import common
from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.modules import composefs_status

HOST_TREE = "ansible_collections.bootc.composefs.tests.unit.builders.host_tree"


def _run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            composefs_status.main()
    result = json.loads(capsys.readouterr().out)
    return caught.value.code, result


@pytest.fixture(name="host_root")
def fixture_host_root(tmp_path):
    """A GRUB host: booted B, rollback R (no repository: metadata unresolved, which is a finding)."""
    host_tree = importlib.import_module(HOST_TREE)
    tree = host_tree.HostTree(tmp_path / "root")
    booted, rollback = host_tree.fake_verity(1), host_tree.fake_verity(2)
    tree.type1_deployment(booted, "bootc_simos-2-1.conf", sort_key="bootc-simos-0", version="2")
    tree.type1_deployment(rollback, "bootc_simos-1-0.conf", sort_key="bootc-simos-1", version="1")
    tree.booted(booted)
    return str(tree.root), booted, rollback


def _tree_digest(root):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest.update(("%s %o %d\n" % (os.path.relpath(path, root), info.st_mode, info.st_mtime_ns)).encode())
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def test_result_shape_and_facts(capsys, host_root, monkeypatch):
    warned = []
    monkeypatch.setattr(composefs_status.AnsibleModule, "warn", lambda self, text: warned.append(text))
    root, booted, rollback = host_root
    code, result = _run(capsys, {"root": root})
    assert code == 0 and result["changed"] is False and "failed" not in result
    assert set(result["ansible_facts"]["composefs"]) == {"host", "deployments", "repository", "tags", "findings"}
    for key in ("host", "deployments", "repository", "tags", "findings"):
        assert result[key] == result["ansible_facts"]["composefs"][key]
    assert (result["host"]["booted"], result["host"]["rollback"], result["host"]["staged"]) == (booted, rollback, None)
    assert [d["role"] for d in result["deployments"]] == ["booted", "rollback"]
    assert {f["code"] for f in result["findings"]} == {"missing-repository", "unresolved-image"}
    assert warned == ["3 finding(s) on this host: missing-repository x1, unresolved-image x2; see the 'findings' result"]


def test_check_mode_gives_the_same_result_and_writes_nothing(capsys, host_root):
    root = host_root[0]
    before = _tree_digest(root)
    _code, normal = _run(capsys, {"root": root, "usage": True})
    _code, checked = _run(capsys, {"root": root, "usage": True, "_ansible_check_mode": True})
    assert _tree_digest(root) == before
    for key in ("host", "deployments", "repository", "tags", "findings"):
        assert checked[key] == normal[key]


def test_overrides_are_used(capsys, host_root, tmp_path):
    root, _booted, rollback = host_root
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=/dev/vda2 composefs=%s\n" % rollback)
    _code, result = _run(capsys, {"root": root, "cmdline_file": str(cmdline), "bootloader": "grub",
                                  "sysroot": os.path.join(root, "sysroot")})
    assert result["host"]["booted"] == rollback
    assert result["host"]["bootloader_source"] == "override"


def test_not_a_composefs_host_fails_with_a_message(capsys, tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("root=/dev/sda1 ro\n")
    code, result = _run(capsys, {"root": str(tmp_path)})
    assert code == 1 and result["failed"] is True
    assert "not a bootc composefs host" in result["msg"] and "Traceback" not in result["msg"]
    assert result["host"]["root"] == str(tmp_path)


def test_bad_bootloader_choice_is_rejected(capsys, host_root):
    code, result = _run(capsys, {"root": host_root[0], "bootloader": "lilo"})
    assert code == 1 and "bootloader" in result["msg"]


def test_documented_options_are_the_argspec():
    fragment = yaml.safe_load(common.ModuleDocFragment.HOST_PATHS)["options"]
    assert set(fragment) == set(module_support.HOST_PATHS)
    for name, spec in module_support.HOST_PATHS.items():
        assert fragment[name]["type"] == spec["type"], name
        assert fragment[name].get("default") == spec.get("default"), name
        assert fragment[name].get("choices") == spec.get("choices"), name
    own = yaml.safe_load(composefs_status.DOCUMENTATION)["options"]
    assert set(own) == {"usage"}


def test_host_paths_are_the_load_host_paths_keywords():
    paths = importlib.import_module("ansible_collections.bootc.composefs.plugins.module_utils.host.paths")
    import inspect  # pylint: disable=import-outside-toplevel
    keywords = set(inspect.signature(paths.load_host_paths).parameters)
    assert set(module_support.HOST_PATHS) - {"bootloader"} <= keywords


def test_every_return_key_is_documented():
    doc = yaml.safe_load(composefs_status.RETURN)
    facts_keys = {"host", "deployments", "repository", "tags", "findings"}
    assert facts_keys | {"ansible_facts"} == set(doc)

    def walk(entries, where):
        for name, entry in entries.items():
            assert {"description", "returned", "type"} <= set(entry), "%s.%s" % (where, name)
            if "contains" in entry:
                walk(entry["contains"], "%s.%s" % (where, name))
            else:
                assert "sample" in entry, "%s.%s" % (where, name)
    walk(doc, "RETURN")


def test_every_finding_code_is_documented():
    findings = importlib.import_module("ansible_collections.bootc.composefs.plugins.module_utils.host.findings")
    images = importlib.import_module("ansible_collections.bootc.composefs.plugins.module_utils.host.images")
    status = importlib.import_module("ansible_collections.bootc.composefs.plugins.module_utils.operations.status")
    text = " ".join(yaml.safe_load(composefs_status.RETURN)["findings"]["description"])
    for code in findings.CODES + status.CODES + (images.UNRESOLVED_IMAGE,):
        assert "C(%s)" % code in text, code
