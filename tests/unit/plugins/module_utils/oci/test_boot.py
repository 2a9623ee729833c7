# -*- coding: utf-8 -*-
"""oci/boot and oci/selabel: boot EROFS images, boot resources, SELinux labelling.

The boot image must be byte-identical to ``mkcomposefs --min-version=1`` run on the layers
extracted by GNU tar with composefs-boot's rules applied by plain file operations (``/boot`` and
``/sysroot`` emptied, their mtime seconds taken from ``/usr``). SELinux labels are derived by hand
from a small policy written here (comments give the winning spec line) and set on the extracted
tree with ``setxattr`` before mkcomposefs runs. Boot digests are checked with ``sha256sum``.
"""

import os
import pathlib
import shutil

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, image, importer, selabel
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.oci import oci_testimages as images

BOOT_KEY = "composefs.image.boot.v1"


def _object(repo, object_id):
    return pathlib.Path(repo.path, "objects", object_id[:2], object_id[2:]).read_bytes()


def _tars(info):
    return list(info["tars"])


def test_boot_image_is_what_mkcomposefs_makes_of_the_boot_tree(layouts, make_repo, composefs_oracle, tmp_path):
    layout_dir, info = layouts.get("boot")
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir, tag="os:1")
    boot_id = boot.generate_boot_image(repo, result.manifest_digest)
    assert boot_id != result.image_object_id
    source = images.extract_merged(tmp_path / "merged", _tars(info), tmp_path, boot=True)
    theirs, _stored = images.mkcomposefs_image(composefs_oracle, source, tmp_path)
    assert _object(repo, boot_id) == theirs
    assert os.readlink(os.path.join(repo.path, "images", boot_id)) == "../objects/%s/%s" % (boot_id[:2], boot_id[2:])
    dump = images.composefs_info_dump(composefs_oracle, theirs, tmp_path)
    assert b"/boot/EFI" not in dump and b"/sysroot/ostree" not in dump


def test_generate_boot_image_records_the_key_and_is_idempotent(layouts, make_repo):
    layout_dir, _info = layouts.get("boot")
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir, tag="os:1")
    boot_id = boot.generate_boot_image(repo, result.manifest_digest)
    opened = image.open_image(repo, "os:1")
    assert opened.erofs_refs == {"composefs.image.v1": result.image_object_id, BOOT_KEY: boot_id}
    assert opened.image_verity("boot") == boot_id
    assert opened.config_object_id != result.config_object_id and opened.manifest_object_id != result.manifest_object_id
    before = images.repo_snapshot(repo.path)
    assert boot.generate_boot_image(repo, result.manifest_digest) == boot_id
    assert images.repo_snapshot(repo.path) == before
    # a second mode gets its own key; the default one is kept
    keep = boot.generate_boot_image(repo, result.manifest_digest, "keep-user-xattrs")
    refs = image.open_image(repo, "os:1").erofs_refs
    assert refs[BOOT_KEY] == boot_id and refs[BOOT_KEY + ".xattrs=keep-user-xattrs"] == keep
    # re-importing keeps the boot keys
    assert importer.import_oci_layout(repo, layout_dir, tag="os:1").changed is False


def test_keep_user_xattrs_mode(make_repo, composefs_oracle, tmp_path):
    layers = images.boot_layers(with_uki=False)
    layers[0].append(("file", "usr/lib/tagged", images.content(90, 51), {"xattrs": {"user.keep": b"yes", "trusted.x": b"no"}}))
    tars = images.build_tars(layers)
    images.write_layout_image(str(tmp_path / "l"), tars, tag="x")
    repo = make_repo()
    result = importer.import_oci_layout(repo, str(tmp_path / "l"))
    keep = boot.generate_boot_image(repo, result.manifest_digest, "keep-user-xattrs")
    source = images.extract_merged(tmp_path / "merged", tars, tmp_path, boot=True, keep_user_xattrs=True)
    theirs, _stored = images.mkcomposefs_image(composefs_oracle, source, tmp_path)
    assert _object(repo, keep) == theirs
    assert b"user.keep=yes" in images.composefs_info_dump(composefs_oracle, theirs, tmp_path)


