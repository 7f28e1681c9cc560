"""Rows of integers of varying length held in two flat arrays (compressed sparse rows).

A compiled plan keeps each node's input positions this way instead of one tuple per node, so a
cached 100,000-node plan is a few arrays: little memory, and nothing for the cyclic garbage
collector to walk.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions start, start+1, ..., start+length-1 of every span, one after another."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.intp)
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=np.intp) + np.repeat(starts - (ends - lengths), lengths)


class Ragged:
    """Row i is `indices[indptr[i]:indptr[i + 1]]`; indexing gives it as a tuple of ints."""

    __slots__ = ("indices", "indptr")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        self.indptr = indptr
        self.indices = indices

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, indices: np.ndarray) -> Ragged:
        indptr = np.zeros(len(lengths) + 1, dtype=np.intp)
        np.cumsum(lengths, out=indptr[1:])
        return cls(indptr, indices)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, i: int) -> tuple[int, ...]:
        return tuple(self.indices[self.indptr[i] : self.indptr[i + 1]].tolist())

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        return iter(self.tuples())

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, which: np.ndarray) -> np.ndarray:
        """The concatenated rows `which`, in that order."""
        starts = self.indptr[which]
        return self.indices[spans(starts, self.indptr[which + 1] - starts)]

    def take(self, order: np.ndarray, relabel: np.ndarray) -> Ragged:
        """The rows in `order`, each entry j replaced by `relabel[j]`."""
        lengths = self.indptr[order + 1] - self.indptr[order]
        return Ragged.from_lengths(lengths, relabel[self.rows(order)])

    def tuples(self) -> list[tuple[int, ...]]:
        """Every row as a tuple (for the per-node loops that index rows one at a time)."""
        ptr = self.indptr.tolist()
        flat = self.indices.tolist()
        return [tuple(flat[ptr[k] : ptr[k + 1]]) for k in range(len(ptr) - 1)]
