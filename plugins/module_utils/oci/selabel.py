# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SELinux labels of a boot image, from the policy the image itself ships (composefs-boot ``selabel``).

Layer: oci. Upstream: composefs-rs ``crates/composefs-boot/src/selabel.rs`` (``selabel``,
``Policy::build_from``, ``relabel_dir``, ``process_spec_file``, ``process_subs_file``,
``parse_config``), called by ``transform_for_boot`` in ``crates/composefs-boot/src/lib.rs``.

Inputs, all read from the image tree (inline content or repository objects):

================================================== =====================================================
file                                               use
================================================== =====================================================
``/etc/selinux/config``                            the first ``SELINUXTYPE=<name>`` line (key compared
                                                   case-insensitively, both sides trimmed) names the policy
``/etc/selinux/<name>/contexts/files/file_contexts``  mandatory; then ``.local`` and ``.homedirs`` if present
``.../file_contexts.subs``, ``.subs_dist``         aliases: ``<alias path> <original path>`` per line
================================================== =====================================================

A spec line is ``<regex> [-<type>] <context>`` (whitespace separated, ``#`` starts a comment line,
anything more is an error); ``<type>`` is one of ``b c d p l s -`` (block, char, directory, fifo,
symlink, socket, regular file). A path is labelled by the *last* spec line, over all spec files in
the order above, whose ``<regex>`` followed by the type character matches ``<path><type char>``
in full; ``<<none>>`` or no match removes the label. Aliases apply to the exact path of an entry;
a directory's descendants are then looked up under the aliased path.

Walk: from ``/``, each directory labelled as ``d`` before its entries, entries in name order,
subdirectories recursively. A hard-linked leaf is labelled at its first path; when a later path
of it gets a different label, that path gets its own copy of the leaf (the hard link is broken),
as composefs-rs does. Without ``/etc/selinux``, a config, or a ``SELINUXTYPE`` line, every
``security.selinux`` xattr is removed instead.

Regexes: composefs-rs compiles them with the Rust regex engine (bytes, no Unicode; ``.`` matches
anything but NUL) and falls back to PCRE2; here Python's ``re`` on bytes with ``DOTALL``, after
turning POSIX classes (``[[:digit:]]``) into ranges. A pattern Python cannot compile is a
FormatError naming it. Speed: patterns are indexed by the literal text they must start with, so a
lookup only tries the patterns whose prefix the path starts with (highest priority first).
"""

from __future__ import annotations

import copy
import re
import stat as _stat
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree

__all__ = ["XATTR_SECURITY_SELINUX", "NO_LABEL", "Policy", "parse_config", "load_policy", "apply_policy",
           "strip_labels", "selabel"]

XATTR_SECURITY_SELINUX = b"security.selinux"
NO_LABEL = "<<none>>"
SPEC_FILES = ("file_contexts", "file_contexts.local", "file_contexts.homedirs")  # the first one is mandatory
SUBS_FILES = ("file_contexts.subs", "file_contexts.subs_dist")
TYPE_CODES = "bcdpls-"
# tree node kind -> selabel_file(5) type character
_IFMT_CHARS = {_stat.S_IFREG: b"-", _stat.S_IFIFO: b"p", _stat.S_IFSOCK: b"s", _stat.S_IFLNK: b"l",
               _stat.S_IFBLK: b"b", _stat.S_IFCHR: b"c", _stat.S_IFDIR: b"d"}
# POSIX bracket classes -> the ASCII ranges they stand for (Python's re has no [:name:] syntax)
_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "punct": "!-/:-@\\[-`{-~",
    "word": "a-zA-Z0-9_", "cntrl": "\\x00-\\x1f\\x7f", "print": " -~", "graph": "!-~",
}
_META = ".[](){}*+?|^$\\"
_OPTIONAL_QUANTIFIERS = ("*", "?", "{")


def parse_config(text: str) -> str | None:
    """Return the policy name of ``/etc/selinux/config`` (first ``SELINUXTYPE=`` line), or None."""
    for line in text.split("\n"):
        key, equals, value = line.partition("=")
        if equals and key.strip().lower() == "selinuxtype":
            return value.strip()
    return None


def _parse_spec_file(text: str, name: str, regexps: list, contexts: list) -> None:
    for number, line in enumerate(text.split("\n")):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 2:
            raise FormatError("SELinux %s line %d: missing separator after the regex" % (name, number))
        if parts[1].startswith("-"):
            code = parts[1][1:]
            if len(code) != 1 or code not in TYPE_CODES:
                raise FormatError("SELinux %s line %d: invalid type code %s" % (name, number, parts[1]))
            if len(parts) < 3:
                raise FormatError("SELinux %s line %d: missing context" % (name, number))
            rest = parts[3:]
            regexps.append((parts[0], code))
            contexts.append(parts[2])
        else:
            rest = parts[2:]
            regexps.append((parts[0], None))
            contexts.append(parts[1])
        if rest:
            raise FormatError("SELinux %s line %d: trailing data %r" % (name, number, " ".join(rest)))


def _parse_subs_file(text: str, name: str, aliases: dict) -> None:
    for number, line in enumerate(text.split("\n")):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2:
            raise FormatError("SELinux %s line %d: expected '<alias> <original>'" % (name, number))
        aliases[parts[0].encode("utf-8")] = parts[1].encode("utf-8")


def _translate(regex: str) -> str:
    """Replace POSIX bracket classes with ranges Python's ``re`` understands."""
    return re.sub(r"\[:([a-z]+):\]", lambda m: _POSIX_CLASSES.get(m.group(1), m.group(0)), regex)


