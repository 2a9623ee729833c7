# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an OCI image keeps alive in a composefs repository: the objects its streams reach (layer: oci).

Spec: ``composefs-repo.md`` sections 10.2-10.4 (the streams of an image, described in ``image.py``)
and 12.2 (the garbage collector's walk); upstream: composefs-rs ``crates/composefs/src/repository.rs``
(``gc``, ``walk_streams``).

The walk starts at the manifest stream's ``streams/`` entry. Each stream object it reaches adds
its object refs (JSON, file contents) and its named refs:

- a ``composefs.image*`` key adds the EROFS image object and, when the EROFS images are read,
  every object the image names (``trusted.overlay.metacopy`` / ``redirect`` xattrs);
- any other key (config, layers) leads into that stream when a ``streams/`` entry names its
  object, as the collector walks it (section 12.2 step 6: after a crash between a config and a
  manifest rewrite, the older config object is kept but its refs are not followed); otherwise the
  object is kept, not walked. Reading the image follows every such ref instead (``all_refs``).

The object refs reached are not checked for existence here: a caller with many images checks
the union once (``operations/status.py`` lists ``objects/`` when that is cheaper).

Cost: one read and parse per stream object; reading the EROFS images adds a full parse of each
(``formats/erofs/reader.py``), which is why it can be left out. Objects the EROFS images of an
image written by composefs tools name are the file objects of its layers, reached anyway.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image

__all__ = ["image_object_closure"]


def _erofs_references(repo, object_id: str) -> set:
    """The object ids the EROFS image stored as ``object_id`` names (it is read and parsed)."""
    # Imported here: only walks that read EROFS images need the reader (bench/bench_status.py).
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader as erofs_reader
    return {raw.hex() for raw in erofs_reader.referenced_objects(repo.read_object(object_id), repo.algorithm)}


def image_object_closure(repo, manifest_digest: str, erofs: bool = True, all_refs: bool = False,
                         missing: list | None = None) -> frozenset:
    """Return every object id the image of ``manifest_digest`` keeps alive, as the garbage collector walks it.

    ``erofs=False`` adds the EROFS image objects without reading them; ``all_refs=True`` follows
    every named ref into its stream, as reading the image does (no ``streams/`` listing then).
    DanglingRefError when the manifest stream's entry, a stream object or an EROFS image on the way
    is missing; with a ``missing`` list, each such error is appended to it instead and the walk goes
    on with the rest (the result then holds what was reached). Malformed data raises either way.
    """
    names_by_id = {} if all_refs else {entry.object_id: entry.name for entry in repo.list_stream_entries() if entry.object_id}
    live = set()
    name = oci_digest.manifest_stream_name(manifest_digest)
    try:
        todo = [(repo.stream_object_id(name), name)]
    except DanglingRefError as err:
        if missing is None:
            raise
        missing.append(err)
        return frozenset()
    while todo:
        object_id, name = todo.pop()
        if object_id in live:
            continue
        live.add(object_id)
        try:
            stream = oci_image.read_stream_object(repo, object_id, stream_name=name)
        except DanglingRefError as err:
            if missing is None:
                raise
            missing.append(err)
            continue
        live.update(raw.hex() for raw in stream.object_refs)
        for key, raw in sorted(stream.named_refs.items()):
            ref_id = raw.hex()
            if not oci_image.is_erofs_ref_key(key):
                if all_refs or ref_id in names_by_id:
                    todo.append((ref_id, names_by_id.get(ref_id)))
                else:
                    live.add(ref_id)  # kept, its content not walked
                continue
            live.add(ref_id)
            if not erofs:
                continue
            try:
                live.update(_erofs_references(repo, ref_id))
            except DanglingRefError as err:
                lost = DanglingRefError("EROFS image %s (%s) named by this stream is missing" % (ref_id, key),
                                        path=oci_image.stream_location(repo, name, object_id))
                if missing is None:
                    raise lost from err
                missing.append(lost)
    return frozenset(live)
