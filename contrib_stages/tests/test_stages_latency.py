"""Stage latencies computed by hand, one stage driven directly on a simulator."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_core import ConfigError, Request, make_rng
from hermes_contrib_stages import KVRetrieval, KVRetrievalConfig, RagRetrieval, RagRetrievalConfig
from hermes_contrib_stages.rag_retrieval import search_bytes, search_time

#: 10M 768-d float32 vectors, IVF4096, nprobe 32, one worker at 100 GB/s:
#: centroids 4096 * 768 * 4 = 12,582,912 B; lists 32/4096 * 1e7 * 768 * 4 = 240,000,000 B;
#: (252,582,912 B) / 100 GB/s = 2.52582912 ms, plus 100 us overhead.
IVF = dict(num_vectors=10_000_000, dim=768, nlist=4096, nprobe=32, bandwidth_GBps=100,
           overhead_us=100, top_k=4, doc_tokens=256)
IVF_SECONDS = 252_582_912 / 100e9 + 100e-6  # 2.62582912 ms
#: Llama-3.1-8B KV per token in bf16: 2 (K, V) * 32 layers * 8 KV heads * 128 dims * 2 B.
LLAMA8B_KV = 2 * 32 * 8 * 128 * 2  # 131,072 B


def rag(ctx, **kw) -> RagRetrieval:
    return RagRetrieval(RagRetrievalConfig(**{**IVF, **kw}), ctx)


def test_ivf_flat_search_time_by_hand():
    c = RagRetrievalConfig(**IVF)
    assert search_bytes(c) == 252_582_912
    assert search_time(c) == pytest.approx(IVF_SECONDS, rel=1e-12)
    # a flat index reads every vector and no centroids: 1M x 128 x 4 B / 307.2 GB/s
    flat = RagRetrievalConfig(num_vectors=1_000_000, dim=128, top_k=1, doc_tokens=0)
    assert search_bytes(flat) == 512_000_000
    assert search_time(flat) == pytest.approx(512e6 / 307.2e9)


def test_one_request_leaves_after_the_search_with_a_longer_prompt(stage_ctx):
    ctx, done = stage_ctx()
    stage = rag(ctx)
    req = Request(0, 0.0, 500, 10)
    stage.submit(req)
    assert stage.outstanding == 1 and stage.unfinished() == [req]
    ctx.sim.run()
    assert done == [(req, pytest.approx(IVF_SECONDS, rel=1e-12))]
    assert req.prompt_tokens == 500 + 4 * 256
    assert stage.outstanding == 0 and stage.unfinished() == []
    rep = stage.report()
    assert rep["jobs"] == rep["completed"] == 1 and rep["tokens_added_per_request"] == 1024
    assert rep["search_ms"] == pytest.approx(IVF_SECONDS * 1e3)
    assert rep["utilisation"] == pytest.approx(1.0) and rep["max_wait_s"] == 0.0


def test_busy_workers_queue_requests_fifo(stage_ctx):
    """Two workers, three requests at t = 0: two finish at T, the third waits T and
    finishes at 2T."""
    ctx, done = stage_ctx()
    stage = rag(ctx, workers=2)
    reqs = [Request(i, 0.0, 100, 10) for i in range(3)]
    for r in reqs:
        stage.submit(r)
    assert stage.outstanding == 3 and stage.unfinished() == reqs
    ctx.sim.run()
    T = IVF_SECONDS
    assert [(r.id, t) for r, t in done] == [(0, pytest.approx(T)), (1, pytest.approx(T)), (2, pytest.approx(2 * T))]
    rep = stage.report()
    assert rep["max_queue"] == 1 and rep["max_wait_s"] == pytest.approx(T)
    assert rep["mean_wait_s"] == pytest.approx(T / 3)
    assert rep["utilisation"] == pytest.approx(3 * T / (2 * 2 * T))


def test_rag_config_errors(registry):
    with pytest.raises(ConfigError, match=r"stages\[0\]: nprobe \(64\) must be <= nlist \(32\)"):
        registry.validate("stages", {"type": "rag_retrieval", **IVF, "nlist": 32, "nprobe": 64}, "stages[0]")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.k: unknown field"):
        registry.validate("stages", {"type": "rag_retrieval", **IVF, "k": 4}, "stages[0]")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.top_k: Field required"):
        registry.validate("stages", {"type": "rag_retrieval", "num_vectors": 10, "dim": 4, "doc_tokens": 1},
                          "stages[0]")


def test_kv_fetch_time_by_hand(stage_ctx, registry):
    """1000 prompt tokens of Llama-3.1-8B bf16 KV (131,072 B each) at 64 GB/s after 2 us:
    2 us + 131.072 MB / 64 GB/s = 2.050 ms. The model-derived size and the first-party
    ``host_dram`` tier (64 GB/s, 2 us) give the same number."""
    expected = 2e-6 + 1000 * LLAMA8B_KV / 64e9
    assert expected == pytest.approx(2.050e-3)
    for cfg in (dict(bandwidth_GBps=64, latency_us=2, kv_bytes_per_token=LLAMA8B_KV),
                dict(tier={"type": "host_dram"}, model="llama-3.1-8b"),
                dict(bandwidth_GBps=64, latency_us=2, model="llama-3.1-8b", kv_cache="bf16", tp=1)):
        ctx, done = stage_ctx(registry)
        stage = KVRetrieval(KVRetrievalConfig(**cfg), ctx)
        assert stage.kv_bytes_per_token == LLAMA8B_KV
        req = Request(0, 0.0, 1000, 8)
        stage.submit(req)
        ctx.sim.run()
        assert done == [(req, pytest.approx(expected, rel=1e-12))]
        assert req.prompt_tokens == 1000  # the prompt is unchanged
    # tp=4 shards the 8 KV heads: each device fetches a quarter, in parallel
    ctx, _ = stage_ctx(registry)
    assert KVRetrieval(KVRetrievalConfig(bandwidth_GBps=64, latency_us=2, model="llama-3.1-8b", tp=4),
                       ctx).fetch_time_for(1000) == pytest.approx(2e-6 + 1000 * LLAMA8B_KV / 4 / 64e9)
    # half the prompt cached: floor(1001 * 0.5) = 500 tokens
    ctx, _ = stage_ctx(registry)
    half = KVRetrieval(KVRetrievalConfig(bandwidth_GBps=64, latency_us=2, kv_bytes_per_token=LLAMA8B_KV,
                                         cached_fraction=0.5), ctx)
    assert half.fetch_time_for(1001) == pytest.approx(2e-6 + 500 * LLAMA8B_KV / 64e9)


def test_kv_hits_follow_the_seeded_stream(stage_ctx):
    """Hits are ``rng.random() < hit_rate``, one draw per request in arrival order; misses
    leave at once, hits after the fetch, one at a time on the single channel."""
    n, rate = 200, 0.3
    ctx, done = stage_ctx(seed=11)
    stage = KVRetrieval(KVRetrievalConfig(hit_rate=rate, bandwidth_GBps=10, latency_us=1,
                                          kv_bytes_per_token=1000), ctx)
    reqs = [Request(i, 0.0, 100, 1) for i in range(n)]
    for r in reqs:
        stage.submit(r)
    expected_hits = make_rng(11, "stage").random(n) < rate
    misses_now = [r.id for r, t in done]
    assert misses_now == [i for i in range(n) if not expected_hits[i]]
    ctx.sim.run()
    assert len(done) == n and stage.hits == int(expected_hits.sum()) and 0 < stage.hits < n
    fetch = 1e-6 + 100 * 1000 / 10e9
    hit_times = [t for r, t in done if expected_hits[r.id]]
    assert hit_times == pytest.approx(list(fetch * np.arange(1, stage.hits + 1)))
    rep = stage.report()
    assert rep["lookups"] == n and rep["bytes_fetched"] == stage.hits * 100 * 1000
    assert rep["mean_fetch_ms"] == pytest.approx(fetch * 1e3)


def test_kv_config_errors(registry):
    def check(spec, pattern):
        with pytest.raises(ConfigError, match=pattern):
            registry.validate("stages", {"type": "kv_retrieval", **spec}, "stages[0]")

    check({"kv_bytes_per_token": 1, "bandwidth_GBps": 1}, r"stages\[0\]: give either 'tier'")
    check({"kv_bytes_per_token": 1, "tier": {"type": "cxl"}, "latency_us": 1}, r"not both")
    check({"bandwidth_GBps": 1, "latency_us": 1}, r"exactly one of 'kv_bytes_per_token' or 'model'")
    check({"bandwidth_GBps": 1, "latency_us": 1, "model": "x", "kv_cache": "fp6"}, r"kv_cache: unknown precision")
    check({"kv_bytes_per_token": 1, "bandwidth_GBps": 1, "latency_us": 1, "hit_rate": 1.5},
          r"stages\[0\]\.hit_rate: Input should be less than or equal to 1")
