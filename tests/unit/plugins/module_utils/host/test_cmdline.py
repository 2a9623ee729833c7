"""host/cmdline.py: composefs= parsing (bootc status.rs test_composefs_parsing, test_find_in_cmdline)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.host import cmdline
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

# The digest used by bootc's status.rs tests.
DIGEST = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52"


@pytest.mark.parametrize("value, verity, allowed", [
    pytest.param(DIGEST, DIGEST, False, id="plain-digest-verity-required"),
    pytest.param("?" + DIGEST, DIGEST, True, id="question-mark-missing-verity-allowed"),
])
def test_composefs_value(value, verity, allowed):
    param = cmdline.parse_composefs_value(value)
    assert param.verity == verity
    assert param.missing_verity_allowed is allowed
    assert param.render() == "composefs=" + value


@pytest.mark.parametrize("text, verity, allowed", [
    pytest.param("root=UUID=abc123 rw composefs=" + DIGEST, DIGEST, False, id="at-end"),
    pytest.param("root=UUID=abc123 rw composefs=?" + DIGEST, DIGEST, True, id="at-end-optional"),
    pytest.param("root=UUID=abc123 rw quiet", None, None, id="absent"),
    pytest.param("", None, None, id="empty-cmdline"),
    pytest.param("quiet composefs=%s loglevel=3" % DIGEST, DIGEST, False, id="in-the-middle"),
    pytest.param("composefs=?%s root=UUID=abc123 quiet" % DIGEST, DIGEST, True, id="at-beginning-optional"),
    pytest.param("composefs_backup=%s root=UUID=abc123" % DIGEST, None, None, id="similar-key-is-not-a-match"),
    pytest.param("composefs rw", None, None, id="flag-without-value"),
    pytest.param("composefs= rw", None, None, id="empty-value"),
    pytest.param("composefs=? rw", None, None, id="only-question-mark"),
    pytest.param("composefs=aaa composefs=bbb", "aaa", False, id="first-one-wins"),
    pytest.param('a="x y" composefs=abc\n', "abc", False, id="quotes-and-newline"),
])
def test_find_composefs(text, verity, allowed):
    param = cmdline.find_composefs(text)
    if verity is None:
        assert param is None
    else:
        assert (param.verity, param.missing_verity_allowed) == (verity, allowed)


def test_split_keeps_quoted_spaces_and_other_params():
    parsed = cmdline.parse_cmdline('root=UUID=6b2f rw  dyndbg="file x.c +p" "quoted key=a b" composefs=?abc quiet')
    assert [p.raw for p in parsed.params] == ["root=UUID=6b2f", "rw", 'dyndbg="file x.c +p"', '"quoted key=a b"',
                                              "composefs=?abc", "quiet"]
    assert parsed.find("dyndbg").value == "file x.c +p"
    assert parsed.find("quoted key").value == "a b"
    assert parsed.find("rw").value is None
    assert parsed.find("root").value == "UUID=6b2f"
    assert [p.raw for p in parsed.other_params] == ["root=UUID=6b2f", "rw", 'dyndbg="file x.c +p"', '"quoted key=a b"', "quiet"]
    assert parsed.composefs == cmdline.ComposefsParam(verity="abc", missing_verity_allowed=True)


def test_dash_and_underscore_are_equivalent_in_keys():
    parsed = cmdline.parse_cmdline("rd.systemd.mount-extra=x systemd.mount_extra=y")
    assert parsed.find("rd.systemd.mount_extra").value == "x"


def test_load_cmdline(tmp_path):
    (tmp_path / "proc").mkdir()
    paths = load_host_paths(tmp_path)
    assert cmdline.load_cmdline(paths) is None
    (tmp_path / "proc" / "cmdline").write_text("BOOT_IMAGE=/vmlinuz composefs=%s rw\n" % DIGEST)
    assert cmdline.load_cmdline(paths).composefs.verity == DIGEST
