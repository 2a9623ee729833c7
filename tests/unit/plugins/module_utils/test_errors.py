from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError


def test_format_error_renders_path_and_offset():
    err = FormatError("bad magic", offset=0x20).with_path("objects/ab/cd")
    assert str(err) == "objects/ab/cd: offset 0x20: bad magic"
