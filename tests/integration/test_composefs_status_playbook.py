"""composefs_status in playbooks: the demo playbook on every variant, facts, check mode.

Expected values are what simhost built (its result); the playbooks assert them themselves, so a
passing run (rc 0, ``failed=0``) is the check, plus what the demo prints.
"""

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "tests" / "integration" / "playbooks" / "status_demo.yml"
FACTS = REPO_ROOT / "tests" / "integration" / "playbooks" / "status_facts.yml"
VARIANTS = ("bls-grub", "bls-systemd", "uki-systemd", "uki-grub")


def _expect(built):
    return {"booted": built["booted"], "staged": built["staged"], "rollback": built["rollback"]}


def _recap_ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = proc.stdout[proc.stdout.index("PLAY RECAP"):]
    assert "failed=0" in recap and "unreachable=0" in recap, recap
    return recap


@pytest.mark.parametrize("variant", VARIANTS)
def test_demo_playbook_shows_every_deployment(ansible_playbook, simulated_host, variant):
    built = simulated_host("demo", variant)
    proc = ansible_playbook(DEMO, {"composefs_demo_root": built["root"], "composefs_demo_expect": _expect(built)})
    _recap_ok(proc)
    assert "booted, staged and rollback are what the simulated host was built with" in proc.stdout
    for deployment in built["deployments"]:
        assert "%-9s %s" % (deployment["role"], deployment["verity"]) in proc.stdout
        assert "manifest  %s" % deployment["manifest_digest"] in proc.stdout
    for stale in built["stale_bootc_tags"]:
        assert "unreferenced-bootc-tag: bootc tag %s" % stale["tag"] in proc.stdout


def test_demo_playbook_notices_a_wrong_expectation(ansible_playbook, simulated_host):
    built = simulated_host("three-deployments")
    wrong = dict(_expect(built), booted=built["rollback"])
    proc = ansible_playbook(DEMO, {"composefs_demo_root": built["root"], "composefs_demo_expect": wrong})
    assert proc.returncode != 0 and "the status does not match the simulated host" in proc.stdout


@pytest.mark.parametrize("preset, variant", [("three-deployments", None), ("demo", "uki-grub"), ("demo", "bls-systemd")])
def test_facts_carry_roles_and_manifests(ansible_playbook, simulated_host, preset, variant):
    built = simulated_host(preset, variant)
    expected = _expect(built)
    expected["deployments"] = {d["verity"]: {"role": d["role"], "manifest_digest": d["manifest_digest"]}
                               for d in built["deployments"]}
    _recap_ok(ansible_playbook(FACTS, {"status_root": built["root"], "expected": expected}))


@pytest.mark.parametrize("variant", ("bls-grub", "uki-systemd"))
def test_check_mode_playbook_changes_nothing(ansible_playbook, simulated_host, tree_digest, variant):
    built = simulated_host("demo", variant)
    before = tree_digest(built["root"])
    proc = ansible_playbook(DEMO, {"composefs_demo_root": built["root"], "composefs_demo_expect": _expect(built)}, check=True)
    recap = _recap_ok(proc)
    assert "changed=0" in recap
    assert tree_digest(built["root"]) == before
