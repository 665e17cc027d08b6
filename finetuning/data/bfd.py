"""Best-fit-decreasing packing of example lengths into rows, over a whole dataset at once (numpy in, numpy out)."""

from __future__ import annotations

from collections import deque

import numpy as np

# sorted lengths turned into Python ints at a time by the BFD loop
_BFD_CHUNK = 1 << 16


def bfd_bins(lengths: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit decreasing of examples of ``lengths`` (each in 1..``seq_length``) into rows of ``seq_length``.

    Returns ``order`` (example positions, row after row) and ``row_sizes`` (examples per row). The rule is TRL's
    ``_pack_bfd``: examples longest first (ties in position order), each into the row with the least room that
    still fits it (rows with equal room: the one that got that room first), else a new row.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > seq_length):
        raise ValueError(f"every length must be in 1..{seq_length}")
    by_length = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    row_of = np.empty(len(lengths), dtype=np.int64)
    rooms: list[deque[int]] = [deque() for _ in range(seq_length + 1)]  # rows by their free room
    free = 0  # bit r set: some row has exactly r free (0 < r < seq_length)
    rows = 0
    for start in range(0, len(lengths), _BFD_CHUNK):
        chunk = sorted_lengths[start : start + _BFD_CHUNK].tolist()
        placed = [0] * len(chunk)
        for k, length in enumerate(chunk):
            fitting = free >> length
            if fitting:
                room = length + (fitting & -fitting).bit_length() - 1  # the least room >= length
                queue = rooms[room]
                row = queue.popleft()
                if not queue:
                    free ^= 1 << room
            else:
                room, row = seq_length, rows
                rows += 1
            placed[k] = row
            left = room - length
            if left:
                queue = rooms[left]
                if not queue:
                    free |= 1 << left
                queue.append(row)
        row_of[start : start + len(chunk)] = placed
    # examples row after row, in the order they were placed
    order = by_length[np.argsort(row_of, kind="stable")]
    return order, np.bincount(row_of, minlength=rows)
