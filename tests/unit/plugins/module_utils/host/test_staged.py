"""host/staged.py: /run/composefs/staged-deployment (spec §1.6)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import staged
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

VERITY = "9f" * 64


@pytest.mark.parametrize("text, locked", [
    pytest.param('{"depl_id":"%s","finalization_locked":false}' % VERITY, False, id="spec-example"),
    pytest.param('{"depl_id":"%s","finalization_locked":true}' % VERITY, True, id="download-only"),
    pytest.param('{ "finalization_locked": false, "depl_id": "%s", "future": 1 }' % VERITY, False, id="unknown-member-ignored"),
])
def test_parse(text, locked):
    marker = staged.parse_staged_deployment(text)
    assert marker.verity == marker.depl_id == VERITY
    assert marker.download_only is marker.finalization_locked is locked


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param('{"depl_id":"x"}', id="no-finalization-locked"),
    pytest.param('{"finalization_locked":false}', id="no-depl-id"),
    pytest.param('{"depl_id":"","finalization_locked":false}', id="empty-depl-id"),
    pytest.param('{"depl_id":"x","finalization_locked":0}', id="locked-not-bool"),
    pytest.param('["x"]', id="not-an-object"),
    pytest.param('{"depl_id":"x","finalization_locked":fal', id="truncated"),
])
def test_malformed(text):
    with pytest.raises(FormatError):
        staged.parse_staged_deployment(text)


def test_load(tmp_path):
    paths = load_host_paths(tmp_path)
    assert staged.load_staged_deployment(paths) is None
    marker = tmp_path / "run" / "composefs" / "staged-deployment"
    marker.parent.mkdir(parents=True)
    marker.write_text('{"depl_id":"%s","finalization_locked":false}' % VERITY)
    assert staged.load_staged_deployment(paths).depl_id == VERITY
    marker.write_text("{}")
    with pytest.raises(FormatError) as err:
        staged.load_staged_deployment(paths)
    assert err.value.path == str(marker)
