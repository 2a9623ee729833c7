# -*- coding: utf-8 -*-
"""Fuzz harness of the GC: corrupted inputs must give a clean failure or a correct plan, and never a wrong deletion.

Run from the repository root, ``make env`` once; as root the GC runs as ``nobody`` (the host is
given to it), so that even a traversal bug could not delete ``/etc`` (as another user it runs as
that user, equally unable to)::

    .venv/bin/python tests/harness/gc_fuzz.py                 # CI size: 800 inputs, 2 workers, ~40 s
    .venv/bin/python tests/harness/gc_fuzz.py --full          # 10000 inputs
    .venv/bin/python tests/harness/gc_fuzz.py --inputs 500 --seed 9 --jobs 4 --json

The host is the GC host of ``gchost.py`` (small), owned by ``nobody``. Each input is one
corruption of a fresh hard-link copy of it (a fixed seed picks kind, target and bytes):

===================== =====================================================================================
kind                  what is corrupted
===================== =====================================================================================
splitstream-truncate  the object of a ``streams/`` entry (manifest, config, layer; live or garbage),
splitstream-bitflip   cut at a random length / 1-3 bits flipped (half of them in the first 256 bytes)
erofs-truncate        the object of an ``images/`` entry: a live deployment's boot image (a GC root),
erofs-bitflip         an EROFS image a live config names, a garbage image
origin-*              ``<v>.origin`` of a live deployment or an orphan state dir
bls-*                 a BLS entry (``loader/entries``, ``entries.staged``)
meta-*                the repository's ``meta.json``
symlink-escape        a repository entry, a tag ref, an ``objects/<xx>`` dir, a state dir, a kernel dir, a BLS
                      entry or an entries dir (category drawn first) replaced by a symlink to ``/etc``, ``/``,
                      or (absolute or relative) the original content moved outside the host (or, for
                      symlinks, a canary file there); ``outside-<worker>/`` is owned by ``nobody``: deletable
===================== =====================================================================================

Then, in a forked child running as ``nobody``: ``plan_gc`` + ``apply_gc`` (what the module does
without check mode); for a share of the inputs (1.5 % at CI size, 1 % full) the module itself
instead (``plugins/modules/composefs_gc.py`` run as ``__main__`` with an args file in the child, as
Ansible's wrapper runs it): its JSON
must be a failure with a ``msg`` naming the file and no ``exception``, and no traceback on stderr,
or a success judged like the rest. The whole host and ``outside/`` are snapshotted before and after (paths,
kinds, symlink texts, inode + mtime of files); ``/`` and ``/etc`` are checked for deletions at the
start, every 1000 inputs of a worker and at the end. Inputs are shared out between ``--jobs``
forked workers (each with its own random stream ``seed:worker:jobs``, work trees and
``outside-<worker>/``): the inputs depend on the seed and the number of jobs. Outcomes:

================== ===========================================================================================
``error``          a ``ComposefsError`` whose message names the corrupted file; nothing changed anywhere
``plan-exact``     the GC ran and did exactly what the oracle says a GC of the intact host does
``plan-kept-more`` it removed a subset of that (nothing unexpected)
``plan-input``     it removed more, but the damaged file still reads, for bootc, with another meaning (an
                   independent reading written from the spec: a BLS entry's ``composefs=`` verity or
                   ``linux`` artifact, meta.json): the GC followed the new meaning, as bootc would
failures:          ``crash`` (another exception type), ``error-unnamed`` (message does not name the file),
                   ``error-dirty`` (an error, yet something changed), ``plan-unsafe`` (removed something the
                   oracle keeps while the input's meaning is unchanged, its bytes damaged (objects), or
                   bootc would refuse it: an entry without a usable ``composefs=``, a live origin
                   without a valid ``boot_type`` / the same ``manifest_digest``),
                   ``outside-touched`` (anything outside the host changed)
================== ===========================================================================================

Exit status 0 when there is no failure. Counts are printed by kind and outcome.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pwd
import random
import re
import runpy
import sys
import tempfile
import traceback

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HARNESS_DIR)), "tests", "tools"))
import simhost  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
import gcchild  # noqa: E402  pylint: disable=wrong-import-position
import gchost  # noqa: E402  pylint: disable=wrong-import-position
import oracle  # noqa: E402  pylint: disable=wrong-import-position
import treesnap  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc as gc_operation  # noqa: E402  pylint: disable=wrong-import-position

CI = {"inputs": 800, "module_rate": 0.015}
FULL = {"inputs": 10000, "module_rate": 0.01}
MODULE = os.path.join(os.path.dirname(os.path.dirname(HARNESS_DIR)), "plugins", "modules", "composefs_gc.py")
KIND_WEIGHTS = {
    "splitstream-truncate": 12, "splitstream-bitflip": 16, "erofs-truncate": 8, "erofs-bitflip": 12,
    "origin-truncate": 5, "origin-bitflip": 8, "bls-truncate": 5, "bls-bitflip": 8, "meta-truncate": 4,
    "meta-bitflip": 6, "symlink-escape": 16,
}
FAILURES = ("crash", "error-unnamed", "error-dirty", "plan-unsafe", "outside-touched")
OUTCOMES = ("error", "plan-exact", "plan-kept-more", "plan-input") + FAILURES
SYSTEM_CHECK_EVERY = 1000
BLS_KEYS = ("linux", "initrd", "options", "efi", "uki")
ORIGIN_KEYS = (("origin", "container-image-reference"), ("boot", "boot_type"), ("boot", "digest"), ("image", "manifest_digest"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="full size (%d inputs)" % FULL["inputs"])
    parser.add_argument("--inputs", type=int)
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--kinds", help="comma-separated kinds to fuzz (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default %(default)s; results depend on it)")
    parser.add_argument("--workdir", help="directory for the trees (default: a new temporary directory in /dev/shm if possible, removed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


# --- independent readings of the text inputs (is a damaged file still saying the same thing?) ----


REFUSED = "refused"
HEX_DIGITS = frozenset("0123456789abcdef")


def _text(data: bytes):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def bls_reading(data: bytes):
    """What bootc takes from a Type1 BLS entry (spec bootc-composefs-host.md 2.1, 2.3): ``(verity, artifact)``.

    REFUSED when bootc's listing would fail on it (not UTF-8, no ``linux``, no ``composefs=`` in
    ``options``, a value that is no 128-hex digest): bootc's status, and so its GC, then stops.
    """
    text = _text(data)
    if text is None:
        return REFUSED
    keys = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if parts and parts[0] not in keys:
            keys[parts[0]] = parts[1] if len(parts) > 1 else ""
    linux, options = keys.get("linux"), keys.get("options")
    if not linux or options is None:
        return REFUSED
    verity = None
    for token in options.split():
        if token.startswith("composefs="):
            verity = token[len("composefs="):].lstrip("?")
            break
    if verity is None or len(verity) != 128 or not set(verity) <= HEX_DIGITS:
        return REFUSED
    artifact = linux.rstrip("/").rsplit("/", 2)[-2] if linux.count("/") >= 2 else ""
    return verity, artifact[len("bootc_composefs-"):] if artifact.startswith("bootc_composefs-") else artifact


def origin_reading(data: bytes):
    """What bootc takes from a live deployment's origin (spec 1.4, 2.9): ``(boot_type, manifest_digest)``.

    REFUSED when bootc's status would fail: no keyfile, ``boot_type`` missing or unknown, a
    ``manifest_digest`` that is missing (no ``.imginfo`` on this host) or malformed.
    """
    text = _text(data)
    if text is None:
        return REFUSED
    found = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"\[([^\]]*)\]", line)
        if match:
            section = match.group(1)
            continue
        key, sep, value = line.partition("=")
        if not sep or section is None:
            return REFUSED
        found.setdefault((section, key.strip()), value.strip())
    boot_type = found.get(("boot", "boot_type"))
    digest = found.get(("image", "manifest_digest"), "")
    if boot_type not in ("bls", "uki") or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return REFUSED
    return boot_type, digest


def meta_reading(data: bytes):
    """The parsed meta.json (REFUSED when it does not parse: composefs-rs refuses to open the repository)."""
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return REFUSED


READINGS = {"bls": bls_reading, "origin": origin_reading, "meta": meta_reading}


def judge_reading(family: str, original: bytes, damaged: bytes, live: bool) -> str:
    """``same``, ``changed`` (bootc would follow the new meaning) or ``refused`` (bootc would stop)."""
    if family == "origin" and not live:
        return "same"  # bootc never reads the origin of a state dir no entry names
    before, after = READINGS[family](original), READINGS[family](damaged)
    if after == REFUSED:
        return "refused"
    if after == before:
        return "same"
    if family == "origin":
        return "refused"  # another boot type conflicts, another manifest digest cannot be read: status fails
    return "changed"


def _reset_module_args() -> None:
    """Forget the module arguments ``ansible.module_utils.basic`` caches per process (the next run reads its own)."""
    from ansible.module_utils import basic  # pylint: disable=import-outside-toplevel

    for name in ("_ANSIBLE_ARGS", "_ANSIBLE_PROFILE", "_PARSED_MODULE_ARGS"):
        if hasattr(basic, name):
            setattr(basic, name, None)


# --- targets and corruptions --------------------------------------------------------------------------


class Targets:
    """What can be corrupted in the pristine host, with what the oracle says about each."""

    def __init__(self, root: str, gc_oracle: gchost.GcOracle, build: dict) -> None:
        repo = gc_oracle.repo
        repo_rel = gchost.REPO_REL
        live = gc_oracle.live["objects"]
        live_verities = set(gc_oracle.live_verities)
        self.streams = []
        names_by_object = {}
        for name, object_id in sorted(repo.entries("streams").items()):
            names_by_object.setdefault(object_id, []).append(name)
        for name, object_id in sorted(repo.entries("images").items()):
            names_by_object.setdefault(object_id, []).append(name)
        self.names_by_object = names_by_object
        for name, object_id in sorted(repo.entries("streams").items()):
            path = os.path.join(repo_rel, "objects", object_id[:2], object_id[2:])
            if os.path.exists(os.path.join(root, path)):
                kind = name.split("-", 2)[1] if name.startswith("oci-") else "stream"
                self.streams.append({"path": path, "object": object_id, "what": "%s (%s)" % (kind, "live" if object_id in live else "garbage")})
        self.erofs = []
        for name, object_id in sorted(repo.entries("images").items()):
            path = os.path.join(repo_rel, "objects", object_id[:2], object_id[2:])
            if name in live_verities:
                what = "boot image of a live deployment (root)"
            elif object_id in live:
                what = "image a live config names"
            else:
                what = "garbage image"
            self.erofs.append({"path": path, "object": object_id, "what": what})
        state = build["paths"]["state_deploy"]
        self.origins = []
        for verity in sorted(os.listdir(state)):
            path = os.path.relpath(os.path.join(state, verity, verity + ".origin"), root)
            self.origins.append({"path": path, "what": "origin (%s)" % ("live" if verity in live_verities else "orphan")})
        self.bls = []
        for directory in (build["paths"]["entries_dir"], build["paths"]["staged_entries_dir"]):
            for name in sorted(os.listdir(directory)):
                self.bls.append({"path": os.path.relpath(os.path.join(directory, name), root),
                                 "what": "BLS entry (%s)" % os.path.basename(directory)})
        self.meta = [{"path": os.path.join(repo_rel, "meta.json"), "what": "meta.json"}]
        self.links = self._link_targets(root, gc_oracle, build, repo, live, live_verities)

    @staticmethod
    def _link_targets(root, gc_oracle, build, repo, live, live_verities) -> dict:
        """``{category: [targets]}``: a category is drawn first, then a target in it."""
        repo_rel = gchost.REPO_REL
        found = {}

        def add(category, path, is_dir, what):
            found.setdefault(category, []).append({"path": path, "dir": is_dir, "what": what})

        for category in ("streams", "images"):
            for name, object_id in sorted(repo.entries(category).items()):
                add("repo entry", os.path.join(repo_rel, category, name), False,
                    "%s entry (%s)" % (category, "live" if object_id in live else "garbage"))
        refs = os.path.join(root, repo_rel, "streams", "refs", "oci")
        for name in sorted(os.listdir(refs)):
            tag = name.replace("%2F", "/").replace("%25", "%")
            add("tag ref", os.path.join(repo_rel, "streams", "refs", "oci", name), False,
                "tag ref (%s)" % ("kept" if tag in gc_oracle.kept_tags else "stale"))
        objects_dir = os.path.join(root, repo_rel, "objects")
        for subdir in sorted(os.listdir(objects_dir)):
            members = {subdir + n for n in os.listdir(os.path.join(objects_dir, subdir))}
            add("objects dir", os.path.join(repo_rel, "objects", subdir), True,
                "objects/<xx> dir (%s)" % ("holds live objects" if members & live else "garbage only"))
        state = build["paths"]["state_deploy"]
        for verity in sorted(os.listdir(state)):
            add("state dir", os.path.relpath(os.path.join(state, verity), root), True,
                "state dir (%s)" % ("live" if verity in live_verities else "orphan"))
        type1 = build["paths"]["type1_dir"]
        for name in sorted(os.listdir(type1)):
            if name.startswith("bootc_composefs-"):
                used = name[len("bootc_composefs-"):] in gc_oracle.live_artifacts
                add("kernel dir", os.path.relpath(os.path.join(type1, name), root), True,
                    "kernel dir (%s)" % ("used" if used else "unreferenced"))
        for directory in (build["paths"]["entries_dir"], build["paths"]["staged_entries_dir"]):
            add("BLS entries dir", os.path.relpath(directory, root), True, "BLS dir %s" % os.path.basename(directory))
            for name in sorted(os.listdir(directory)):
                add("BLS entry", os.path.relpath(os.path.join(directory, name), root), False,
                    "BLS entry file (%s)" % os.path.basename(directory))
        return found


class Corruption:
    """One applied corruption: how to undo it and how to judge the GC's answer."""

    def __init__(self, kind: str, target: dict, detail: str, tokens: set, reading: str) -> None:
        self.kind = kind
        self.target = target
        self.detail = detail
        self.tokens = tokens
        self.reading = reading
        self.undo = None

    def as_dict(self) -> dict:
        """For failure reports."""
        return {"kind": self.kind, "path": self.target["path"], "what": self.target["what"], "detail": self.detail,
                "bootc_reading": self.reading}


