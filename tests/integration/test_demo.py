"""``make demo``'s script (tests/tools/demo.py): builds the demo host, runs the playbook, cleans up."""

import pathlib
import re
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_demo_runs_and_removes_its_host():
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "tools" / "demo.py")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, cwd=str(REPO_ROOT))
    assert proc.returncode == 0, proc.stdout[-6000:]
    out = proc.stdout
    root = re.search(r"host \(\w+ boot entries\) in (\S+):", out).group(1)
    assert not pathlib.Path(root).exists() and not pathlib.Path(root).parent.exists()
    for role in ("booted", "staged", "rollback", "other"):
        assert re.search(r"^ *- %s +[0-9a-f]{128}$" % role, out, re.M), role
    assert "booted, staged and rollback are what the simulated host was built with" in out
    assert "failed=0" in out and "Demo done" in out
    assert "unreferenced-bootc-tag" in out  # the demo host carries two stale bootc tags