def _top_level_alternation(regex: str) -> bool:
    depth, index, in_class = 0, 0, False
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if regex[index + 1:index + 2] == "]":
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def literal_prefix(regex: str) -> bytes:
    """Return the literal text every match of ``regex`` starts with (empty when unknown)."""
    if _top_level_alternation(regex):
        return b""
    out = []
    index = 0
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            escaped = regex[index + 1:index + 2]
            if not escaped or escaped.isalnum():
                break
            literal, step = escaped, 2
        elif char in _META:
            break
        else:
            literal, step = char, 1
        following = regex[index + step:index + step + 1]
        if following in _OPTIONAL_QUANTIFIERS:
            break
        out.append(literal)
        index += step
        if following == "+":
            break
    return "".join(out).encode("utf-8")


class Policy:
    """Compiled spec lines (highest priority first), their contexts and the aliases."""

    def __init__(self, regexps, contexts, aliases: dict) -> None:
        self.aliases = dict(aliases)
        self._sources = list(reversed(regexps))
        self._contexts = [c.encode("utf-8") for c in reversed(contexts)]
        self._compiled = [None] * len(self._sources)
        self._by_prefix = {}
        for index, (regex, _code) in enumerate(self._sources):
            self._by_prefix.setdefault(literal_prefix(regex), []).append(index)
        self._prefix_lengths = sorted({len(p) for p in self._by_prefix})

    def _pattern(self, index: int):
        compiled = self._compiled[index]
        if compiled is None:
            regex, code = self._sources[index]
            tail = re.escape(code) if code is not None else "."
            try:
                compiled = re.compile(("(%s)%s" % (_translate(regex), tail)).encode("utf-8"), re.DOTALL)
            except re.error as err:
                raise FormatError("SELinux file_contexts regex %r cannot be compiled: %s" % (regex, err)) from None
            self._compiled[index] = compiled
        return compiled

    def lookup(self, path: bytes, ifmt: bytes) -> bytes | None:
        """Return the label of ``path`` with type character ``ifmt``, or None (no match or ``<<none>>``)."""
        key = path + ifmt
        candidates = []
        for length in self._prefix_lengths:
            if length > len(path):
                break
            found = self._by_prefix.get(path[:length])
            if found:
                candidates.extend(found)
        for index in sorted(candidates):
            if self._pattern(index).fullmatch(key):
                context = self._contexts[index]
                return None if context == NO_LABEL.encode() else context
        return None


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("SELinux %s is not UTF-8 text" % what) from None