class Fuzzer:
    """State of one harness run."""

    def __init__(self, workdir: str, sizes: dict, seed: int, kinds) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.rng = random.Random(seed)
        self.seed = seed
        self.kinds = kinds
        self.pristine = os.path.join(workdir, "pristine")
        self.outside = os.path.join(workdir, "outside")
        self.nobody = pwd.getpwnam("nobody")
        self.counts = {}
        self.by_target = {}
        self.failures = []
        self.examples = {}
        self.plan_input = []
        self.module_counts = {}
        self.module_ok = importlib.util.find_spec("ansible") is not None
        self.uid = self.gid = None
        if os.geteuid() == 0:
            self.uid, self.gid = self.nobody.pw_uid, self.nobody.pw_gid
        self.work = None
        self.copies = 0
        self.inputs = 0
        self.worker = 0

    # -- setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Build the host, give it to nobody, compute the oracle, prepare ``outside/``."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            self.build = gchost.build_gc_host(self.pristine, gchost.HostParams(garbage_images=1, garbage_files=8), scratch)
        self.oracle = gchost.GcOracle(self.pristine, self.build)
        self._chown_tree(self.pristine)
        os.chmod(self.workdir, 0o755)
        # Module-level caches (zstd backend, ...) initialised once here, inherited by every child;
        # the module imported too (as nobody, a child cannot read the interpreter's own library).
        gc_operation.plan_gc(gc_operation.GcRequest(root=self.pristine))
        if self.module_ok:
            self._warm_module()
        self.before = treesnap.snapshot(self.pristine)
        self.removals = self.oracle.removals(self.before)
        self.additions = self.oracle.additions()
        self.targets = Targets(self.pristine, self.oracle, self.build)
        self.system_before = self._system_snapshot()

    def _warm_module(self) -> None:
        """Run the module once here, in check mode on the pristine host, output discarded: every import it needs is loaded."""
        args_path = os.path.join(self.workdir, "warm-args.json")
        with open(args_path, "w", encoding="utf-8") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"root": self.pristine, "_ansible_check_mode": True}}, handle)
        saved_argv, saved_out = sys.argv, os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            sys.argv = [MODULE, args_path]
            runpy.run_path(MODULE, run_name="__main__")
        except SystemExit:
            pass
        finally:
            sys.stdout.flush()
            os.dup2(saved_out, 1)
            os.close(saved_out)
            os.close(devnull)
            sys.argv = saved_argv
            _reset_module_args()

    def start_worker(self, worker: int, jobs: int) -> None:
        """Become worker ``worker`` of ``jobs``: own random stream, own ``outside/`` and work trees."""
        self.rng = random.Random("%d:%d:%d" % (self.seed, worker, jobs))
        self.worker = worker
        self.outside = os.path.join(self.workdir, "outside-%d" % worker)
        os.makedirs(os.path.join(self.outside, "moved"))
        with open(os.path.join(self.outside, "canary.txt"), "w", encoding="utf-8") as handle:
            handle.write("nothing may delete me\n")
        self._chown_tree(self.outside)

    def _chown_tree(self, top: str) -> None:
        if self.uid is None:
            return
        uid, gid = self.uid, self.gid
        os.lchown(top, uid, gid)
        for directory, dirs, files in os.walk(top):
            for name in dirs + files:
                os.lchown(os.path.join(directory, name), uid, gid)

    @staticmethod
    def _system_snapshot() -> dict:
        """``/`` (first level) and ``/etc`` (whole), for deletions only."""
        top = {name: True for name in os.listdir("/")}
        return {"/": top, "/etc": treesnap.snapshot("/etc")}

    def check_system(self) -> None:
        """Nothing was deleted from ``/`` or ``/etc``."""
        now = self._system_snapshot()
        for name, before in self.system_before.items():
            gone = sorted(set(before) - set(now[name]))
            if gone:
                self.failures.append({"outcome": "outside-touched", "problem": "%s lost %s" % (name, gone[:10])})
                self.counts.setdefault("system", {}).setdefault("outside-touched", 0)
                self.counts["system"]["outside-touched"] += 1

    # -- corruptions ------------------------------------------------------------------------------

    def fresh_work(self) -> None:
        """A new hard-link copy of the pristine host."""
        if self.work is not None:
            treesnap.remove_tree(self.work)
        self.copies += 1
        self.work = os.path.join(self.workdir, "work-%d-%06d" % (self.worker, self.copies))
        gchost.copy_host(self.pristine, self.work)

    def _object_tokens(self, object_id: str) -> set:
        return {object_id, object_id[2:]} | set(self.targets.names_by_object.get(object_id, []))

    def _replace_file(self, rel: str, data: bytes) -> None:
        path = os.path.join(self.work, rel)
        mode = os.lstat(path).st_mode & 0o7777
        os.unlink(path)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def _restore_file(self, rel: str) -> None:
        path = os.path.join(self.work, rel)
        os.unlink(path)
        os.link(os.path.join(self.pristine, rel), path)

    def _damage_bytes(self, data: bytes, mode: str) -> tuple:
        if mode == "truncate":
            if not data:
                return data, "empty already"
            length = self.rng.randrange(0, min(len(data), 160)) if self.rng.random() < 0.5 else self.rng.randrange(0, len(data))
            return data[:length], "truncated to %d of %d bytes" % (length, len(data))
        buf = bytearray(data)
        flips = []
        for _flip in range(self.rng.randint(1, 3)):
            limit = min(len(buf), 256) if self.rng.random() < 0.5 else len(buf)
            offset = self.rng.randrange(limit)
            bit = self.rng.randrange(8)
            buf[offset] ^= 1 << bit
            flips.append("%d.%d" % (offset, bit))
        return bytes(buf), "bits flipped at %s" % ",".join(flips)

    def corrupt(self, kind: str) -> Corruption:
        """Apply one corruption of ``kind`` to the work tree."""
        family, mode = kind.rsplit("-", 1)
        if family == "symlink":
            return self._escape()
        pool = {"splitstream": self.targets.streams, "erofs": self.targets.erofs, "origin": self.targets.origins,
                "bls": self.targets.bls, "meta": self.targets.meta}[family]
        target = self.rng.choice(pool)
        rel = target["path"]
        with open(os.path.join(self.pristine, rel), "rb") as handle:
            original = handle.read()
        data, detail = self._damage_bytes(original, mode)
        if data == original:
            data = data + b"\0"
            detail += " (no-op, a NUL appended)"
        tokens = {os.path.basename(rel)}
        if "object" in target:
            tokens |= self._object_tokens(target["object"])
            reading = "content"
        else:
            reading = judge_reading(family, original, data, "(orphan)" not in target["what"])
        self._replace_file(rel, data)
        corruption = Corruption(kind, target, detail, tokens, reading)
        corruption.undo = lambda: self._restore_file(rel)
        return corruption

    def _escape(self) -> Corruption:
        target = self.rng.choice(self.targets.links[self.rng.choice(sorted(self.targets.links))])
        rel = target["path"]
        path = os.path.join(self.work, rel)
        destination = self.rng.choice(("/etc", "/", "outside-absolute", "outside-relative"))
        moved = None
        if target["dir"]:
            moved = os.path.join(self.outside, "moved", "m%06d" % self.inputs)
            os.rename(path, moved)
            outside_target = moved
        else:
            original_text = os.readlink(path) if os.path.islink(path) else None
            if original_text is None:  # a regular file (BLS entry): moved out like a directory
                moved = os.path.join(self.outside, "moved", "m%06d" % self.inputs)
                os.rename(path, moved)
                outside_target = moved
            else:
                os.unlink(path)
                outside_target = os.path.join(self.outside, "canary.txt")
        if destination == "outside-absolute":
            text = outside_target
        elif destination == "outside-relative":
            text = os.path.relpath(outside_target, os.path.dirname(path))
        else:
            text = destination
        os.symlink(text, path)
        if self.uid is not None:
            os.lchown(path, self.uid, self.gid)
        name = os.path.basename(rel)
        tokens = {"objects/" + name} if "/objects/" in rel else {name}
        if name.startswith("bootc_composefs-"):
            tokens.add(name[len("bootc_composefs-"):])
        corruption = Corruption("symlink-escape", target, "-> %s (%s)" % (text, destination), tokens, "layout")

        def undo():
            os.unlink(path)
            if moved is not None:
                os.rename(moved, path)
            else:
                os.symlink(original_text, path)
                if self.uid is not None:
                    os.lchown(path, self.uid, self.gid)

        corruption.undo = undo
        return corruption

    # -- one input ----------------------------------------------------------------------------------

    def run_gc(self):
        """The child function: what the module runs without check mode."""
        root = self.work

        def run(emit):
            plan = gc_operation.plan_gc(gc_operation.GcRequest(root=root, lock_timeout=10.0))
            emit("planned", errors=[e[:300] for e in plan.errors])
            result = gc_operation.apply_gc(plan)
            return {"objects_removed": result.as_dict().get("objects_removed")}

        return run

    def run_module(self, events_path: str):
        """Run ``plugins/modules/composefs_gc.py`` on the work tree (in a child, as the GC user); a ChildOutcome of its answer.

        The child runs the module file as ``__main__`` with an args file (what Ansible's wrapper
        does, minus the zip), stdout and stderr to files. A failure JSON becomes a ``raise`` event
        (a ComposefsError when it has a ``msg`` and no ``exception``); a traceback on stderr, an
        ``exception`` key or no JSON at all is a crash carrying that output.
        """
        args_path = events_path + ".args.json"
        out_path, err_path = events_path + ".stdout", events_path + ".stderr"
        with open(args_path, "w", encoding="utf-8") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": {"root": self.work, "lock_timeout": 10.0}}, handle)

        # Compiled here: the child (nobody) may not be able to read the module file, e.g. in a
        # clone below a private (0700) directory.
        with open(MODULE, "rb") as handle:
            code = compile(handle.read(), MODULE, "exec")

        def run(_emit):
            _reset_module_args()
            for fd, path in ((1, out_path), (2, err_path)):
                target = os.open(path, os.O_WRONLY | os.O_TRUNC)
                os.dup2(target, fd)
                os.close(target)
            sys.argv = [MODULE, args_path]
            try:
                exec(code, {"__name__": "__main__", "__file__": MODULE, "__builtins__": __builtins__})  # pylint: disable=exec-used
            except SystemExit as err:
                return {"exit": err.code}
            except BaseException:  # pylint: disable=broad-except
                traceback.print_exc()
                return {"exit": "exception"}
            return {"exit": None}

        for path in (out_path, err_path):  # made here: the child may not create files in the workdir
            with open(path, "wb"):
                pass
            if self.uid is not None:
                os.chown(path, self.uid, self.gid)
        outcome = gcchild.fork_call(run, events_path, uid=self.uid, gid=self.gid)
        with open(out_path, "rb") as handle:
            stdout = handle.read()
        with open(err_path, "rb") as handle:
            stderr = handle.read().decode("utf-8", "replace")
        try:
            answer = json.loads(stdout)
        except ValueError:
            answer = None
        if answer is None or "Traceback" in stderr or "exception" in answer:
            event = {"k": "raise", "composefs": False, "type": "module output", "message": "stdout %r" % stdout[:300],
                     "traceback": stderr[-1500:] + str((answer or {}).get("exception", ""))}
        elif answer.get("failed"):
            event = {"k": "raise", "composefs": bool(answer.get("msg")), "type": "module failed", "message": answer.get("msg", ""),
                     "traceback": ""}
        else:
            event = {"k": "return", "value": {"changed": answer.get("changed")}}
        return gcchild.ChildOutcome(outcome.killed, 0 if event["k"] == "return" else 1, [event], outcome.seconds)

    def one(self, kind: str) -> None:
        """Corrupt, run (in-process child, or now and then the module), snapshot, classify."""
        self.inputs += 1
        if self.work is None:
            self.fresh_work()
        corruption = self.corrupt(kind)
        before = treesnap.snapshot(self.work)
        outside_before = treesnap.snapshot(self.outside)
        events_path = os.path.join(self.workdir, "events-%d.jsonl" % self.worker)
        via_module = self.module_ok and self.rng.random() < self.sizes["module_rate"]
        if via_module:
            outcome = self.run_module(events_path)
        else:
            outcome = gcchild.fork_call(self.run_gc(), events_path, uid=self.uid, gid=self.gid)
        after = treesnap.snapshot(self.work)
        delta = treesnap.diff(before, after)
        outside_delta = treesnap.diff(outside_before, treesnap.snapshot(self.outside))
        verdict, problem = self.classify(corruption, outcome, delta, outside_delta)
        self.record(corruption, verdict, problem, outcome)
        if via_module:
            self.module_counts[verdict] = self.module_counts.get(verdict, 0) + 1
        if treesnap.is_empty_diff(delta) and treesnap.is_empty_diff(outside_delta):
            corruption.undo()
        else:
            moved = os.path.join(self.outside, "moved", "m%06d" % self.inputs)
            if os.path.isdir(moved) and not os.path.islink(moved):
                treesnap.remove_tree(moved)
            elif os.path.lexists(moved):
                os.unlink(moved)
            self.work_dirty()

    def work_dirty(self) -> None:
        """The work tree changed: the next input gets a fresh copy."""
        treesnap.remove_tree(self.work)
        self.work = None

    def classify(self, corruption: Corruption, outcome, delta: dict, outside_delta: dict) -> tuple:
        """``(outcome, problem or None)`` (see the module docstring)."""
        if not treesnap.is_empty_diff(outside_delta):
            return "outside-touched", "outside changed: %s" % {k: v[:5] for k, v in outside_delta.items()}
        if outcome.killed or outcome.exit_code not in (0, 1) or not outcome.completed:
            return "crash", "child ended without a result (killed %s, exit %s): %s" % (
                outcome.killed, outcome.exit_code, outcome.events[-2:])
        if outcome.raised is not None:
            raised = outcome.raised
            if not raised["composefs"]:
                return "crash", "%s: %s\n%s" % (raised["type"], raised["message"], raised["traceback"][-1500:])
            if not treesnap.is_empty_diff(delta):
                return "error-dirty", "%s, yet the tree changed: %s" % (raised["message"][:300], {k: v[:5] for k, v in delta.items()})
            if not any(token in raised["message"] for token in corruption.tokens):
                return "error-unnamed", "message names none of %s: %s" % (sorted(corruption.tokens), raised["message"][:600])
            return "error", None
        removed = set(delta["removed"])
        corrupted = corruption.target["path"]
        expected = self.removals
        unexpected_removed = sorted(p for p in removed - expected if p != corrupted and not p.startswith(corrupted + "/"))
        unexpected_added = sorted(p for p in delta["added"] if p not in self.additions)
        changed = sorted(p for p in delta["changed"] if p != corrupted)
        if unexpected_removed or unexpected_added or changed:
            detail = {"removed": unexpected_removed[:6], "added": unexpected_added[:6], "changed": changed[:6]}
            if corruption.reading == "changed":
                return "plan-input", "the GC followed the changed meaning, as bootc does: %s" % detail
            if corruption.reading == "refused":
                return "plan-unsafe", "bootc refuses this input (its status fails), the GC deleted: %s" % detail
            return "plan-unsafe", "removed or changed what the oracle keeps: %s" % detail
        if removed >= expected:
            return "plan-exact", None
        return "plan-kept-more", None

    def record(self, corruption: Corruption, verdict: str, problem, outcome) -> None:
        """Count, and keep failures and one example message per (kind, outcome)."""
        self.counts.setdefault(corruption.kind, {}).setdefault(verdict, 0)
        self.counts[corruption.kind][verdict] += 1
        key = "%s: %s" % (corruption.kind.split("-")[0], corruption.target["what"])
        self.by_target.setdefault(key, {}).setdefault(verdict, 0)
        self.by_target[key][verdict] += 1
        example_key = "%s / %s" % (corruption.kind, verdict)
        if example_key not in self.examples:
            message = (outcome.raised or {}).get("message") if outcome.raised else problem
            self.examples[example_key] = {"input": corruption.as_dict(), "message": (message or "")[:400]}
        if verdict in FAILURES:
            self.failures.append({"outcome": verdict, "input": corruption.as_dict(), "problem": problem})
        elif verdict == "plan-input" and len(self.plan_input) < 20:
            self.plan_input.append({"input": corruption.as_dict(), "problem": problem[:300]})

    # -- the run ------------------------------------------------------------------------------------

    def run_shard(self, count: int) -> None:
        """``count`` inputs, kinds drawn by weight (in a worker)."""
        kinds = [k for k in KIND_WEIGHTS if self.kinds is None or k in self.kinds]
        weights = [KIND_WEIGHTS[k] for k in kinds]
        self.fresh_work()
        for number in range(count):
            self.one(self.rng.choices(kinds, weights)[0])
            if (number + 1) % SYSTEM_CHECK_EVERY == 0:
                self.check_system()
        if self.work is not None:
            treesnap.remove_tree(self.work)

    def run(self, jobs: int) -> None:
        """``sizes["inputs"]`` inputs over ``jobs`` forked workers; their counts merged here."""
        total = self.sizes["inputs"]
        children = []
        for worker in range(jobs):
            count = total // jobs + (1 if worker < total % jobs else 0)
            result_path = os.path.join(self.workdir, "worker-%d.json" % worker)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker
                code = 1
                try:
                    self.start_worker(worker, jobs)
                    self.run_shard(count)
                    with open(result_path, "w", encoding="utf-8") as handle:
                        json.dump(self.partial(), handle)
                    code = 0
                except BaseException:  # pylint: disable=broad-except
                    traceback.print_exc()
                finally:
                    os._exit(code)  # pylint: disable=protected-access
            children.append((pid, result_path))
        for pid, result_path in children:
            _pid, status = os.waitpid(pid, 0)
            if status != 0 or not os.path.exists(result_path):
                self.failures.append({"outcome": "crash", "problem": "fuzz worker %d ended with status %d" % (pid, status)})
                continue
            with open(result_path, encoding="utf-8") as handle:
                self.merge(json.load(handle))
        self.check_system()

    def partial(self) -> dict:
        """What a worker hands back."""
        return {"counts": self.counts, "by_target": self.by_target, "failures": self.failures, "examples": self.examples,
                "plan_input": self.plan_input, "inputs": self.inputs, "copies": self.copies, "module": self.module_counts}

    def merge(self, part: dict) -> None:
        """Add a worker's :meth:`partial` to this run's counts."""
        for mine, theirs in ((self.counts, part["counts"]), (self.by_target, part["by_target"])):
            for key, per_outcome in theirs.items():
                for verdict, count in per_outcome.items():
                    mine.setdefault(key, {}).setdefault(verdict, 0)
                    mine[key][verdict] += count
        self.failures.extend(part["failures"])
        for key, value in part["examples"].items():
            self.examples.setdefault(key, value)
        self.plan_input.extend(part["plan_input"][:max(0, 20 - len(self.plan_input))])
        self.inputs += part["inputs"]
        self.copies += part["copies"]
        for verdict, count in part["module"].items():
            self.module_counts[verdict] = self.module_counts.get(verdict, 0) + count

    def summary(self) -> dict:
        """The report."""
        totals = {o: 0 for o in OUTCOMES}
        for per_kind in self.counts.values():
            for verdict, count in per_kind.items():
                totals[verdict] = totals.get(verdict, 0) + count
        return {"seed": self.seed, "inputs": self.inputs, "copies": self.copies, "by_kind": self.counts,
                "module_path": self.module_counts if self.module_ok else "ansible not importable: not run",
                "gc_user": "nobody" if self.uid is not None else "the invoking user",
                "by_target": self.by_target, "totals": {k: v for k, v in totals.items() if v},
                "failures": len(self.failures), "failure_details": self.failures[:40], "examples": self.examples, "plan_input_examples": self.plan_input,
                "oracle": self.oracle.summary()}


