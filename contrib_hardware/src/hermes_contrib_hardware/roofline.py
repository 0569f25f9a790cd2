"""The pricing both contrib devices share: a roofline whose compute side counts the FLOP the
matrix units really spend (padded tiles), with flat efficiencies and a fixed kernel cost.

Subclasses set ``_peaks`` (dtype -> FLOP/s), ``memory_bandwidth``, ``config`` (with
``compute_efficiency`` and ``memory_efficiency``) and ``_overhead`` (s), and implement
:meth:`PaddedRoofline.gemm_flops`.
"""

from __future__ import annotations

import numpy as np

from hermes_core import HardwareNode, dtype_bytes, roofline_time


def pad(x, multiple: int) -> np.ndarray:
    """``x`` rounded up to a multiple of ``multiple`` (``multiple = 0``: unchanged), as float."""
    x = np.asarray(x, dtype=float)
    return np.ceil(x / multiple) * multiple if multiple else x


class PaddedRoofline(HardwareNode):
    """A :class:`hermes_core.HardwareNode` priced by ``max(padded FLOP / (peak * e_c), bytes /
    (BW * e_m)) + overhead``; not registered itself."""

    def peak_flops(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``; ``ValueError`` naming the available ones."""
        try:
            return self._peaks[dtype]
        except KeyError:
            raise ValueError(
                f"{self.name} has no {dtype} peak; available: {', '.join(sorted(self._peaks))}"
            ) from None

    def gemm_flops(self, m, n, k, dtype: str) -> np.ndarray:
        """FLOP the hardware spends on ``m x k @ k x n`` in ``dtype`` (with tile padding)."""
        raise NotImplementedError

    def _roofline(self, flops, nbytes, dtype: str):
        c = self.config
        return roofline_time(flops, nbytes, self.peak_flops(dtype), self.memory_bandwidth,
                             c.compute_efficiency, c.memory_efficiency, self._overhead)

    def gemm_time(self, m, n, k, dtype: str):
        """Padded-FLOP roofline of one GEMM; 0 where ``m = 0``. ``bytes = (m k + k n) * dtype
        bytes + m n * 2`` (real, unpadded sizes). ``m`` is an int array; ``n`` and ``k`` ints
        or arrays (broadcast)."""
        m = np.asarray(m, dtype=float)
        n = np.asarray(n, dtype=float)
        k = np.asarray(k, dtype=float)
        nbytes = (m * k + k * n) * dtype_bytes(dtype) + m * n * 2.0
        return np.where(m > 0, self._roofline(self.gemm_flops(m, n, k, dtype), nbytes, dtype), 0.0)

    def attention_time(self, flops, bytes_, phase: str, dtype: str):
        """Plain roofline for both phases (``"prefill"``, ``"decode"``); 0 where ``flops = 0``."""
        if phase not in ("prefill", "decode"):
            raise ValueError(f"unknown attention phase '{phase}'; expected 'prefill' or 'decode'")
        flops = np.asarray(flops, dtype=float)
        return np.where(flops > 0, self._roofline(flops, bytes_, dtype), 0.0)

    def memory_time(self, bytes_):
        """``bytes / (BW * e_m) + overhead``; 0 where ``bytes = 0``."""
        b = np.asarray(bytes_, dtype=float)
        t = b / (self.memory_bandwidth * self.config.memory_efficiency) + self._overhead
        return np.where(b > 0, t, 0.0)
