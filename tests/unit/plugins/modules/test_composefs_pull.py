"""plugins/modules/composefs_pull.py: argument handling, result shape, check mode, failures, docs vs argspec.

The module runs in-process (``patch_module_args``); its JSON result is read from stdout. Images are
ocigen OCI layouts read by real skopeo; the pull itself is tested in depth in
operations/test_pull.py, here only what the module adds.
"""

import hashlib
import json
import os

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.module_utils.oci import reference, skopeo
from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull
from ansible_collections.bootc.composefs.plugins.modules import composefs_pull
from ansible_collections.bootc.composefs.tests.tools import ocigen
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder

OWN_OPTIONS = {"image", "transport", "tag", "pull_policy", "platform", "authfile", "creds", "tls_verify", "cert_dir",
               "via_containers_storage", "progress_file", "lock_timeout"}


def _run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            composefs_pull.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture(name="host")
def fixture_host(tmp_path):
    root = tmp_path / "root"
    repo_builder.RepoBuilder(root / "sysroot" / "composefs")
    built = ocigen.write_bootc_image(str(tmp_path / "os"), version="7", tag="7")
    return {"root": str(root), "image": "oci:%s:7" % (tmp_path / "os"), "built": built}


def _tree_digest(root):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, root).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def test_result_shape_and_idempotence(capsys, host):
    code, first = _run(capsys, {"root": host["root"], "image": host["image"]})
    assert code == 0 and first["changed"] is True and "failed" not in first
    documented = set(yaml.safe_load(composefs_pull.RETURN)) - {"failure"}
    assert documented == set(first) - {"changed", "check_mode", "invocation"}
    assert first["manifest_digest"] == host["built"]["manifest_digest"]
    assert first["tag"] == "localhost/bootc-" + host["built"]["manifest_digest"]
    assert first["layers_total"] == len(host["built"]["diff_ids"]) == len(first["layers_fetched"])
    assert first["commands"] == [["skopeo", "experimental-image-proxy"]]
    code, second = _run(capsys, {"root": host["root"], "image": host["image"]})
    assert code == 0 and second["changed"] is False and second["layers_fetched"] == []


def test_check_mode_writes_nothing(capsys, host):
    before = _tree_digest(host["root"])
    code, result = _run(capsys, {"root": host["root"], "image": host["image"], "_ansible_check_mode": True})
    assert code == 0 and result["changed"] is True and result["check_mode"] is True
    assert _tree_digest(host["root"]) == before
    assert all(action.startswith(("would ", "resolved ")) for action in result["actions"])


def test_creds_are_masked_everywhere(capsys, host):
    code, result = _run(capsys, {"root": host["root"], "image": host["image"], "creds": "someone:s3cr3t-pw"})
    assert code == 0
    assert result["commands"] == [["skopeo", "experimental-image-proxy", "--creds", skopeo.MASK]]
    assert "s3cr3t-pw" not in json.dumps(result)


def test_failure_names_its_class(capsys, host):
    code, result = _run(capsys, {"root": host["root"], "image": host["image"] + "-missing"})
    assert code == 1 and result["failed"] is True and result["failure"] == "not-found"
    assert "Traceback" not in result["msg"] and result["commands"] == [["skopeo", "experimental-image-proxy"]]
    code, result = _run(capsys, {"root": host["root"], "image": "ftp://x/y"})
    assert code == 1 and result["failure"] == "unknown-transport" and "unknown transport" in result["msg"]


def test_bad_choices_are_rejected(capsys, host):
    code, result = _run(capsys, {"root": host["root"], "image": host["image"], "pull_policy": "sometimes"})
    assert code == 1 and "pull_policy" in result["msg"]
    code, result = _run(capsys, {"root": host["root"], "image": "x", "transport": "ftp"})
    assert code == 1 and "transport" in result["msg"]


def test_documented_options_are_the_argspec():
    doc = yaml.safe_load(composefs_pull.DOCUMENTATION)
    assert set(doc["options"]) == OWN_OPTIONS
    assert "bootc.composefs.common.HOST_PATHS" in doc["extends_documentation_fragment"]
    assert doc["options"]["transport"]["choices"] == list(reference.PULL_TRANSPORTS)
    assert doc["options"]["pull_policy"]["choices"] == list(pull.POLICIES)
    assert doc["options"]["pull_policy"]["default"] == pull.POLICY_MISSING
    assert doc["options"]["lock_timeout"]["default"] == pull.LOCK_TIMEOUT_SECONDS
    assert doc["attributes"]["check_mode"]["support"] == "partial"
    assert not set(module_support.HOST_PATHS) & OWN_OPTIONS


def test_every_return_key_is_documented():
    doc = yaml.safe_load(composefs_pull.RETURN)
    for name, entry in doc.items():
        assert {"description", "returned", "type", "sample"} <= set(entry), name
    failures = " ".join(doc["failure"]["description"])
    for failure in list(skopeo.FAILURE_CLASSES) + ["repository", "repository-locked", "bad-reference", "pull-failed"]:
        assert "V(%s)" % failure in failures, failure