def test_boot_resources_and_digest(layouts, make_repo, tmp_path):
    layout_dir, _info = layouts.get("boot")
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir)
    found = boot.boot_resources(repo, result.manifest_digest)
    assert [(r.kind, r.path, r.kver) for r in found] == [
        ("uki", "/boot/EFI/Linux/test.efi", None),
        ("uki-addon", "/boot/EFI/Linux/test.efi.extra.d/dbg.addon.efi", None),
        ("vmlinuz", "/usr/lib/modules/6.1.0-test/vmlinuz", "6.1.0-test"),
    ]
    layer = {entry[1]: entry[2] for entry in images.boot_layers()[0] if entry[0] == "file"}
    assert found[0].read(repo) == {"/boot/EFI/Linux/test.efi": layer["boot/EFI/Linux/test.efi"]}
    kernel = found[2].read(repo)
    assert kernel == {"vmlinuz": layer["usr/lib/modules/6.1.0-test/vmlinuz"],
                      "initramfs.img": layer["usr/lib/modules/6.1.0-test/initramfs.img"],
                      "os-release": layer["usr/lib/os-release"]}
    both = tmp_path / "both"
    both.write_bytes(kernel["vmlinuz"] + kernel["initramfs.img"])
    assert found[2].boot_digest(repo) == images.run(["sha256sum", str(both)]).stdout.split()[0].decode()
    assert boot.boot_digest(kernel["vmlinuz"], kernel["initramfs.img"]) == found[2].boot_digest(repo)


def _dir(mtime=0, nsec=0):
    return tree.Directory(tree.Stat(mode=0o40755, mtime=mtime, mtime_nsec=nsec))


def _file(data=b"x", **stat):
    return tree.RegularFile(tree.Stat(mode=0o100644, **stat), size=len(data), content=data)


def _root():
    root = _dir()
    root.entries = {b"usr": _dir(1000, 5), b"boot": _dir(7, 9), b"sysroot": _dir(8, 10)}
    root.entries[b"boot"].entries[b"vmlinuz"] = _file(xattrs={b"security.selinux": b"boot_t"})
    root.entries[b"usr"].entries[b"f"] = _file(xattrs={b"security.selinux": b"usr_t", b"security.capability": b"c"})
    return root


def test_transform_for_boot_on_a_tree():
    root = _root()
    boot.transform_for_boot(root, None)
    assert root.entries[b"boot"].entries == {} and root.entries[b"sysroot"].entries == {}
    assert (root.entries[b"boot"].stat.mtime, root.entries[b"boot"].stat.mtime_nsec) == (1000, 9)
    assert (root.entries[b"sysroot"].stat.mtime, root.entries[b"sysroot"].stat.mtime_nsec) == (1000, 10)
    assert root.entries[b"usr"].entries[b"f"].stat.xattrs == {b"security.capability": b"c"}  # no policy: labels go


@pytest.mark.parametrize("missing", [b"boot", b"sysroot", b"usr"])
def test_transform_for_boot_needs_the_directories(missing):
    root = _root()
    del root.entries[missing]
    with pytest.raises(FormatError, match="/%s" % missing.decode()):
        boot.transform_for_boot(root, None)


def test_uki_that_is_not_a_file_is_refused():
    root = _root()
    root.entries[b"boot"].entries[b"EFI"] = _dir()
    root.entries[b"boot"].entries[b"EFI"].entries[b"Linux"] = linux = _dir()
    linux.entries[b"x.efi"] = tree.Symlink(tree.Stat(mode=0o120777), target=b"y")
    with pytest.raises(FormatError, match="x.efi is not a regular file"):
        boot.transform_for_boot(root, None)


def test_type1_entry_in_the_image():
    root = _root()
    loader = root.entries[b"boot"].entries[b"loader"] = _dir()
    loader.entries[b"entries"] = entries = _dir()
    entries.entries[b"a.conf"] = _file(b"title A\nlinux /boot/vmlinuz\ninitrd /nowhere\n")
    with pytest.raises(FormatError, match="/nowhere"):
        boot.find_boot_resources(root, lambda node: node.content)
    entries.entries[b"a.conf"] = _file(b"title A\nlinux /boot/vmlinuz\nlinuxefi /x\n")
    found = boot.find_boot_resources(root, lambda node: node.content)
    assert [(r.kind, sorted(r.files)) for r in found] == [("type1", ["/boot/loader/entries/a.conf", "/boot/vmlinuz"])]


