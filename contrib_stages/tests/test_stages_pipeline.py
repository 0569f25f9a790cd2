"""Multi-stage clients run through :func:`hermes_core.run`: retrieval before the first-party
``llm_serving`` stage on an H100."""

from __future__ import annotations

import pytest

from hermes_core import ConfigError, UnknownComponentError, run
from hermes_contrib_stages.rag_retrieval import RagRetrievalConfig, search_time

MODEL = "llama-3.1-8b"
H100 = {"type": "gpu", "preset": "h100_sxm"}
RAG = {"type": "rag_retrieval", "num_vectors": 10_000_000, "dim": 768, "nlist": 4096, "nprobe": 32,
       "bandwidth_GBps": 100, "overhead_us": 100, "top_k": 4, "doc_tokens": 256}
RAG_SECONDS = 252_582_912 / 100e9 + 100e-6  # see test_stages_latency.py
LLM = {"type": "llm_serving", "model": MODEL}


def scenario(stages: list[dict], workload: dict, **extra) -> dict:
    return {"name": "contrib-stages", "seed": 5, "workload": workload,
            "clients": [{"name": "c", "device": H100, "stages": stages}], **extra}


def one_request(isl: int, osl: int = 8) -> dict:
    return {"type": "closed_loop", "concurrency": 1, "num_requests": 1, "isl": isl, "osl": osl}


def test_ttft_is_retrieval_time_plus_ttft_of_the_longer_prompt(registry):
    """A 512-token request behind retrieval reaches the LLM at T_rag with 512 + 4 * 256 =
    1536 tokens; its TTFT must equal T_rag plus the TTFT of a plain 1536-token request."""
    cfg = RagRetrievalConfig(**{k: v for k, v in RAG.items() if k != "type"})
    assert search_time(cfg) == pytest.approx(RAG_SECONDS)
    with_rag = run(scenario([RAG, LLM], one_request(512)), registry=registry)
    plain = run(scenario([LLM], one_request(512 + 4 * 256)), registry=registry)
    (a,), (b,) = with_rag.requests, plain.requests
    assert a.completed and b.completed
    assert a.prompt_tokens == b.prompt_tokens == 1536
    ttft_a = a.first_token_time - a.arrival_time
    ttft_b = b.first_token_time - b.arrival_time
    assert ttft_b > 0
    assert ttft_a == pytest.approx(RAG_SECONDS + ttft_b, rel=1e-12, abs=1e-15)
    assert a.finish_time == pytest.approx(RAG_SECONDS + b.finish_time, rel=1e-12)
    assert with_rag.summary["ttft_ms"]["mean"] == pytest.approx(1e3 * (RAG_SECONDS + ttft_b), rel=1e-12)
    stages = with_rag.summary["clients"]["c"]
    assert set(stages) == {"c/0/rag_retrieval0", "c/0/llm_serving1"}
    assert stages["c/0/rag_retrieval0"]["completed"] == 1
    # the retrieval stage adds no device rows: the GPU is the only device reported
    assert [d["type"] for d in with_rag.summary["utilisation"]] == ["H100-SXM5-80GB"]


def three_stage(num_requests: int, **extra) -> dict:
    kv = {"type": "kv_retrieval", "hit_rate": 0.5, "tier": {"type": "host_dram"}, "model": MODEL}
    rag = {**RAG, "workers": 2, "overhead_us": 20_000}  # ~22.6 ms per search: a queue builds up
    wl = {"type": "synthetic", "arrival": "poisson", "rate_rps": 200, "num_requests": num_requests,
          "isl": {"dist": "uniform", "low": 100, "high": 600}, "osl": {"dist": "uniform", "low": 4, "high": 32}}
    return scenario([rag, kv, LLM], wl, **extra)


def test_request_conservation_through_three_stages(registry):
    """Every request submitted comes out exactly once: completed, dropped or (when the run
    is cut short) unfinished inside one of the stages."""
    n = 60
    full = run(three_stage(n), registry=registry)
    s = full.summary
    assert s["requests"]["total"] == n
    assert s["requests"]["completed"] + s["requests"]["dropped"] == n and s["requests"]["unfinished"] == 0
    assert sorted(r.id for r in full.requests) == list(range(n))
    st = s["clients"]["c"]
    assert st["c/0/rag_retrieval0"]["completed"] == n and st["c/0/rag_retrieval0"]["max_queue"] > 0
    kv = st["c/0/kv_retrieval1"]
    assert kv["lookups"] == n and 0 < kv["hits"] < n
    assert all(r.prompt_tokens >= 100 + 1024 for r in full.requests)

    cut = run(three_stage(n, max_time_s=0.5), registry=registry)
    c = cut.summary["requests"]
    assert c["total"] == n  # all 60 arrive within ~0.3 s at 200 req/s ...
    assert c["unfinished"] > 0  # ... but the 2 searchers (and the GPU) cannot keep up
    assert c["completed"] + c["dropped"] + c["unfinished"] == n
    ids = [r.id for r in cut.requests]
    assert sorted(ids) == list(range(n)) and len(set(ids)) == n
    unfinished = [r for r in cut.requests if not r.completed and not r.dropped_reason]
    assert len(unfinished) == c["unfinished"]
    # some were still queued for retrieval (original prompt), some inside the LLM stage
    assert any(r.prompt_tokens < 100 + 1024 for r in unfinished)
    assert any(r.prompt_tokens >= 100 + 1024 for r in unfinished)


def test_same_seed_same_results(registry):
    a = run(three_stage(30), registry=registry)
    b = run(three_stage(30), registry=registry)
    assert a.request_rows() == b.request_rows()
    assert a.summary["clients"] == b.summary["clients"]


def test_pipeline_config_errors_name_the_stage(registry):
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stages\[0\]: nprobe \(9999\) must be <= nlist \(4096\)"):
        run(scenario([{**RAG, "nprobe": 9999}, LLM], one_request(10)), registry=registry)
    bad_tier = {"type": "kv_retrieval", "tier": {"type": "nvme"}, "kv_bytes_per_token": 1}
    msg = r"clients\[0\]\.stages\[0\]\.tier\.type: unknown memory tier 'nvme'"
    with pytest.raises(UnknownComponentError, match=msg):
        run(scenario([bad_tier, LLM], one_request(10)), registry=registry)
