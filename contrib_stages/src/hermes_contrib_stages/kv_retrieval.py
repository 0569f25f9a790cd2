"""``kv_retrieval``: fetch a cached prefix's KV cache from a slower memory tier (host DRAM,
CXL memory, a remote store) before prefill, as KV-cache-reuse systems (LMCache, Mooncake,
CachedAttention) do for multi-turn and RAG requests.

Model
-----
Each request draws ``u ~ U[0, 1)`` from the stage's random stream (``ctx.rng``, seeded from
the scenario seed and the stage's place in the scenario, so runs repeat exactly). With
``u < hit_rate`` its prefix is cached and the fetch takes::

    time = latency + cached_tokens * kv_bytes_per_token / bandwidth,
    cached_tokens = floor(prompt_tokens * cached_fraction)

on one of ``channels`` transfer channels (each at the full ``bandwidth``; a request that
finds them all busy waits in a FIFO queue). A miss passes to the next stage at once.

``bandwidth``/``latency`` come either from ``bandwidth_GBps`` + ``latency_us`` or from a
memory tier registered with hermes (``tier: {type: host_dram}``, ``tier: {type: cxl}``, or a
plugin's, e.g. hermes-contrib-hardware's ``cxl_expander``), whose ``bandwidth`` and
``latency`` it uses. ``kv_bytes_per_token`` is given, or derived from ``model`` (a catalog
name or ``config.json``) as ``2 * layers * kv_heads/tp * head_dim * bytes(kv_cache)``: the
KV of one token on one of ``tp`` devices, each of which fetches its own shard over its own
link in parallel.

What it does not model (keep these in mind when reading its numbers):

* the saving: the next stage is not told that the prefix is cached, so ``llm_serving``
  still computes the whole prompt's prefill. hermes's :class:`~hermes_core.Request` has no
  field for "tokens already in the KV cache"; until it does, this stage prices only the
  fetch (the cost side of KV reuse);
* where the hit rate comes from: it is an input, not derived from the tier's capacity or
  an eviction policy; the tier's ``capacity_bytes`` is not checked;
* overlap of the fetch with prefill (layer-by-layer pipelining), writing new KV back to the
  tier, and contention with other traffic on the link.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import DTYPE_BYTES, ModelSpec, Request, Stage, StageContext, dtype_bytes
from hermes_core.plugins import model_path

from .fifo import FifoServers


class KVRetrievalConfig(BaseModel):
    """``{type: kv_retrieval, hit_rate: 0.5, bandwidth_GBps: 64, latency_us: 2,
    kv_bytes_per_token: 131072}``.

    Tier: either ``bandwidth_GBps`` (10^9 B/s) and ``latency_us``, or ``tier`` (a memory
    tier spec such as ``{type: host_dram}``). Size: either ``kv_bytes_per_token`` (bytes)
    or ``model`` with ``kv_cache`` (precision, default bf16) and ``tp`` (default 1).
    ``hit_rate`` (share of requests whose prefix is cached, [0, 1], default 1);
    ``cached_fraction`` (share of the prompt that is the cached prefix, (0, 1], default 1);
    ``channels`` (concurrent fetches, default 1).
    """

    model_config = ConfigDict(extra="forbid")
    hit_rate: float = Field(1.0, ge=0, le=1)
    cached_fraction: float = Field(1.0, gt=0, le=1)
    bandwidth_GBps: float | None = Field(None, gt=0)
    latency_us: float | None = Field(None, ge=0)
    tier: dict[str, Any] | None = None
    kv_bytes_per_token: float | None = Field(None, gt=0)
    model: str | None = None
    kv_cache: str = "bf16"
    tp: int = Field(1, ge=1)
    channels: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> KVRetrievalConfig:
        explicit = (self.bandwidth_GBps is not None, self.latency_us is not None)
        if self.tier is None and explicit != (True, True):
            raise ValueError("give either 'tier' (a memory tier spec) or both 'bandwidth_GBps' and 'latency_us'")
        if self.tier is not None and any(explicit):
            raise ValueError("give either 'tier' or 'bandwidth_GBps'/'latency_us', not both")
        if (self.kv_bytes_per_token is None) == (self.model is None):
            raise ValueError("give exactly one of 'kv_bytes_per_token' or 'model'")
        if self.kv_cache not in DTYPE_BYTES:
            raise ValueError(f"kv_cache: unknown precision '{self.kv_cache}'; allowed: {', '.join(DTYPE_BYTES)}")
        return self


class KVRetrieval(Stage):
    """The ``kv_retrieval`` stage (see the module docstring). Built by hermes as
    ``KVRetrieval(config, ctx)``. Raises :class:`~hermes_core.ConfigError` (naming the
    field) for an unknown tier type or model."""

    Config = KVRetrievalConfig

    def __init__(self, config: KVRetrievalConfig, ctx: StageContext):
        super().__init__(config, ctx)
        if config.tier is not None:
            tier = ctx.registry.build("memory_tiers", config.tier, f"{ctx.where}.tier")
            self.tier_name = tier.name
            self.bandwidth = float(tier.bandwidth)
            self.latency = float(tier.latency)
        else:
            self.tier_name = "explicit"
            self.bandwidth = config.bandwidth_GBps * 1e9
            self.latency = config.latency_us * 1e-6
        if config.model is not None:
            spec = ModelSpec.from_file(model_path(ctx.registry, config.model, f"{ctx.where}.model"))
            self.kv_bytes_per_token = spec.kv_bytes_per_token(dtype_bytes(config.kv_cache), config.tp, 1)
        else:
            self.kv_bytes_per_token = float(config.kv_bytes_per_token)
        self.servers = FifoServers(ctx.sim, config.channels, self._done)
        self.lookups = 0
        self.hits = 0
        self.bytes_fetched = 0.0
        self.fetch_time = 0.0

    def fetch_time_for(self, prompt_tokens: int) -> float:
        """Seconds to fetch the cached prefix of a ``prompt_tokens`` prompt (on a hit)."""
        tokens = math.floor(prompt_tokens * self.config.cached_fraction)
        return self.latency + tokens * self.kv_bytes_per_token / self.bandwidth

    @property
    def outstanding(self) -> int:
        return self.servers.outstanding

    def submit(self, request: Request) -> None:
        self.lookups += 1
        hit = self.ctx.rng.random() < self.config.hit_rate  # always draw: one number per request
        if not hit:
            self.ctx.on_done(request)
            return
        self.hits += 1
        tokens = math.floor(request.prompt_tokens * self.config.cached_fraction)
        self.bytes_fetched += tokens * self.kv_bytes_per_token
        t = self.fetch_time_for(request.prompt_tokens)
        self.fetch_time += t
        self.servers.submit(request, t)

    def _done(self, request: Request) -> None:
        self.ctx.on_done(request)

    def unfinished(self) -> list[Request]:
        return self.servers.unfinished()

    def report(self) -> dict[str, Any]:
        return {
            "stage": "kv_retrieval",
            "tier": self.tier_name,
            "bandwidth_GBps": self.bandwidth / 1e9,
            "latency_us": self.latency * 1e6,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_fraction": self.hits / self.lookups if self.lookups else 0.0,
            "bytes_fetched": self.bytes_fetched,
            "mean_fetch_ms": self.fetch_time / self.hits * 1e3 if self.hits else 0.0,
            **self.servers.stats(self.ctx.sim.now),
        }
