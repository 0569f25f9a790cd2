"""First-party ``vector_search`` stage (approximate-nearest-neighbour search over a document
index: the retrieval step of RAG) and the ``cpu_socket`` device it usually runs on
(:mod:`hermes_plugins.cpu`). Both are registered here, by the ``search`` entry point.

A first model with no measured error yet: a later issue adds IVF-PQ and HNSW indexes and
calibrates the cost against FAISS measurements.

Cost model of a batch of ``q`` queries
--------------------------------------
Index of ``N`` vectors (``num_vectors``) of ``d`` components (``dim``), ``b`` bytes each
(``dtype``, :data:`hermes_core.DTYPE_BYTES`: 4 for FAISS's float32):

* ``flat`` (FAISS ``IndexFlat``): a batch streams the whole index once and computes every
  query-vector distance, as FAISS's batched exhaustive search does with BLAS GEMMs over
  blocks of 4,096 queries x 1,024 vectors (``faiss/utils/distances.cpp``:
  ``distance_compute_blas_threshold = 20``, ``distance_compute_blas_query_bs = 4096``,
  ``distance_compute_blas_database_bs = 1024``)::

      FLOP  = 2 N d q             bytes = N d b

  Below 20 queries FAISS scans the index once per query instead, one thread per query, so
  small batches are optimistic here (one thread does not reach the socket's bandwidth):
  part of what the calibration will measure.

* ``ivf`` (FAISS ``IndexIVFFlat``, lists of equal size ``N / nlist``): the coarse quantizer
  compares every query with the ``nlist`` centroids, then each query scans its ``nprobe``
  lists exhaustively (FAISS wiki, "Faster search": the time grows linearly with the probes
  plus a constant for the quantization)::

      coarse:  FLOP = 2 nlist d q                 bytes = nlist d b
      scan:    FLOP = 2 (nprobe / nlist) N d q    bytes = q (nprobe / nlist) N d b

  Each query streams its own lists, as FAISS's CPU search parallelises over queries with no
  sharing of lists between them; a list probed by several queries of a batch is read once
  per query (no cache reuse; the union of the probed lists, ``nlist (1 - (1 - nprobe /
  nlist)^q)`` lists, would be the bound for a list-major scan, which FAISS does not do by
  default). So the scan's bytes exceed the flat scan's for ``q > nlist / nprobe``.

Time on the client's device (``ctx.devices[0]``, any :class:`~hermes_core.HardwareNode`)::

    t(q) = roofline(coarse) + roofline(scan) + q * per_query_us

``roofline(F, B) = max(F / (peak_flops(dtype) * e_c), B / (memory_bandwidth * e_m))``
(:func:`hermes_core.roofline_time`), the coarse quantizer and the scan one after the other
(the scan needs the quantizer's lists). ``e_c``, ``e_m``: the device's ``compute_efficiency``
and ``memory_efficiency`` attributes where it has them (``cpu_socket``), else 1 (the
datasheet bound: the ``gpu`` device's fitted factors describe LLM kernels, not FAISS's).
Queries and result lists (``q d`` and ``q k`` elements) are left out of the bytes.

What it does not model: query embedding (add it to ``per_query_us``), top-k selection,
re-ranking, fetching the documents' text, unequal list sizes, caches, and memory bandwidth
shared with other stages on the same device.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hermes_core import (
    TOKEN_ID_BYTES, CapacityError, ConfigError, Handoff, Request, Stage, StageContext, hookimpl, roofline_time,
)
from hermes_core.engine import PRIORITY_COMPLETION, PRIORITY_DEFAULT
from hermes_core.hardware import DTYPE_BYTES

from .cpu import CPUSocket

GiB = 2**30


class VectorSearchConfig(BaseModel):
    """``{type: vector_search, index: ivf, num_vectors: 10000000, dim: 768, nlist: 4096,
    nprobe: 32, k: 4}``.

    ``index``: ``flat`` (exhaustive, default) or ``ivf`` (IVF-Flat). ``num_vectors``: corpus
    size (vectors, >= 1). ``dim``: components per vector (>= 1). ``dtype``: precision of the
    stored vectors and of the distance math (default ``fp32``; a key of
    :data:`~hermes_core.DTYPE_BYTES` the device has a peak for). ``nlist`` (inverted lists,
    ``1 <= nlist <= num_vectors``) and ``nprobe`` (lists scanned per query, ``1 <= nprobe
    <= nlist``): required with ``ivf``, refused with ``flat``. ``k``: documents returned per
    query (default 4, LangChain's ``similarity_search`` default). ``doc_tokens``: tokens per
    retrieved document, appended to the prompt (default 256). ``max_batch``: most queries
    searched together (default 32). ``per_query_us``: fixed CPU time per query
    (microseconds, default 0), e.g. query embedding.
    """

    model_config = ConfigDict(extra="forbid")
    index: Literal["flat", "ivf"] = "flat"
    num_vectors: int = Field(ge=1)
    dim: int = Field(ge=1)
    dtype: str = "fp32"
    nlist: int | None = Field(None, ge=1)
    nprobe: int | None = Field(None, ge=1)
    k: int = Field(4, ge=1)
    doc_tokens: int = Field(256, ge=0)
    max_batch: int = Field(32, ge=1)
    per_query_us: float = Field(0.0, ge=0, allow_inf_nan=False)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPE_BYTES:
            raise ValueError(f"unknown precision '{v}'; allowed: {', '.join(DTYPE_BYTES)}")
        return v

    @model_validator(mode="after")
    def _index_fields(self) -> VectorSearchConfig:
        if self.index == "flat":
            given = [f for f in ("nlist", "nprobe") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} apply only to index 'ivf' (a flat index scans every vector)")
            return self
        missing = [f for f in ("nlist", "nprobe") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"index 'ivf' needs {' and '.join(missing)}")
        if self.nlist > self.num_vectors:
            raise ValueError(f"nlist ({self.nlist}) must be <= num_vectors ({self.num_vectors}): "
                             "every inverted list needs a vector")
        if self.nprobe > self.nlist:
            raise ValueError(f"nprobe ({self.nprobe}) must be <= nlist ({self.nlist})")
        return self


def index_bytes(c: VectorSearchConfig) -> float:
    """Memory the index takes (bytes): ``N d b`` for the vectors plus, for ``ivf``, ``nlist
    d b`` for the centroids. The inverted lists' ids (8 bytes per vector in FAISS) are left
    out."""
    b = DTYPE_BYTES[c.dtype]
    centroids = c.nlist * c.dim * b if c.index == "ivf" else 0.0
    return c.num_vectors * c.dim * b + centroids


def batch_cost(c: VectorSearchConfig, queries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(coarse_flops, coarse_bytes, scan_flops, scan_bytes)`` of a batch of ``queries``
    queries (int or int array; the module docstring's formulas). Coarse terms are 0 for a
    flat index."""
    q = np.asarray(queries, dtype=float)
    n, d, b = float(c.num_vectors), float(c.dim), DTYPE_BYTES[c.dtype]
    if c.index == "flat":
        zero = np.zeros_like(q)
        return zero, zero, 2.0 * n * d * q, np.full_like(q, n * d * b)
    share = c.nprobe / c.nlist
    return (2.0 * c.nlist * d * q, np.full_like(q, c.nlist * d * b),
            2.0 * share * n * d * q, q * share * n * d * b)


def batch_time(c: VectorSearchConfig, device, queries) -> np.ndarray:
    """Seconds to search a batch of ``queries`` queries on ``device``:
    ``roofline(coarse) + roofline(scan) + queries * per_query_us`` (module docstring).
    Raises ``ValueError`` if the device has no ``c.dtype`` peak."""
    fc, bc, fs, bs = batch_cost(c, queries)
    peak = device.peak_flops(c.dtype)
    e_c = getattr(device, "compute_efficiency", 1.0)
    e_m = getattr(device, "memory_efficiency", 1.0)
    bw = device.memory_bandwidth
    return (roofline_time(fc, bc, peak, bw, e_c, e_m) + roofline_time(fs, bs, peak, bw, e_c, e_m)
            + np.asarray(queries, dtype=float) * c.per_query_us * 1e-6)


class VectorSearch(Stage):
    """The ``vector_search`` stage (cost model in the module docstring).

    Dynamic batching: when the searcher is idle and queries wait, it takes up to
    ``max_batch`` of them, first come first served, and searches them as one batch; the
    queries arriving at one instant join the same batch. Each call's ``start_time`` is its
    batch's start, its ``finish_time`` the batch's end; it generates no token
    (``generated_tokens`` stays 0, ``first_token_time`` stays -1). Its result goes to the next
    step through :meth:`handoff`: the prompt grows by ``k * doc_tokens``.

    Runs only as a step of a request type (a scenario with ``request_types``), in a client
    with ``stage:`` (not in a ``stages:`` list, where the next stage would get the prompt
    without the documents). Raises :class:`~hermes_core.ConfigError` otherwise or when the
    device has no ``dtype`` peak, and :class:`~hermes_core.CapacityError` when the index
    does not fit the device's memory.
    """

    Config = VectorSearchConfig

    def __init__(self, config: VectorSearchConfig, ctx: StageContext):
        super().__init__(config, ctx)
        where = ctx.where
        if ".stages[" in where:
            raise ConfigError(f"{where}: vector_search hands its documents to the next step of a request type; "
                              "in a client's 'stages' list the next stage would get the prompt without them. "
                              "Give it a client of its own ('stage:') and name both clients in request_types")
        if ctx.door is None:
            raise ConfigError(f"{where}: vector_search runs as a step of a request type; describe request_types "
                              "(e.g. rag: [retriever, llm], or search: [retriever] alone)")
        dev = ctx.devices[0]
        try:
            self.peak = dev.peak_flops(config.dtype)
        except ValueError as exc:
            raise ConfigError(f"{where}.dtype: {exc}") from None
        self.index_bytes = index_bytes(config)
        if self.index_bytes > dev.memory_bytes:
            raise CapacityError(
                f"{where}: the {config.index} index ({config.num_vectors:,} x {config.dim} {config.dtype}"
                f"{f', {config.nlist:,} centroids' if config.index == 'ivf' else ''}) needs "
                f"{self.index_bytes / GiB:.2f} GiB, more than the {dev.memory_bytes / GiB:.2f} GiB of one "
                f"{dev.name}; use a smaller dtype, fewer vectors or a larger memory")
        sizes = np.arange(1, config.max_batch + 1)
        #: batch time (s) by batch size - 1
        self._times = batch_time(config, dev, sizes).tolist()
        fc, bc, fs, bs = batch_cost(config, sizes)
        self._flops = (fc + fs).tolist()
        self._bytes = (bc + bs).tolist()
        self._added = config.k * config.doc_tokens
        self._queue: deque[Request] = deque()
        self._running: list[Request] = []
        self._busy = False
        self._outstanding = 0
        self.batches = 0
        self.queries = 0
        self.max_batch_seen = 0
        self.busy_time = 0.0
        self.flops = 0.0
        self.bytes = 0.0

    # -- Stage interface ---------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return self._outstanding

    def submit(self, request: Request) -> None:
        request.replica = self.ctx.name
        self._outstanding += 1
        self._queue.append(request)
        if not self._busy:
            # start after every arrival at this instant, so they are searched together
            self._busy = True
            self.ctx.sim.schedule(0.0, self._start, priority=PRIORITY_DEFAULT)

    def _start(self) -> None:
        queue = self._queue
        if not queue:
            self._busy = False
            return
        q = min(len(queue), self.config.max_batch)
        batch = [queue.popleft() for _ in range(q)]
        now = self.ctx.sim.now
        for req in batch:
            req.start_time = now
        dt = self._times[q - 1]
        self.batches += 1
        self.queries += q
        self.max_batch_seen = max(self.max_batch_seen, q)
        self.busy_time += dt
        self.flops += self._flops[q - 1]
        self.bytes += self._bytes[q - 1]
        if self.ctx.trace is not None:
            self.ctx.trace.append((now, dt, "search", {"queries": q}))
        self._running = batch
        self.ctx.sim.schedule(dt, self._finish, priority=PRIORITY_COMPLETION)

    def _finish(self) -> None:
        batch, self._running = self._running, []
        now = self.ctx.sim.now
        for req in batch:
            req.finish_time = now
            self._outstanding -= 1
            self.ctx.on_done(req)
        self._start()

    def handoff(self, request: Request) -> Handoff:
        """The next step's prompt: ``prompt_tokens + k * doc_tokens`` tokens, no KV; the
        ``k * doc_tokens`` document tokens move as token ids (:data:`~hermes_core.TOKEN_ID_BYTES`
        each). The query's own prompt tokens are not counted in the bytes."""
        return Handoff(request.prompt_tokens + self._added, 0, float(self._added * TOKEN_ID_BYTES))

    def unfinished(self) -> list[Request]:
        """Queries being searched or waiting when the run stopped."""
        return list(self._running) + list(self._queue)

    # -- reporting ---------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """``batches``, ``queries``, ``mean_batch_size``, ``max_batch_size``,
        ``busy_fraction`` (share of the run's simulated time spent searching),
        ``index_GiB``, ``device`` and ``devices`` (busy fraction, MFU at the ``dtype`` peak,
        MBU at the device's memory bandwidth)."""
        now = self.ctx.sim.now
        dev = self.ctx.devices[0]
        busy = self.busy_time / now if now > 0 else 0.0
        mfu = self.flops / (now * self.peak) if now > 0 else 0.0
        mbu = self.bytes / (now * dev.memory_bandwidth) if now > 0 else 0.0
        return {
            "index": self.config.index,
            "index_GiB": self.index_bytes / GiB,
            "batches": self.batches,
            "queries": self.queries,
            "mean_batch_size": self.queries / self.batches if self.batches else 0.0,
            "max_batch_size": self.max_batch_seen,
            "busy_fraction": busy,
            "device": dev.describe(),
            "devices": [{"device": self.ctx.device_names[0], "type": dev.name, "busy_fraction": busy,
                         "mfu": mfu, "mbu": mbu}],
        }


@hookimpl
def hermes_register_stages(register):
    """Register ``vector_search``."""
    register("vector_search", VectorSearch, source="ANN search (flat, IVF-Flat) for RAG retrieval")


@hookimpl
def hermes_register_devices(register):
    """Register ``cpu_socket``."""
    register("cpu_socket", CPUSocket, source="server CPU socket roofline (Xeon 8480+, 6980P)")
