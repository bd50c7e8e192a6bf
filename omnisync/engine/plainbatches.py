"""Turning a staged export's work records into ready-to-send batches of plain upserts.

Pure: no I/O of its own (it is handed the records). A first run upserts
every member, and most rows are *plain* (see :mod:`omnisync.plainwrite`):
:func:`plain_batches` maps, fingerprints and packs those a batch at a time,
so that whoever sends them touches each batch, not each contact. Records
that are not plain upserts (tag-only work, an old tag to remove, a row the
general mapping must word) are passed on as they are, to go the general way.

The same function runs in the run's own process or, for a large export, in
a helper process (:mod:`omnisync.engine.producer`): its output is plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

from omnisync.inflight import PackedItems, pack_columns
from omnisync.omnisend.payloads import (
    ENVELOPE_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    BatchPacker,
    EncodedBatch,
)
from omnisync.plainwrite import PlainEncoder
from omnisync.planning import WorkRecord


@dataclass(frozen=True)
class PlainBatch:
    """Plain upserts packed into one batch: ``batch`` (e-mails and encoded items);
    per item in the same order, what the ledger and the plan tally need; and
    ``intent``, those items packed for the ledger's in-flight record."""

    batch: EncodedBatch
    fingerprints: tuple[int, ...]
    then_tag: tuple[bool, ...]
    in_ledger: tuple[bool, ...]
    intent: PackedItems


def _plain_batch(
    batch: EncodedBatch,
    fingerprints: tuple[int, ...],
    then_tag: tuple[bool, ...],
    in_ledger: tuple[bool, ...],
) -> PlainBatch:
    intent = pack_columns(batch.emails, fingerprints, then_tag)
    return PlainBatch(batch, fingerprints, then_tag, in_ledger, intent)


@dataclass(frozen=True)
class OtherWork:
    """Work records to go the general way, in segment order."""

    records: tuple[WorkRecord, ...]


Produced = PlainBatch | OtherWork


def plain_batches(
    chunks: Iterable[list[WorkRecord]],
    *,
    encoder: PlainEncoder,
    fingerprint: Callable[[WorkRecord], int],
    max_items: int = MAX_BATCH_ITEMS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Generator[Produced, None, None]:
    """Full batches of the plain upserts in ``chunks``, and the other records.

    After each chunk, the records of that chunk that are not plain upserts
    come as one :class:`OtherWork`; the last, partial batch comes at the end.
    ``fingerprint`` gives a record's fingerprint (``StagedExport.fingerprint``).
    A record is a plain upsert when it needs an upsert, has no old tag to
    remove, and ``encoder`` encodes it.
    """
    packer = BatchPacker(max_items=max_items, max_bytes=max_bytes)
    # Per packed item, beside the packer's e-mails and items.
    fingerprints: list[int] = []
    then_tag: list[bool] = []
    in_ledger: list[bool] = []
    encode = encoder.encode
    for chunk in chunks:
        others: list[WorkRecord] = []
        for record in chunk:
            needs_tag = record[5]
            if not record[4] or (needs_tag and record[3] is not None):
                others.append(record)
                continue
            email = record[0]
            if not isinstance(email, str):
                others.append(record)
                continue
            known = bool(record[2])
            item = encode(record[6:], email, in_ledger=known)
            if item is None or ENVELOPE_BYTES + len(item) > max_bytes:
                others.append(record)  # the general path words it (or refuses it)
                continue
            full = packer.pack_encoded(email, item)
            if full is not None:
                count = len(full)
                yield _plain_batch(
                    full,
                    tuple(fingerprints[:count]),
                    tuple(then_tag[:count]),
                    tuple(in_ledger[:count]),
                )
                del fingerprints[:count], then_tag[:count], in_ledger[:count]
            fingerprints.append(fingerprint(record))
            then_tag.append(bool(needs_tag))
            in_ledger.append(known)
        if others:
            yield OtherWork(tuple(others))
    last = packer.flush_packed()
    if last is not None:
        yield _plain_batch(last, tuple(fingerprints), tuple(then_tag), tuple(in_ledger))
