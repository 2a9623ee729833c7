"""host/findings.py: finding records and codes."""

from ansible_collections.bootc.composefs.plugins.module_utils.host import findings


def test_codes_are_unique_and_include_the_required_ones():
    assert len(set(findings.CODES)) == len(findings.CODES)
    required = {"orphan-state-dir", "entry-without-state-dir", "foreign-entry", "damaged-entry", "unreadable-file", "missing-origin",
                "legacy-boot-layout", "conflicting-boot-types", "staged-marker-without-entry", "orphan-addon-dir"}
    assert required <= set(findings.CODES)


def test_as_dict():
    finding = findings.Finding(findings.FOREIGN_ENTRY, "/boot/loader/entries/fwupd.conf", "not bootc")
    assert finding.as_dict() == {"code": "foreign-entry", "path": "/boot/loader/entries/fwupd.conf", "message": "not bootc"}


def test_damaged_and_foreign_entries_have_codes_of_their_own():
    assert findings.DAMAGED_ENTRY == "damaged-entry" and findings.FOREIGN_ENTRY == "foreign-entry"
    assert findings.DAMAGED_ENTRY in findings.CODES
