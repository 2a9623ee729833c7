# -*- coding: utf-8 -*-
"""Running a GC (or anything) in a forked child process that can be SIGKILLed at a chosen point.

The harness process imports the collection once; each run forks, so a child starts working at
once (no interpreter start-up in the measured or randomised window) and dies for real (``SIGKILL``
from the parent after a delay, or from itself at the N-th GC step). The child reports through an
append-only events file written with one ``write(2)`` per event, which survives the kill: JSON
lines ``{"t": seconds since the fork, "k": kind, ...}``; its return value or exception is the last
event (``return`` / ``raise``).

``gc_steps`` runs ``operations.gc.plan_gc`` then ``apply_gc`` with a ``step`` hook that records each
step (``apply_gc`` calls it before every deletion or creation) and can kill the process there.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc as gc_operation

# step kind (apply_gc) -> GC phase, in apply order
STEP_PHASES = {
    "tag-create": "tags-create",
    "boot-binary": "boot-binaries",
    "addon-dir": "boot-binaries",
    "staged-marker": "state-dirs",
    "state-dir": "state-dirs",
    "untag": "tags-remove",
    "locked": "repo-validate",
    "entry": "repo-entries",
    "object": "repo-objects",
    "prune": "repo-prune",
    "cfsctl": "repo-cfsctl",
}
PHASE_ORDER = ("plan", "tags-create", "boot-binaries", "state-dirs", "tags-remove", "repo-validate", "repo-entries",
               "repo-objects", "repo-prune", "finishing")


class ChildOutcome:
    """How a child ended: ``killed`` (by SIGKILL), ``exit_code``, its events, and its return value or exception."""

    def __init__(self, killed: bool, exit_code, events: list, seconds: float) -> None:
        self.killed = killed
        self.exit_code = exit_code
        self.events = events
        self.seconds = seconds
        last = events[-1] if events else {}
        self.returned = last.get("value") if last.get("k") == "return" else None
        self.raised = last if last.get("k") == "raise" else None
        self.completed = last.get("k") in ("return", "raise")

    def steps(self) -> list:
        """The ``step`` events in order."""
        return [e for e in self.events if e.get("k") == "step"]

    def phase(self) -> str:
        """The GC phase the child was in when it stopped (``plan`` before the first step)."""
        steps = self.steps()
        if self.completed:
            return "completed"
        if not steps:
            return "plan"
        return STEP_PHASES.get(steps[-1]["kind"], steps[-1]["kind"])


def spawn(func, events_path: str, uid: int | None = None, gid: int | None = None) -> tuple:
    """Fork a child running ``func(emit)``; return ``(pid, monotonic fork time)`` at once.

    ``emit(event, **data)`` appends an event (``t`` is seconds since the fork, ``at`` the
    monotonic clock, comparable between children). With ``uid``/``gid`` the child drops to that
    user first. The child never returns into the caller's code: it always ends with ``os._exit``.
    """
    fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o666)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            if gid is not None:
                os.setgroups([])
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)

            def emit(event, **data):
                now = time.monotonic()
                data["k"] = event
                data["t"] = round(now - started, 6)
                data["at"] = now
                os.write(fd, (json.dumps(data, sort_keys=True) + "\n").encode())

            try:
                value = func(emit)
                emit("return", value=value)
            except BaseException as err:  # pylint: disable=broad-except
                emit("raise", type="%s.%s" % (type(err).__module__, type(err).__qualname__),
                     composefs=isinstance(err, ComposefsError), message=str(err), traceback=traceback.format_exc())
                code = 1
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.close(fd)
    return pid, started


def wait(pid: int, started: float, events_path: str) -> ChildOutcome:
    """Wait for a child of :func:`spawn` and read its events."""
    return _outcome(os.waitpid(pid, 0)[1], events_path, started)


def fork_call(func, events_path: str, kill_after: float | None = None, anchor: str | None = None,
              uid: int | None = None, gid: int | None = None) -> ChildOutcome:
    """Run ``func(emit)`` in a forked child (:func:`spawn`) and wait; SIGKILL it ``kill_after`` seconds after the fork.

    With ``anchor`` (an event kind) the delay starts when the child emits its first event of
    that kind instead (the parent polls the events file every 0.2 ms), so that a kill drawn from
    the window of the deletions lands there however long the planning took.
    """
    pid, started = spawn(func, events_path, uid, gid)
    status = None
    if kill_after is not None:
        origin = started
        if anchor is not None:
            origin, status = _wait_for_event(pid, events_path, anchor)
        if status is None:
            status = _kill_at(pid, origin + kill_after)
    if status is None:
        status = os.waitpid(pid, 0)[1]
    return _outcome(status, events_path, started)


def _wait_for_event(pid: int, events_path: str, kind: str) -> tuple:
    """``(monotonic time event kind was first seen, None)``, or ``(None, wait status)`` if the child ended first."""
    needle = ('"k": "%s"' % kind).encode()
    seen = b""
    with open(events_path, "rb") as handle:
        while True:
            chunk = handle.read()
            if chunk:
                seen = seen[-200:] + chunk
                if needle in seen:
                    return time.monotonic(), None
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return None, status
            time.sleep(0.0002)


def _kill_at(pid: int, deadline: float):
    """SIGKILL ``pid`` at monotonic ``deadline`` unless it ends before; return its wait status."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(min(left, 0.0002))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _outcome(status: int, events_path: str, started: float) -> ChildOutcome:
    seconds = time.monotonic() - started
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    events = []
    with open(events_path, "rb") as handle:
        for line in handle.read().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"k": "torn", "raw": line.decode("utf-8", "replace")})
    return ChildOutcome(killed, exit_code, events, seconds)


def gc_steps(root: str, kill_at_step: int | None = None, request=None):
    """A ``fork_call`` function: plan and apply a GC of the host at ``root``, recording steps.

    ``kill_at_step`` (1-based): the child SIGKILLs itself when ``apply_gc`` announces that step, so
    that deletion is never made (the test-only hook is this function; the library only calls the
    ``step`` callable it is given, which is None in the module).
    """
    def run(emit):
        gc_request = request or gc_operation.GcRequest(root=root)
        plan = gc_operation.plan_gc(gc_request)
        emit("planned", errors=list(plan.errors), changed=plan.changed)
        count = [0]

        def step(kind, what):
            count[0] += 1
            emit("step", n=count[0], kind=kind, what=str(what)[-160:])
            if kill_at_step is not None and count[0] == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)

        result = gc_operation.apply_gc(plan, step=step)
        data = result.as_dict()
        repo = data.get("repository") or {}
        return {"changed": data["changed"], "objects_removed": data.get("objects_removed"),
                "validation": repo.get("validation"), "kept_objects": repo.get("kept_objects", 0)}

    return run