def _regular_file(directory: tree.Directory, name: str, where: str):
    node = directory.entries.get(name.encode())
    if node is None:
        return None
    if not isinstance(node, tree.RegularFile):
        raise FormatError("%s/%s is not a regular file" % (where, name))
    return node


def _directory(parent: tree.Directory, parts, where: str, required: bool = True):
    node = parent
    for part in parts:
        node = node.entries.get(part.encode()) if isinstance(node, tree.Directory) else None
        if node is None and not required:
            return None
        if not isinstance(node, tree.Directory):
            raise FormatError("%s is missing or not a directory in the image" % where)
    return node


def load_policy(root: tree.Directory, read_file: Callable[[tree.RegularFile], bytes]) -> Policy | None:
    """Return the image's policy, or None without ``/etc/selinux``, its config or a ``SELINUXTYPE`` line."""
    etc_selinux = _directory(root, ("etc", "selinux"), "/etc/selinux", required=False)
    if etc_selinux is None:
        return None
    config = _regular_file(etc_selinux, "config", "/etc/selinux")
    if config is None:
        return None
    name = parse_config(_text(read_file(config), "/etc/selinux/config"))
    if name is None:
        return None
    where = "/etc/selinux/%s/contexts/files" % name
    files_dir = _directory(etc_selinux, (name, "contexts", "files"), where)
    regexps, contexts, aliases = [], [], {}
    for index, filename in enumerate(SPEC_FILES):
        node = _regular_file(files_dir, filename, where)
        if node is None:
            if index == 0:
                raise FormatError("SELinux policy %r has no %s/file_contexts; the image is broken" % (name, where))
            continue
        _parse_spec_file(_text(read_file(node), filename), filename, regexps, contexts)
    for filename in SUBS_FILES:
        node = _regular_file(files_dir, filename, where)
        if node is not None:
            _parse_subs_file(_text(read_file(node), filename), filename, aliases)
    return Policy(regexps, contexts, aliases)


def _set_label(node_stat: tree.Stat, label: bytes | None) -> None:
    if label is None:
        node_stat.xattrs.pop(XATTR_SECURITY_SELINUX, None)
    else:
        node_stat.xattrs[XATTR_SECURITY_SELINUX] = label


def _own_copy(leaf):
    clone = copy.copy(leaf)
    clone.stat = copy.copy(leaf.stat)
    clone.stat.xattrs = dict(leaf.stat.xattrs)
    return clone


def _relabel_dir(directory: tree.Directory, path: bytes, policy: Policy, labeled: dict) -> None:
    _set_label(directory.stat, policy.lookup(path, b"d"))
    base = path if path.endswith(b"/") else path + b"/"
    for name, node in directory.sorted_entries():
        full = base + name
        effective = policy.aliases.get(full, full)
        if isinstance(node, tree.Directory):
            _relabel_dir(node, effective, policy, labeled)
            continue
        label = policy.lookup(effective, _IFMT_CHARS.get(_stat.S_IFMT(node.stat.mode), b"-"))
        previous = labeled.get(id(node))
        if previous is not None and previous[1] != label:
            node = _own_copy(node)
            directory.entries[name] = node
        _set_label(node.stat, label)
        labeled.setdefault(id(node), (node, label))


def apply_policy(root: tree.Directory, policy: Policy) -> None:
    """Label every node of ``root`` (see the module docstring for the walk)."""
    _relabel_dir(root, b"/", policy, {})


def strip_labels(root: tree.Directory) -> None:
    """Remove ``security.selinux`` from every node."""
    for _path, node in tree.walk(root):
        node.stat.xattrs.pop(XATTR_SECURITY_SELINUX, None)


def selabel(root: tree.Directory, read_file: Callable[[tree.RegularFile], bytes]) -> bool:
    """Label ``root`` with the image's own policy (True), or strip all labels when it has none (False)."""
    policy = load_policy(root, read_file)
    if policy is None:
        strip_labels(root)
        return False
    apply_policy(root, policy)
    return True
