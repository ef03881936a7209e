"""A compact set of 64-bit fingerprints, for the frontier's seen-set.

A stdlib ``set`` of ints costs about 80 bytes per entry (an int object plus a hash slot),
which is 400 MB for five million URLs. This set stores the fingerprints themselves in
open-addressing tables (``array('Q')``, linear probing), 8 bytes per slot at a load factor
between 0.35 and 0.7: 11 to 23 bytes per URL. It is split into 256 shards by the top byte
of the fingerprint so that growing never rehashes more than 1/256 of the set at a time (no
long pause of the event loop).

Exact for what it stores: no false "seen" beyond the 64-bit fingerprint collisions
documented in ``_url`` (no Bloom filter). Fingerprint 0 is kept aside, since 0 marks an
empty slot.
"""

from __future__ import annotations

from array import array

__all__ = ["FingerprintSet"]

_SHARD_BITS = 8
_SHARDS = 1 << _SHARD_BITS
_SHIFT = 64 - _SHARD_BITS
_INITIAL_SLOTS = 64  # per shard: 256 x 64 x 8 B = 128 KiB to start
_MAX_LOAD = 0.7


class FingerprintSet:
    __slots__ = ("_has_zero", "_limits", "_masks", "_sizes", "_tables")

    def __init__(self) -> None:
        self._tables = [array("Q", bytes(8 * _INITIAL_SLOTS)) for _ in range(_SHARDS)]
        self._masks = [_INITIAL_SLOTS - 1] * _SHARDS
        self._sizes = [0] * _SHARDS
        self._limits = [int(_INITIAL_SLOTS * _MAX_LOAD)] * _SHARDS
        self._has_zero = False

    def add(self, fp: int) -> bool:
        """Add ``fp``; True if it was not there yet."""
        if not fp:
            new, self._has_zero = not self._has_zero, True
            return new
        shard = fp >> _SHIFT
        table = self._tables[shard]
        mask = self._masks[shard]
        i = fp & mask
        while True:
            slot = table[i]
            if not slot:
                table[i] = fp
                size = self._sizes[shard] = self._sizes[shard] + 1
                if size > self._limits[shard]:
                    self._grow(shard)
                return True
            if slot == fp:
                return False
            i = (i + 1) & mask

    def __contains__(self, fp: int) -> bool:
        if not fp:
            return self._has_zero
        shard = fp >> _SHIFT
        table = self._tables[shard]
        mask = self._masks[shard]
        i = fp & mask
        while True:
            slot = table[i]
            if slot == fp:
                return True
            if not slot:
                return False
            i = (i + 1) & mask

    def __len__(self) -> int:
        return sum(self._sizes) + self._has_zero

    def nbytes(self) -> int:
        """Bytes held by the tables (what the set costs in memory, near enough)."""
        return sum(t.itemsize * len(t) for t in self._tables)

    def _grow(self, shard: int) -> None:
        old = self._tables[shard]
        slots = len(old) * 2
        mask = slots - 1
        table = array("Q", bytes(8 * slots))
        for fp in old:
            if fp:
                i = fp & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = fp
        self._tables[shard] = table
        self._masks[shard] = mask
        self._limits[shard] = int(slots * _MAX_LOAD)
