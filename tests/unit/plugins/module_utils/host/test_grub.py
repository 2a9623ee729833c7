"""host/grub.py: GRUB user.cfg menuentries (bootc grub_menuconfig.rs and status.rs cases, spec §1.7, §6.3 case 3)."""

import textwrap

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import grub
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

SEARCH = 'search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"'
D1 = "f7415d75017a12a387a39d2281e033a288fc15775108250ef70a01dcadb93346"
D2 = "7e11ac46e3e022053e7226a20104ac656bf72d1a84e3a398b7cce70e9df188b6"

# status.rs test_sorted_uki_boot_entries: preamble and two (legacy, unprefixed) menuentries.
USER_CFG = textwrap.dedent('''
    if [ -f ${config_directory}/efiuuid.cfg ]; then
            source ${config_directory}/efiuuid.cfg
    fi

    menuentry "Fedora Bootc UKI: (%(d1)s)" {
        insmod fat
        insmod chain
        search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"
        chainloader /EFI/Linux/%(d1)s.efi
    }

    menuentry "Fedora Bootc UKI: (%(d2)s)" {
        insmod fat
        insmod chain
        search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"
        chainloader /EFI/Linux/%(d2)s.efi
    }
''') % {"d1": D1, "d2": D2}


def test_user_cfg_with_preamble_and_two_menuentries(grub_tree):
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg", USER_CFG)
    paths = load_host_paths(str(grub_tree.root))
    config = grub.load_user_cfg(paths, str(grub_tree.boot))
    assert config.menuentries == (
        grub.MenuEntry(title="Fedora Bootc UKI: (%s)" % D1, insmod=("fat", "chain"), chainloader="/EFI/Linux/%s.efi" % D1,
                       search=SEARCH[len("search "):]),
        grub.MenuEntry(title="Fedora Bootc UKI: (%s)" % D2, insmod=("fat", "chain"), chainloader="/EFI/Linux/%s.efi" % D2,
                       search=SEARCH[len("search "):]),
    )
    assert "source ${config_directory}/efiuuid.cfg" in config.preamble
    assert not config.has_password
    assert [grub.menuentry_verity(e) for e in config.menuentries] == [D1, D2]
    assert [grub.menuentry_artifact(e).prefixed for e in config.menuentries] == [False, False]
    assert grub.load_user_cfg(paths, str(grub_tree.boot), staged=True) is None


def test_menuconfig_parser_comments_and_extra_fields():
    text = textwrap.dedent('''
        if [ -f ${config_directory}/efiuuid.cfg ]; then
                source ${config_directory}/efiuuid.cfg
        fi

        # Skip this comment

        menuentry "Fedora 42: (Verity-42)" {
            insmod fat
            insmod chain
            # This should also be skipped
            search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"
            chainloader /EFI/Linux/%s.efi
        }

        menuentry "Fedora 43: (Verity-43)" {
            insmod fat
            insmod chain
            search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"
            chainloader /EFI/Linux/uki.efi
            extra_field1 this is extra
            extra_field2 this is also extra
        }
    ''') % D2
    entries = grub.parse_user_cfg(text).menuentries
    assert [e.title for e in entries] == ["Fedora 42: (Verity-42)", "Fedora 43: (Verity-43)"]
    assert entries[0].extra == ()
    assert entries[1].chainloader == "/EFI/Linux/uki.efi"
    assert entries[1].extra == (("extra_field1", "this is extra"), ("extra_field2", "this is also extra"))


@pytest.mark.parametrize("text, title", [
    pytest.param('menuentry "Title with \\"escaped quotes\\" inside" {\n chainloader /EFI/Linux/test.efi\n}\n',
                 'Title with \\"escaped quotes\\" inside', id="escaped-quotes-kept-verbatim"),
    pytest.param('menuentry "Test \\"first\\" and \\"second\\" quotes" {\n insmod fat\n}\n',
                 'Test \\"first\\" and \\"second\\" quotes', id="several-escaped-quotes"),
    pytest.param('menuentry "Path with \\\\ backslash" {\n insmod fat\n}\n', "Path with \\\\ backslash", id="escaped-backslash"),
    pytest.param("menuentry 'single quoted' {\n insmod fat\n}\n", "single quoted", id="single-quotes"),
])
def test_titles(text, title):
    entries = grub.parse_user_cfg(text).menuentries
    assert len(entries) == 1 and entries[0].title == title


