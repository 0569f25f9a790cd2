"""``rag_retrieval``: a vector search before the LLM, which then gets the retrieved documents
in its prompt (the retrieval stage of a RAG request, as in the multi-stage requests of
HERMES/MIST).

Cost model (IVF-Flat, FAISS's ``IndexIVFFlat``; ``nlist = 1`` is a flat, exhaustive index)
-----------------------------------------------------------------------------------------
FAISS's IVF search first compares the query with the ``nlist`` centroids (the coarse
quantizer), then scans the ``nprobe`` closest inverted lists exhaustively; "the search time
roughly increases linearly with the number of probes plus some constant due to the
quantization" (FAISS wiki, "Faster search",
https://github.com/facebookresearch/faiss/wiki/Faster-search). With lists of equal size a
query reads::

    bytes = nlist * dim * b            (centroids; 0 when nlist = 1)
          + nprobe / nlist * num_vectors * dim * b   (the probed lists)

with ``b = bytes_per_elem`` (4 for FAISS's float32 vectors). Comparing a query with a
vector costs 2 * dim FLOP per dim * b bytes (0.5 FLOP/byte in float32), far below any
CPU's ridge point, so the search is memory-bound and takes ``overhead + bytes / bandwidth``
on one worker.

``workers`` searches run in parallel, each at ``bandwidth_GBps`` (the scan rate one worker
reaches; give ``socket bandwidth / workers`` to model workers that saturate one socket);
a query that finds every worker busy waits in a FIFO queue.

When its search ends the request leaves with ``top_k * doc_tokens`` more prompt tokens
(``request.prompt_tokens`` grows by that much) and goes to the next stage.

What it does not model: top-k selection and re-ranking, embedding the query (add it to
``overhead_us``), fetching the documents' text, caches (an index smaller than the LLC still
streams from DRAM here), unequal list sizes, HNSW-style graph indexes, and memory bandwidth
shared with the LLM when both run on one host.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import Request, Stage, StageContext

from .fifo import FifoServers


class RagRetrievalConfig(BaseModel):
    """``{type: rag_retrieval, num_vectors: 10000000, dim: 768, nlist: 4096, nprobe: 32,
    top_k: 4, doc_tokens: 256}``.

    Index: ``num_vectors``, ``dim``, ``bytes_per_elem`` (default 4, float32), ``nlist``
    (inverted lists; default 1 = flat index), ``nprobe`` (lists scanned per query, <=
    ``nlist``; default 1). Searchers: ``workers`` (parallel searches, default 1),
    ``bandwidth_GBps`` (scan rate of one worker, 10^9 B/s; default 307.2, one 8-channel
    DDR5-4800 socket), ``overhead_us`` (fixed time per query, default 0). Prompt growth:
    ``top_k`` documents of ``doc_tokens`` tokens each.
    """

    model_config = ConfigDict(extra="forbid")
    num_vectors: int = Field(gt=0, description="Vectors in the index.")
    dim: int = Field(gt=0, description="Vector dimension.")
    bytes_per_elem: float = Field(4.0, gt=0, description="Bytes per vector component (4 = float32).")
    nlist: int = Field(1, ge=1, description="Inverted lists (IVF cells); 1 = flat index.")
    nprobe: int = Field(1, ge=1, description="Lists scanned per query (<= nlist).")
    workers: int = Field(1, ge=1, description="Searches that run in parallel.")
    bandwidth_GBps: float = Field(307.2, gt=0, description="Scan bandwidth of one worker (GB/s).")
    overhead_us: float = Field(0.0, ge=0, description="Fixed time per query (us).")
    top_k: int = Field(ge=0, description="Documents retrieved per query.")
    doc_tokens: int = Field(ge=0, description="Tokens per retrieved document.")

    @model_validator(mode="after")
    def _check(self) -> RagRetrievalConfig:
        if self.nprobe > self.nlist:
            raise ValueError(f"nprobe ({self.nprobe}) must be <= nlist ({self.nlist})")
        return self


def search_bytes(c: RagRetrievalConfig) -> float:
    """Bytes one query reads: centroids (if ``nlist > 1``) plus ``nprobe / nlist`` of the
    vectors."""
    vec = c.dim * c.bytes_per_elem
    centroids = c.nlist * vec if c.nlist > 1 else 0.0
    return centroids + c.nprobe / c.nlist * c.num_vectors * vec


def search_time(c: RagRetrievalConfig) -> float:
    """Seconds one query occupies a worker: ``overhead + search_bytes / bandwidth``."""
    return c.overhead_us * 1e-6 + search_bytes(c) / (c.bandwidth_GBps * 1e9)


class RagRetrieval(Stage):
    """The ``rag_retrieval`` stage (see the module docstring). Built by hermes as
    ``RagRetrieval(config, ctx)``; runs on its own searchers, not on the replica's devices."""

    Config = RagRetrievalConfig

    def __init__(self, config: RagRetrievalConfig, ctx: StageContext):
        super().__init__(config, ctx)
        self.bytes_per_query = search_bytes(config)
        self.time_per_query = search_time(config)
        self.added_tokens = config.top_k * config.doc_tokens
        self.servers = FifoServers(ctx.sim, config.workers, self._done)
        self.completed = 0

    @property
    def outstanding(self) -> int:
        return self.servers.outstanding

    def submit(self, request: Request) -> None:
        self.servers.submit(request, self.time_per_query)

    def _done(self, request: Request) -> None:
        request.prompt_tokens += self.added_tokens
        self.completed += 1
        self.ctx.on_done(request)

    def unfinished(self) -> list[Request]:
        return self.servers.unfinished()

    def report(self) -> dict[str, Any]:
        return {
            "stage": "rag_retrieval",
            "search_ms": self.time_per_query * 1e3,
            "bytes_per_query": self.bytes_per_query,
            "tokens_added_per_request": self.added_tokens,
            "completed": self.completed,
            **self.servers.stats(self.ctx.sim.now),
        }