def main(argv=None) -> int:
    """Run the harness; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = dict(FULL if args.full else CI)
    if args.inputs is not None:
        sizes["inputs"] = args.inputs
    kinds = set(args.kinds.split(",")) if args.kinds else None
    oracle.ensure_composefs_oracle()

    def _run(workdir):
        fuzzer = Fuzzer(workdir, sizes, args.seed, kinds)
        fuzzer.setup()
        fuzzer.run(args.jobs)
        return fuzzer.summary()

    report = treesnap.run_harness("gc-fuzz-", args.workdir, _run)
    if not treesnap.print_report(report, args.json):
        print("gc_fuzz: %d inputs (seed %d, %d jobs), %d copies of the host, %.1f s"
              % (report["inputs"], report["seed"], args.jobs, report["copies"], report["seconds"]))
        print("  totals: %s" % ", ".join("%s %d" % kv for kv in report["totals"].items()))
        module = report["module_path"]
        print("  through the module (plugins/modules/composefs_gc.py, a share of the inputs): %s"
              % (", ".join("%s %d" % kv for kv in sorted(module.items())) if isinstance(module, dict) else module))
        for kind in sorted(report["by_kind"]):
            print("  %-22s %s" % (kind, ", ".join("%s %d" % kv for kv in sorted(report["by_kind"][kind].items()))))
        print("  by target:")
        for target in sorted(report["by_target"]):
            print("    %-58s %s" % (target, ", ".join("%s %d" % kv for kv in sorted(report["by_target"][target].items()))))
        print("  failures: %d" % report["failures"])
        for failure in report["failure_details"][:20]:
            print("    %s" % json.dumps(failure, sort_keys=True)[:1500])
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
