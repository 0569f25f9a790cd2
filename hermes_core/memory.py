"""The :class:`MemoryTier` interface: a level of the memory hierarchy (HBM, host DRAM,
CXL-attached memory, SSD) that can hold KV cache or weights."""

from __future__ import annotations

from abc import ABC
from typing import ClassVar

from pydantic import BaseModel


class MemoryTier(ABC):
    """A memory level with a capacity, a bandwidth and an access latency.

    Built as ``cls(config)``. Subclasses set ``name``, ``capacity_bytes`` (bytes),
    ``bandwidth`` (bytes/s, per direction to the device that uses it), ``latency`` (s) and
    ``provenance``.
    """

    Config: ClassVar[type[BaseModel]]

    name: str
    capacity_bytes: float
    bandwidth: float
    latency: float
    provenance: str = ""

    def transfer_time(self, nbytes: float) -> float:
        """Seconds to move ``nbytes`` bytes to or from this tier: ``latency + bytes / bandwidth``."""
        return self.latency + nbytes / self.bandwidth
