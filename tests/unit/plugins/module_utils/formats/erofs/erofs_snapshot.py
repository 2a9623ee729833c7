# -*- coding: utf-8 -*-
"""Rebuild an EROFS image from a composefs-rs ``debug_img`` insta snapshot (``mkfs__*.snap``).

The snapshot prints every structure at its offset and every non-zero field with its width
(``U16``/``U32``/``U64``, or a bare byte), plus xattrs, inline data, names and hex-dumped bytes, and
the total size. Writing those bytes into a zeroed buffer gives back the image composefs-rs wrote
(the spec's section 11.9 publishes the sha256 of ``simple``, which checks this assembler).
"""

import re
import struct

_STRUCT = re.compile(r"^([0-9a-f]{8}) (\w+)$")
_FIELD = re.compile(r"^\s+\+([0-9a-f]+)\s+(.*)$")
_TOTAL = re.compile(r"total size (\d+)B")
_WIDTHS = {"U16": "<H", "U32": "<I", "U64": "<Q"}
_FILE_TYPES = {"RegularFile": 1, "Directory": 2, "CharacterDevice": 3, "BlockDevice": 4, "Fifo": 5, "Socket": 6, "Symlink": 7}
_RUST_ESCAPES = {"0": b"\0", "n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'"}


def rust_string(text):
    """Bytes of a Rust ``{:?}`` string literal body (without the quotes)."""
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out += char.encode()
            index += 1
            continue
        code = text[index + 1]
        if code == "u":
            end = text.index("}", index)
            out += chr(int(text[index + 3:end], 16)).encode()
            index = end + 1
        else:
            out += _RUST_ESCAPES[code]
            index += 2
    return bytes(out)


def _quoted(text):
    match = re.search(r'"((?:[^"\\]|\\.)*)"', text)
    return rust_string(match.group(1))


def _value(name, text):
    """Bytes of one ``name: value`` field."""
    typed = re.match(r"(U16|U32|U64)\((\d+)\)", text)
    if typed:
        return struct.pack(_WIDTHS[typed.group(1)], int(typed.group(2)))
    if name == "format":
        return struct.pack("<H", int(text.split()[0]))
    if name == "mode":
        return struct.pack("<H", int(text.split()[0], 8))
    if name == "file_type":
        return bytes((_FILE_TYPES[text],))
    if re.fullmatch(r"\d+", text):
        return bytes((int(text),))
    raise ValueError("unknown snapshot field %s: %s" % (name, text))


def assemble(snapshot_text):
    """The image bytes a snapshot describes."""
    total = int(_TOTAL.search(snapshot_text).group(1))
    image = bytearray(total)
    base = inline_base = 0
    for line in snapshot_text.splitlines():
        top = _STRUCT.match(line)
        if top:
            base = inline_base = int(top.group(1), 16)
            continue
        field = _FIELD.match(line)
        if not field:
            continue
        offset = int(field.group(1), 16)
        rest = field.group(2)
        data = None
        if rest.startswith("--- inline directory entries"):
            inline_base = base + offset
            continue
        if rest.startswith("# name:"):
            data = _quoted(rest)
            position = inline_base + offset
        elif rest.startswith("#"):
            continue  # padding note
        elif rest.startswith("xattr:"):
            index, name_len, value_size = (int(x) for x in re.match(r"xattr: \((\d+) (\d+) (\d+)\)", rest).groups())
            pieces = re.findall(r'"((?:[^"\\]|\\.)*)"', rest)
            suffix, value = rust_string(pieces[0]), rust_string(pieces[1])
            assert (len(suffix), len(value)) == (name_len, value_size)
            data = struct.pack("<BBH", name_len, index, value_size) + suffix + value
            position = base + offset
        elif rest.startswith("inline:"):
            data = _quoted(rest)
            position = base + offset
        elif re.match(r"^([0-9a-f]{2} )+ *\|", rest):
            # a hexdump row of 16 bytes: the ASCII column shows how many leading bytes are omitted
            hex_part, ascii_part = rest.split("|", 1)
            data = bytes.fromhex(hex_part.replace(" ", ""))
            ascii_part = ascii_part.rstrip("|")
            position = base + offset + len(ascii_part) - len(data)
        else:
            name, _colon, value = rest.partition(": ")
            data = _value(name, value.strip())
            position = (inline_base if inline_base != base else base) + offset
        image[position:position + len(data)] = data
    return bytes(image)