def test_minimal_insmod_only_set_and_nested_braces():
    text = textwrap.dedent('''
        menuentry "Minimal Entry" {
            # Just a comment
        }
        menuentry "Insmod Only" {
            insmod fat
            insmod chain
            insmod ext2
        }
        menuentry "With Set Commands" --class fedora {
            set timeout=5
            set root=(hd0,1)
            insmod fat
            chainloader /EFI/Linux/test.efi
        }
        menuentry "Nested Braces" {
            if [ -f ${config_directory}/test.cfg ]; then
                source ${config_directory}/test.cfg
            fi
            insmod fat
            chainloader /EFI/Linux/test.efi
        }
    ''')
    minimal, insmod_only, with_set, nested = grub.parse_user_cfg(text).menuentries
    assert (minimal.insmod, minimal.chainloader, minimal.search, minimal.extra) == ((), "", "", ())
    assert insmod_only.insmod == ("fat", "chain", "ext2") and insmod_only.chainloader == ""
    assert with_set.insmod == ("fat",) and with_set.chainloader == "/EFI/Linux/test.efi"
    assert with_set.extra == () and with_set.options == "--class fedora"
    assert nested.title == "Nested Braces" and nested.insmod == ("fat",)
    assert [pair[0] for pair in nested.extra] == ["if", "source"]


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("# Just comments\nset timeout=10\nif [ -f /boot/grub/custom.cfg ]; then\n source x\nfi\n", id="no-menuentries"),
    pytest.param("GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.AB12.CD34\n", id="grub2-setpassword-user-cfg"),
    pytest.param("# menuentry \"commented\" {\n", id="commented-menuentry"),
])
def test_no_menuentries(text):
    assert grub.parse_user_cfg(text).menuentries == ()


@pytest.mark.parametrize("text", [
    pytest.param("GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.AB12.CD34", id="grub2-setpassword"),
    pytest.param("set superusers=\"root\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.AB\n", id="password_pbkdf2"),
])
def test_password_detected(text):
    assert grub.parse_user_cfg(text).has_password


def test_content_between_and_after_entries():
    text = textwrap.dedent('''
        # Some initial config
        set timeout=10

        menuentry "First Entry" {
            insmod fat
            chainloader /EFI/Linux/first.efi
        }

        # Some comments between entries
        set default=0

        menuentry "Second Entry" {
            insmod ext2
            search --set=root --fs-uuid "some-uuid"
            chainloader /EFI/Linux/second.efi
        }

        # Trailing content
    ''')
    first, second = grub.parse_user_cfg(text).menuentries
    assert (first.title, first.chainloader) == ("First Entry", "/EFI/Linux/first.efi")
    assert (second.title, second.chainloader) == ("Second Entry", "/EFI/Linux/second.efi")
    assert second.search == '--set=root --fs-uuid "some-uuid"'


@pytest.mark.parametrize("text, message", [
    pytest.param('menuentry "Missing closing quote {\n insmod fat\n}\n', "not terminated", id="missing-quote"),
    pytest.param('menuentry "Missing Brace" {\n insmod fat\n chainloader /EFI/Linux/test.efi\n', "matching", id="missing-brace"),
    pytest.param('menuentry "" {\n}\n', "empty title", id="empty-title"),
    pytest.param("menuentry Unquoted {\n}\n", "not quoted", id="unquoted-title"),
    pytest.param('menuentry "no body"\n', "no '{'", id="no-body"),
])
def test_malformed(text, message):
    with pytest.raises(FormatError, match=message):
        grub.parse_user_cfg(text)


def test_load_error_names_the_file(grub_tree):
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg.staged", 'menuentry "x" {\n')
    with pytest.raises(FormatError) as err:
        grub.load_user_cfg(load_host_paths(str(grub_tree.root)), str(grub_tree.boot), staged=True)
    assert err.value.path == str(grub_tree.boot / "grub2" / "user.cfg.staged")


@pytest.mark.parametrize("chainloader, verity, artifact_name, prefixed", [
    pytest.param("/EFI/Linux/bootc/bootc_composefs-abcd1234.efi", "abcd1234", "abcd1234", True, id="prefixed"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-%s.efi" % D2, D2, D2, True, id="full-digest-artifact-equals-verity"),
    pytest.param("/EFI/Linux/%s.efi" % D2, D2, D2, False, id="legacy"),
])
def test_menuentry_identifiers(chainloader, verity, artifact_name, prefixed):
    entry = grub.MenuEntry(title="Test Entry", insmod=("fat", "chain"), chainloader=chainloader, search="x")
    assert grub.menuentry_verity(entry) == verity
    assert grub.menuentry_artifact(entry) == grub.artifact.ArtifactName(name=artifact_name, prefixed=prefixed)


@pytest.mark.parametrize("chainloader, message", [
    pytest.param("", "no chainloader", id="empty-chainloader"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-abcd1234", "suffix", id="missing-suffix"),
    pytest.param("/EFI/Linux/abcd1234.efi", "not a bootc UKI", id="short-unprefixed-name"),
])
def test_menuentry_verity_errors(chainloader, message):
    with pytest.raises(FormatError, match=message):
        grub.menuentry_verity(grub.MenuEntry(title="x", chainloader=chainloader))


def test_menuentry_artifact_without_prefix_is_allowed():
    entry = grub.MenuEntry(title="x", chainloader="/EFI/Linux/abcd1234.efi")
    assert grub.menuentry_artifact(entry) == grub.artifact.ArtifactName(name="abcd1234", prefixed=False)