# --- SELinux ------------------------------------------------------------------------------------

FILE_CONTEXTS = """\
# spec lines; the number in each comment below is the line's priority rank (higher wins)
/.*\t\t\tsystem_u:object_r:default_t:s0
/\t\t-d\tsystem_u:object_r:root_t:s0
/usr(/.*)?\t\tsystem_u:object_r:usr_t:s0
/usr/bin(/.*)?\t\tsystem_u:object_r:bin_t:s0
/usr/bin/tool\t--\tsystem_u:object_r:tool_exec_t:s0
/usr/lib/modules(/.*)?\tsystem_u:object_r:modules_object_t:s0
/etc(/.*)?\t\tsystem_u:object_r:etc_t:s0
/etc/hostname\t--\t<<none>>
/var/home(/.*)?\t\tsystem_u:object_r:home_t:s0
/dev/null\t-c\tsystem_u:object_r:null_device_t:s0
/usr/lib/[^/]*\\.so(\\.[0-9]+)*\t--\tsystem_u:object_r:lib_t:s0

/usr/share/[[:alpha:]]+\t-d\tsystem_u:object_r:alpha_t:s0
/run/.*\t\t<<none>>
"""
LOCAL = "/opt/special(/.*)?\tsystem_u:object_r:special_t:s0\n/usr/bin/tool\t--\tsystem_u:object_r:local_tool_t:s0\n"
HOMEDIRS = "/var/home/[^/]+/\\.ssh(/.*)?\tsystem_u:object_r:ssh_home_t:s0\n"
POLICY = "etc/selinux/testpol/contexts/files/"

# path -> label by hand: the last spec line (file_contexts, then .local, then .homedirs) matching
# "<path><type char>"; None = no label (<<none>> or no line)
EXPECTED_LABELS = {
    "": "root_t",  # "/ -d" beats "/.*"
    "usr": "usr_t", "usr/bin": "bin_t", "usr/bin/sh": "bin_t", "usr/bin/link": "bin_t",
    "usr/bin/tool": "local_tool_t",  # .local overrides file_contexts
    "usr/lib/tool-hard": "usr_t",  # hard link of usr/bin/tool with another label: the link is broken
    "usr/lib": "usr_t", "usr/lib/libfoo.so.1": "lib_t", "usr/lib/libbar.txt": "usr_t",
    "usr/lib/modules": "modules_object_t", "usr/lib/modules/6.1": "modules_object_t",
    "usr/lib/modules/6.1/vmlinuz": "modules_object_t",
    "usr/lib64": "usr_t",  # alias of /usr/lib (subs_dist)
    "usr/lib64/libz.so": "lib_t",  # looked up as /usr/lib/libz.so under the aliased directory
    "usr/share": "usr_t", "usr/share/docs": "alpha_t", "usr/share/doc2": "usr_t", "usr/share/docs/readme": "usr_t",
    "etc": "etc_t", "etc/hostname": None, "etc/passwd": "etc_t",
    "home": "home_t", "home/alice": "home_t", "home/alice/.ssh": "ssh_home_t",
    "home/alice/.ssh/authorized_keys": "ssh_home_t", "home/alice/notes": "home_t",
    "opt": "default_t", "opt/special": "special_t", "opt/special/x": "special_t", "opt/other": "default_t",
    "dev": "default_t", "dev/null": "null_device_t", "run": "default_t", "boot": "default_t", "sysroot": "default_t",
}


