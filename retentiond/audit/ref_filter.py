"""Per-entry ref filters: how ``audit find`` locates a ref without one index row per ref.

A batch entry with many refs (``FILTER_MIN`` or more) gets one filter row instead of one
``audit_refs`` row per ref: a Bloom filter of its refs, built from the refs' own bits (refs
are HMAC outputs, uniformly distributed, so no further hashing is needed). ``audit find``
tests a ref against every filter (a few bytes each per probe), then re-reads only the entries
whose filter may hold it and checks their hash-covered refs, so a false positive costs one
entry read and a forged filter can never make a record look deleted. A filter is derived
from its entry's refs: ``audit verify --deep`` rebuilds every filter and compares.

Layout: the bitmap of ``m`` bits (``m`` a power of two, at least ``BITS_PER_REF`` per ref;
bit ``p`` is bit ``p % 8`` of byte ``p // 8``); a ref sets the bits given by its first
``PROBES`` little-endian 32-bit words modulo ``m``. With 16 to 32 bits per ref and 2 probes
the false-positive rate is at most 1.4 % per entry (0.4 % at 32 bits per ref): two probes
halve the cost of building a filter, which is on the relay's path for every batch.
"""

from __future__ import annotations

import sys
from array import array

from retentiond.audit.refs import REF_SIZE

#: Entries with at least this many refs are found through a filter, smaller ones through index rows.
FILTER_MIN = 256
BITS_PER_REF = 16
PROBES = 2
_MIN_BITS = 1024
_WORDS_PER_REF = REF_SIZE // 4


def _words(refs: bytes) -> array[int]:
    words = array("I")
    words.frombytes(refs)
    if sys.byteorder == "big":
        words.byteswap()
    return words


def build(refs: bytes) -> bytes:
    """Return the filter of the concatenated 32-byte ``refs``.

    Raises:
        ValueError: ``refs`` is not a whole number of refs.
    """
    if len(refs) % REF_SIZE:
        raise ValueError("refs must be a concatenation of 32-byte refs")
    count = len(refs) // REF_SIZE
    size = max(_MIN_BITS, 1 << (BITS_PER_REF * max(count, 1) - 1).bit_length())
    mask = size - 1
    bits = bytearray(size // 8)
    words = _words(refs)
    for probe in range(PROBES):
        for word in words[probe::_WORDS_PER_REF]:
            position = word & mask
            bits[position >> 3] |= 1 << (position & 7)
    return bytes(bits)


def may_hold(bits: bytes, ref: bytes) -> bool:
    """Return False when the entry whose filter is ``bits`` certainly does not carry ``ref``."""
    mask = len(bits) * 8 - 1
    if mask < 0:
        return False
    words = _words(bytes(ref[: PROBES * 4]))
    for word in words:
        position = word & mask
        if not bits[position >> 3] & (1 << (position & 7)):
            return False
    return True
