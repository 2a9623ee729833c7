"""host/imginfo.py: legacy .imginfo JSON (spec §1.5)."""

import json

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import imginfo
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

# Spec §1.5 example with the elided digests filled in.
SPEC_IMGINFO = (
    '{"config":{"created":"2025-11-30T10:00:00Z","architecture":"amd64","os":"linux","config":{"Labels":{"containers.bootc":"1"}},'
    '"rootfs":{"type":"layers","diff_ids":["sha256:' + "a" * 64 + '"]},"history":[]},'
    '"manifest":{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":'
    '"application/vnd.oci.image.config.v1+json","digest":"sha256:' + "c" * 64 + '","size":1234},"layers":[{"mediaType":'
    '"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:' + "d" * 64 + '","size":5678}],"annotations":'
    '{"org.opencontainers.image.version":"42.20251130.0"}}}'
)


def test_spec_example():
    info = imginfo.parse_imginfo(SPEC_IMGINFO)
    assert info.architecture == "amd64"
    assert info.created == "2025-11-30T10:00:00Z"
    assert info.version == "42.20251130.0"
    assert info.config_digest == "sha256:" + "c" * 64
    assert info.layer_digests == ("sha256:" + "d" * 64,)
    assert info.config["config"]["Labels"] == {"containers.bootc": "1"}


def test_optional_fields_absent():
    info = imginfo.parse_imginfo('{"config":{},"manifest":{"schemaVersion":2,"config":{"digest":"sha256:x"},"layers":[]}}')
    assert (info.architecture, info.created, info.version, info.layer_digests) == (None, None, None, ())


def _mutate(path, value):
    document = json.loads(SPEC_IMGINFO)
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document)


@pytest.mark.parametrize("text, message", [
    pytest.param(SPEC_IMGINFO[:-5], "not valid JSON", id="truncated"),
    pytest.param("[]", "JSON object", id="array"),
    pytest.param(_mutate(["config"], KeyError), "'config'", id="no-config"),
    pytest.param(_mutate(["manifest"], "x"), "'manifest'", id="manifest-not-object"),
    pytest.param(_mutate(["manifest", "schemaVersion"], True), "schemaVersion", id="schema-bool"),
    pytest.param(_mutate(["manifest", "config", "digest"], 5), "digest", id="config-digest-not-string"),
    pytest.param(_mutate(["manifest", "layers"], {}), "layers", id="layers-not-list"),
])
def test_malformed(text, message):
    with pytest.raises(FormatError, match=message):
        imginfo.parse_imginfo(text)


def test_load_imginfo(tmp_path):
    verity = "cd" * 64
    paths = load_host_paths(tmp_path)
    assert imginfo.load_imginfo(paths, verity) is None
    state = tmp_path / "sysroot" / "state" / "deploy" / verity
    state.mkdir(parents=True)
    (state / (verity + ".imginfo")).write_text(SPEC_IMGINFO)
    assert imginfo.load_imginfo(paths, verity).architecture == "amd64"
    (state / (verity + ".imginfo")).write_text("{")
    with pytest.raises(FormatError) as err:
        imginfo.load_imginfo(paths, verity)
    assert err.value.path == imginfo.imginfo_path(paths, verity)