def selinux_layers():
    config = b"# SELinux\nSELINUX=enforcing\n  selinuxtype = testpol  \nSELINUXTYPE=ignored\n"
    entries = [("dir", d) for d in (
        "usr", "usr/bin", "usr/lib", "usr/lib/modules", "usr/lib/modules/6.1", "usr/lib64", "usr/share", "usr/share/docs",
        "usr/share/doc2", "etc", "etc/selinux", "etc/selinux/testpol", "etc/selinux/testpol/contexts", POLICY.rstrip("/"),
        "home", "home/alice", "home/alice/.ssh", "opt", "opt/special", "dev", "run", "boot", "sysroot")]
    entries += [
        ("file", "usr/bin/tool", images.content(3000, 61)), ("hardlink", "usr/lib/tool-hard", "usr/bin/tool"),
        ("file", "usr/bin/sh", b"sh"), ("symlink", "usr/bin/link", "sh"),
        ("file", "usr/lib/libfoo.so.1", images.content(100, 62)), ("file", "usr/lib/libbar.txt", b"t"),
        ("file", "usr/lib/modules/6.1/vmlinuz", images.content(200, 63)), ("file", "usr/lib64/libz.so", b"z"),
        ("file", "usr/share/docs/readme", b"r"), ("file", "etc/hostname", b"h\n"), ("file", "etc/passwd", b"root\n"),
        ("file", "etc/selinux/config", config), ("file", POLICY + "file_contexts", FILE_CONTEXTS.encode()),
        ("file", POLICY + "file_contexts.local", LOCAL.encode()), ("file", POLICY + "file_contexts.homedirs", HOMEDIRS.encode()),
        ("file", POLICY + "file_contexts.subs", b"/home /var/home\n"),
        ("file", POLICY + "file_contexts.subs_dist", b"# dist\n/usr/lib64 /usr/lib\n"),
        ("file", "home/alice/.ssh/authorized_keys", b"k"), ("file", "home/alice/notes", b"n"),
        ("file", "opt/special/x", b"x"), ("file", "opt/other", b"o"), ("chr", "dev/null", 1, 3), ("file", "run/tmp", b"t"),
        ("file", "boot/grub.cfg", b"g"),
    ]
    return [entries]


def _expected_label(rel):
    if rel.startswith("etc/selinux"):
        return "etc_t"
    return EXPECTED_LABELS[rel]


def test_selinux_labels_against_mkcomposefs(make_repo, composefs_oracle, tmp_path):
    tars = images.build_tars(selinux_layers())
    images.write_layout_image(str(tmp_path / "l"), tars, tag="se")
    repo = make_repo()
    result = importer.import_oci_layout(repo, str(tmp_path / "l"))
    boot_id = boot.generate_boot_image(repo, result.manifest_digest)
    source = images.extract_merged(tmp_path / "merged", tars, tmp_path, boot=True)
    # the two names of usr/bin/tool get different labels: give the second its own inode, as composefs-rs does
    hard = os.path.join(source, "usr/lib/tool-hard")
    parent_mtime = os.lstat(os.path.dirname(hard)).st_mtime_ns
    os.unlink(hard)
    shutil.copy2(os.path.join(source, "usr/bin/tool"), hard)
    os.utime(os.path.dirname(hard), ns=(parent_mtime, parent_mtime))
    paths = {source}
    for dirpath, dirnames, filenames in os.walk(source):
        paths.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    for path in sorted(paths):
        label = _expected_label(os.path.relpath(path, source).lstrip("."))  # KeyError: a path without expectation
        if label is not None:
            os.setxattr(path, "security.selinux", ("system_u:object_r:%s:s0" % label).encode(), follow_symlinks=False)
    assert len(paths) == len(EXPECTED_LABELS) + 10  # + /etc/selinux and the 9 paths below it
    theirs, _stored = images.mkcomposefs_image(composefs_oracle, source, tmp_path)
    assert _object(repo, boot_id) == theirs
    dump = images.composefs_info_dump(composefs_oracle, theirs, tmp_path).decode()
    assert "@" not in dump.split("/usr/lib/tool-hard ", 1)[1].split(" ", 2)[1]  # the hard link was broken


def _policy_tree(file_contexts, config=b"SELINUXTYPE=p\n", extra=None):
    root = _dir()
    files = _dir()
    files.entries[b"file_contexts"] = _file(file_contexts)
    for name, data in (extra or {}).items():
        files.entries[name] = _file(data)
    contexts = _dir()
    contexts.entries[b"files"] = files
    policy = _dir()
    policy.entries[b"contexts"] = contexts
    selinux_dir = _dir()
    selinux_dir.entries = {b"config": _file(config), b"p": policy}
    root.entries[b"etc"] = _dir()
    root.entries[b"etc"].entries[b"selinux"] = selinux_dir
    return root


