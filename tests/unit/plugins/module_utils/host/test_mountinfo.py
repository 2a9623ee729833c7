"""host/mountinfo.py: the source of the / mount (soft reboot detection, spec §2.2)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import mountinfo
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

VERITY = "ab" * 64
SYSROOT = "22 1 259:3 / /sysroot ro,relatime shared:2 - xfs /dev/vda3 ro,attr2\n"


@pytest.mark.parametrize("text, source, fstype, verity, transient", [
    pytest.param("1 0 0:27 / / ro,relatime shared:1 - overlay composefs:%s ro,lowerdir+=/x\n" % VERITY + SYSROOT,
                 "composefs:" + VERITY, "overlay", VERITY, False, id="composefs-root"),
    pytest.param("1 0 0:27 / / rw shared:1 - overlay transient:composefs=%s rw\n" % VERITY,
                 "transient:composefs=" + VERITY, "overlay", VERITY, True, id="transient-root"),
    pytest.param("1 0 253:0 / / rw - xfs /dev/mapper/root rw\n", "/dev/mapper/root", "xfs", None, False, id="not-composefs"),
    pytest.param("1 0 0:27 / / rw - overlay composefs:aa rw\n7 1 0:28 / / rw master:3 - overlay composefs:bb rw\n",
                 "composefs:bb", "overlay", "bb", False, id="last-mount-of-root-wins"),
    pytest.param("1 0 0:27 / / rw - tmpfs my\\040root rw\n", "my root", "tmpfs", None, False, id="octal-escape"),
])
def test_parse_root_mount(text, source, fstype, verity, transient):
    mount = mountinfo.parse_root_mount(text)
    assert (mount.source, mount.fstype, mount.verity, mount.transient) == (source, fstype, verity, transient)


def test_no_root_mount():
    assert mountinfo.parse_root_mount(SYSROOT) is None
    assert mountinfo.parse_root_mount("") is None


@pytest.mark.parametrize("text", [
    pytest.param("1 0 0:27 / / rw overlay composefs:x rw\n", id="no-separator"),
    pytest.param("1 0 0:27 / / rw -\n", id="nothing-after-separator"),
    pytest.param("1 0 0:27\n", id="truncated"),
])
def test_malformed_line(text):
    with pytest.raises(FormatError):
        mountinfo.parse_root_mount(text)


def test_load_root_mount_names_the_file(tmp_path):
    paths = load_host_paths(tmp_path)
    assert mountinfo.load_root_mount(paths) is None
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text("garbage\n")
    with pytest.raises(FormatError) as err:
        mountinfo.load_root_mount(paths)
    assert err.value.path == paths.mountinfo_file
