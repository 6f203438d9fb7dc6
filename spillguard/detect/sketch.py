"""Approximate distinct counts of keyed 64-bit hashes (`scan --approx-subjects`): HyperLogLog registers in numpy.

The keys are already uniform 64-bit keyed hashes (keys.Hasher), so a sketch needs no hash function of its own:
the top PRECISION bits of a key pick a register, the rank of the first 1 bit among the other 64 - PRECISION
bits is kept if it is the largest that register has seen. A whole array of keys is added in a few vectorised
numpy steps (no per-key Python); two sketches merge by an element-wise maximum, so partition results add up
exactly as sketches of the union would. The count uses Ertl's improved raw estimator ("New cardinality
estimation algorithms for HyperLogLog sketches", 2017), which needs no empirical bias tables and is unbiased
from one key to far beyond 2^40; its standard error is 1.04 / sqrt(registers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

PRECISION = 14
REGISTERS = 1 << PRECISION  # 16 KiB of uint8 registers per sketch
RANK_BITS = 64 - PRECISION
RELATIVE_ERROR = 1.04 / math.sqrt(REGISTERS)  # standard error of the estimate: about 0.81 %
_LOW = np.uint64((1 << RANK_BITS) - 1)
_ALPHA_INF = 1.0 / (2.0 * math.log(2.0))


def _bit_length(w: np.ndarray) -> np.ndarray:
    """Bit length of each uint64 (0 for 0): smear the highest 1 bit down, then count the ones."""
    w = w.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        w |= w >> np.uint64(shift)
    counts: np.ndarray = np.bitwise_count(w)
    return counts


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        before = z
        z += x * y
        y += y
        if z == before:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        before = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == before:
            return z / 3.0


class HllSketch:
    """A HyperLogLog sketch of uint64 keys, with the add/update/len interface of detect.state.KeySet."""

    __slots__ = ("registers",)

    approximate = True

    def __init__(self, registers: np.ndarray | None = None) -> None:
        if registers is None:
            registers = np.zeros(REGISTERS, np.uint8)
        elif registers.dtype != np.uint8 or registers.size != REGISTERS:
            raise ValueError(f"a sketch has {REGISTERS} uint8 registers, not {registers.size} of {registers.dtype}")
        self.registers = registers

    @classmethod
    def of(cls, keys: Any) -> HllSketch:
        """A sketch of a key set (a KeySet, a sketch, or an array of keys)."""
        if isinstance(keys, HllSketch):
            return keys
        sketch = cls()
        sketch.add(keys if isinstance(keys, np.ndarray) else keys.array())
        return sketch

    def add(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, np.uint64)
        keys = keys[keys != 0]  # 0 means "no key"
        if not keys.size:
            return
        index = (keys >> np.uint64(RANK_BITS)).astype(np.intp)
        rank = (RANK_BITS + 1 - _bit_length(keys & _LOW)).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def update(self, other: Any) -> None:
        np.maximum(self.registers, HllSketch.of(other).registers, out=self.registers)

    def estimate(self) -> float:
        counts = np.bincount(self.registers, minlength=RANK_BITS + 2).astype(np.float64)
        m = float(REGISTERS)
        if counts[0] == m:
            return 0.0
        z = m * _tau(1.0 - counts[RANK_BITS + 1] / m)
        for k in range(RANK_BITS, 0, -1):
            z = 0.5 * (z + counts[k])
        z += m * _sigma(counts[0] / m)
        return _ALPHA_INF * m * m / z

    def __len__(self) -> int:
        return int(round(self.estimate()))

    def __bool__(self) -> bool:
        return bool(self.registers.any())

    def array(self) -> np.ndarray:
        """The registers (what a state file keeps; their dtype, uint8, tells them from exact keys)."""
        return self.registers

    @staticmethod
    def union_count(sets: Iterable[Any]) -> int:
        merged = HllSketch()
        for s in sets:
            merged.update(s)
        return len(merged)

    def __getstate__(self) -> dict[str, Any]:
        return {"registers": self.registers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        registers = state["registers"]
        # Read from Ray's object store the array is a read-only view; a merge updates registers in place.
        self.registers = registers if registers.flags.writeable else registers.copy()