def _read(node):
    return node.content


def test_policy_lookup_rules():
    policy = selabel.load_policy(_policy_tree(
        b"/a(/.*)?\tA\n/a/b\t-d\tB\n/a/c\t-l\tC\n/a/n\t<<none>>\n/x[[:digit:]]+\tX\n/y{2}z\tY\n"), _read)
    assert policy.lookup(b"/a", b"d") == b"A"
    assert policy.lookup(b"/a/b", b"d") == b"B" and policy.lookup(b"/a/b", b"-") == b"A"
    assert policy.lookup(b"/a/c", b"l") == b"C" and policy.lookup(b"/a/c", b"-") == b"A"
    assert policy.lookup(b"/a/n", b"-") is None and policy.lookup(b"/q", b"-") is None
    assert policy.lookup(b"/x12", b"-") == b"X" and policy.lookup(b"/xa", b"-") is None
    assert policy.lookup(b"/yyz", b"-") == b"Y" and policy.lookup(b"/yz", b"-") is None
    assert policy.lookup(b"/a/\n", b"d") == b"A"  # '.' matches any byte, newline too
    assert policy.lookup(b"/a\n", b"d") is None


@pytest.mark.parametrize("regex, prefix", [
    ("/usr/lib(64)?/x", b"/usr/lib"), ("/etc/foo\\.d(/.*)?", b"/etc/foo.d"), ("/a+b", b"/a"), ("/ab?", b"/a"),
    ("/ab*", b"/a"), ("/ab{2}", b"/a"), ("/a|/b", b""), ("/(a|b)c", b"/"), ("/dev/tty[0-9]*", b"/dev/tty"),
    ("/a\\d", b"/a"), ("[/]x", b""), ("/x\\|y", b"/x|y"),
])
def test_literal_prefix(regex, prefix):
    assert selabel.literal_prefix(regex) == prefix


@pytest.mark.parametrize("contexts, message", [
    (b"/a\n", "missing separator"), (b"/a -q X\n", "invalid type code"), (b"/a -d\n", "missing context"),
    (b"/a X Y\n", "trailing data"), (b"/a(\tX\n", "cannot be compiled"), (b"\xff X\n", "not UTF-8"),
])
def test_policy_errors(contexts, message):
    root = _policy_tree(contexts)
    root.entries[b"a"] = _file()
    with pytest.raises(FormatError, match=message):
        selabel.selabel(root, _read)


def test_no_policy_strips_labels():
    for root in (_policy_tree(b"/.* X\n", config=b"SELINUX=disabled\n"), _root()):
        root.entries[b"f"] = _file(xattrs={b"security.selinux": b"old", b"user.k": b"v"})
        assert selabel.selabel(root, _read) is False
        assert root.entries[b"f"].stat.xattrs == {b"user.k": b"v"}
    root = _policy_tree(b"/.* X\n")
    del root.entries[b"etc"].entries[b"selinux"].entries[b"p"]
    with pytest.raises(FormatError, match="/etc/selinux/p/contexts/files"):
        selabel.selabel(root, _read)
    root = _policy_tree(b"/.* X\n")
    del root.entries[b"etc"].entries[b"selinux"].entries[b"p"].entries[b"contexts"].entries[b"files"].entries[b"file_contexts"]
    with pytest.raises(FormatError, match="no .*file_contexts"):
        selabel.selabel(root, _read)


def test_hard_links_with_equal_labels_stay_linked():
    root = _policy_tree(b"/d(/.*)?\tD\n/e(/.*)?\tE\n")
    shared = _file()
    other = _file()
    root.entries[b"d"] = _dir()
    root.entries[b"d"].entries = {b"one": shared, b"two": shared, b"three": other}
    root.entries[b"e"] = _dir()
    root.entries[b"e"].entries = {b"four": other}
    assert selabel.selabel(root, _read) is True
    assert root.entries[b"d"].entries[b"one"] is root.entries[b"d"].entries[b"two"]
    assert shared.stat.xattrs[b"security.selinux"] == b"D"
    four = root.entries[b"e"].entries[b"four"]
    assert four is not other and four.stat.xattrs[b"security.selinux"] == b"E"
    assert other.stat.xattrs[b"security.selinux"] == b"D"
