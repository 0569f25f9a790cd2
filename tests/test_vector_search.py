"""The ``cpu_socket`` device and the ``vector_search`` stage (``hermes_plugins.search``):
datasheet peaks, hand-computed batch times for flat and IVF indexes, dynamic batching, the
index footprint check, the handoff to the LLM, and bad configurations.

Hand figures (Xeon Platinum 8480+, Intel ARK): 56 cores x 2.0 GHz x 1024 bf16 FLOP per
cycle (AMX) = 114.688 TFLOP/s; x 64 fp32 FLOP per cycle (AVX-512) = 7.168 TFLOP/s; 8 x
DDR5-4800 x 8 B = 307.2 GB/s. A flat index of 1e6 x 768 fp32 vectors is 3.072 GB, 10 ms
per scan at 307.2 GB/s.
"""

from __future__ import annotations

import pytest

from hermes_core import TOKEN_ID_BYTES, CapacityError, ConfigError, Request, Simulator, load_plugins
from hermes_core.api import _build_client, load_scenario, run
from hermes_core.metrics import MetricsCollector
from hermes_plugins.cpu import CPUSocket, CPUSocketConfig
from hermes_plugins.devices import GPU, GPUConfig
from hermes_plugins.search import VectorSearchConfig, batch_time, index_bytes

GiB = 2**30
N, DIM = 1_000_000, 768
FLAT_SCAN_S = N * DIM * 4 / 307.2e9  # 10 ms
FP32_PEAK = 56 * 2.0e9 * 64  # 7.168e12


def cpu(**cfg) -> CPUSocket:
    return CPUSocket(CPUSocketConfig(**cfg))


def search(**cfg) -> VectorSearchConfig:
    return VectorSearchConfig(**{"num_vectors": N, "dim": DIM, **cfg})


def scenario(stage: dict, *, n: int = 10, isl: int = 100, osl: int = 1, device: dict | None = None,
             llm: bool = False) -> dict:
    """``n`` simultaneous requests (closed loop, concurrency n); type ``rag`` = [retriever]
    or [retriever, llm]."""
    clients = [{"name": "retriever", "device": device or {"type": "cpu_socket"},
                "stage": {"type": "vector_search", **stage}}]
    steps = ["retriever"]
    if llm:
        clients.append({"name": "llm", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}})
        steps.append("llm")
    return {"name": "vs", "workload": {"type": "closed_loop", "concurrency": n, "num_requests": n, "isl": isl,
                                       "osl": osl, "request_type": "rag"},
            "clients": clients, "request_types": {"rag": steps}}


# -- cpu_socket ---------------------------------------------------------------------------
def test_xeon_8480p_datasheet_figures():
    d = cpu()
    assert d.name == "Xeon-Platinum-8480+"
    assert d.peak_flops("bf16") == pytest.approx(114.688e12, rel=1e-12)
    assert d.peak_flops("int8") == pytest.approx(229.376e12, rel=1e-12)
    assert d.peak_flops("fp32") == pytest.approx(7.168e12, rel=1e-12)
    assert d.memory_bandwidth == pytest.approx(307.2e9, rel=1e-12)
    assert d.memory_bytes == 512 * GiB  # 8 x 64 GiB, one DIMM per channel
    assert d.link_bandwidth == pytest.approx(4 * 16e9 * 2)  # 4 UPI links x 16 GT/s x 2 B
    with pytest.raises(ValueError, match="no fp16 peak; available: bf16, fp32, int8"):
        d.peak_flops("fp16")


def test_xeon_6980p_datasheet_figures():
    d = cpu(preset="xeon_6980p")
    assert d.peak_flops("bf16") == pytest.approx(128 * 2.0e9 * 1024, rel=1e-12)  # 262.144 TFLOP/s
    assert d.peak_flops("fp16") == d.peak_flops("bf16")  # AMX-FP16
    assert d.peak_flops("fp32") == pytest.approx(16.384e12, rel=1e-12)
    assert d.memory_bandwidth == pytest.approx(614.4e9, rel=1e-12)  # 12 x DDR5-6400 x 8 B
    assert d.memory_bytes == 768 * GiB
    assert d.link_bandwidth == pytest.approx(288e9)  # 6 x 24 GT/s x 2 B


def test_cpu_socket_roofline_and_overrides():
    d = cpu()
    # m = 1 bf16 GEMM 4096 x 4096: weights dominate, (4096 + 4096^2 + 4096) x 2 B over DRAM
    assert float(d.gemm_time(1, 4096, 4096, "bf16")) == pytest.approx((2 * 4096 + 4096**2) * 2 / 307.2e9)
    # 4096^3: 2 x 4096^3 FLOP on AMX (1.198 ms) beats 3 x 4096^2 x 2 B (0.328 ms)
    assert float(d.gemm_time(4096, 4096, 4096, "bf16")) == pytest.approx(2 * 4096**3 / 114.688e12)
    assert d.gemm_time([0, 1], 16, 16, "bf16")[0] == 0.0
    assert float(d.memory_time(3.072e9)) == pytest.approx(0.010)
    assert float(d.attention_time(1.0e12, 0.0, "prefill", "bf16")) == pytest.approx(1e12 / 114.688e12)
    assert float(d.attention_time(0.0, 1e9, "decode", "bf16")) == 0.0
    slow = cpu(compute_efficiency=0.5, memory_efficiency=0.8, memory_bandwidth_GBps=250, memory_GiB=64)
    assert float(slow.memory_time(3.072e9)) == pytest.approx(3.072e9 / (250e9 * 0.8))
    assert float(slow.gemm_time(4096, 4096, 4096, "bf16")) == pytest.approx(2 * 4096**3 / (114.688e12 * 0.5))
    assert slow.memory_bytes == 64 * GiB


def test_cpu_socket_unknown_preset_names_the_path():
    sc = scenario({"num_vectors": 10, "dim": 4}, device={"type": "cpu_socket", "preset": "xeon_9999"})
    with pytest.raises(ConfigError, match=r"clients\[0\]\.device.*unknown preset 'xeon_9999'; allowed: "
                                          r"xeon_6980p, xeon_8480p"):
        run(sc)


# -- batch times ----------------------------------------------------------------------------
def test_flat_batch_time_memory_then_compute_bound():
    d = cpu()
    t = batch_time(search(), d, [1, 46, 64])
    # q = 1 and 46: 3.072 GB streamed once (10 ms) outweighs 2 N d q FLOP at 7.168 TFLOP/s
    assert t[0] == pytest.approx(FLAT_SCAN_S, rel=1e-12)
    assert t[1] == pytest.approx(FLAT_SCAN_S, rel=1e-12)  # 9.857 ms of FLOP < 10 ms
    # q = 64: 2 x 1e6 x 768 x 64 FLOP = 98.3 GFLOP, 13.714 ms
    assert t[2] == pytest.approx(2 * N * DIM * 64 / FP32_PEAK, rel=1e-12)
    assert t[2] == pytest.approx(13.714e-3, rel=1e-4)


def test_ivf_batch_time_hand_computed():
    d = cpu()
    cfg = search(index="ivf", nlist=1000, nprobe=10)
    t1, t8 = batch_time(cfg, d, [1, 8])
    # coarse: 1000 centroids x 768 x 4 B = 3.072 MB -> 10 us (FLOP: 1.7 us at q = 8)
    # scan: each query reads 10/1000 of 3.072 GB = 30.72 MB -> 100 us per query
    assert t1 == pytest.approx(10e-6 + 100e-6, rel=1e-12)
    assert t8 == pytest.approx(10e-6 + 8 * 100e-6, rel=1e-12)
    # per_query_us adds q x that
    cfg2 = search(index="ivf", nlist=1000, nprobe=10, per_query_us=50)
    assert batch_time(cfg2, d, 8) == pytest.approx(10e-6 + 8 * 100e-6 + 8 * 50e-6, rel=1e-12)


def test_batch_time_applies_cpu_efficiencies_and_runs_on_gpu():
    slow = cpu(memory_efficiency=0.5)
    assert batch_time(search(), slow, 1) == pytest.approx(2 * FLAT_SCAN_S, rel=1e-12)
    h100 = GPU(GPUConfig(preset="h100_sxm"))
    # datasheet bound on the GPU: one query streams 3.072 GB at 3.35 TB/s (0.917 ms); 64 queries
    # compute 98.3 GFLOP at 66.9 TFLOP/s fp32 (1.469 ms), more than the stream
    t = batch_time(search(), h100, [1, 64])
    assert t[0] == pytest.approx(N * DIM * 4 / 3.35e12, rel=1e-12)
    assert t[1] == pytest.approx(2 * N * DIM * 64 / 66.9e12, rel=1e-12)


def test_ten_simultaneous_queries_in_batches_of_four():
    res = run(scenario({"num_vectors": N, "dim": DIM, "max_batch": 4, "per_query_us": 100}))
    recs = sorted(res.steps, key=lambda r: r.request_id)
    assert len(recs) == 10
    # batch times: 10 ms scan + q x 0.1 ms: [0, 10.4], [10.4, 20.8], [20.8, 31.0] ms
    expect = [(0.0, 10.4e-3)] * 4 + [(10.4e-3, 20.8e-3)] * 4 + [(20.8e-3, 31.0e-3)] * 2
    for rec, (start, end) in zip(recs, expect):
        assert rec.started_s == pytest.approx(start, abs=1e-12)
        assert rec.ended_s == pytest.approx(end, abs=1e-12)
        assert rec.queued_s == 0.0
    # a retrieval-only request ends with its search (no token: TTFT = E2E)
    for req, (_, end) in zip(sorted(res.requests, key=lambda r: r.id), expect):
        assert req.completed and req.generated_tokens == 0
        assert req.finish_time == pytest.approx(end, abs=1e-12)
        assert req.first_token_time == req.finish_time
    rep = res.summary["clients"]["retriever"]["retriever/0"]
    assert (rep["batches"], rep["queries"], rep["max_batch_size"]) == (3, 10, 4)
    assert rep["mean_batch_size"] == pytest.approx(10 / 3)
    assert rep["busy_fraction"] == pytest.approx(1.0)  # busy from 0 to the end, 31 ms
    (dev,) = rep["devices"]
    assert dev["type"] == "Xeon-Platinum-8480+"
    assert dev["mbu"] == pytest.approx(3 * N * DIM * 4 / (31.0e-3 * 307.2e9))  # 0.968
    assert dev["mfu"] == pytest.approx(2 * N * DIM * 10 / (31.0e-3 * FP32_PEAK))  # 0.069


# -- footprint -------------------------------------------------------------------------------
def test_index_larger_than_memory_is_refused():
    big = {"num_vectors": 1_000_000_000, "dim": DIM}  # 3.072e12 B = 2861.02 GiB > 512 GiB
    with pytest.raises(CapacityError, match=r"clients\[0\]\.stage: .* needs 2861\.02 GiB, more than the "
                                            r"512\.00 GiB of one Xeon-Platinum-8480\+"):
        run(scenario(big))


def test_ivf_centroids_count_in_the_footprint():
    # 262144 x 1024 fp32 = exactly 1 GiB: a flat index fits 1 GiB, plus one 4 KiB centroid it does not
    exact = {"num_vectors": 262_144, "dim": 1024}
    assert index_bytes(VectorSearchConfig(**exact)) == GiB
    assert index_bytes(VectorSearchConfig(**exact, index="ivf", nlist=1, nprobe=1)) == GiB + 4096
    small = {"type": "cpu_socket", "memory_GiB": 1}
    run(scenario(exact, n=1, device=small))
    with pytest.raises(CapacityError, match=r"needs 1\.00 GiB, more than the 1\.00 GiB"):
        run(scenario({**exact, "index": "ivf", "nlist": 1, "nprobe": 1}, n=1, device=small))


# -- handoff to the LLM ------------------------------------------------------------------------
def test_handoff_appends_the_documents():
    sc = load_scenario(scenario({"num_vectors": 1000, "dim": 8, "k": 3, "doc_tokens": 100}))
    client = _build_client(0, sc.config.clients[0], Simulator(), load_plugins(), MetricsCollector(), 0,
                           lambda r: None, sc.base_dir, door=object())
    (vs,) = client.stages
    h = vs.handoff(Request(0, 0.0, 500, 1, cached_tokens=200))
    assert (h.context_tokens, h.kv_tokens, h.nbytes) == (500 + 300, 0, 300 * TOKEN_ID_BYTES)


def test_llm_prompt_is_isl_plus_documents_with_the_retriever_unplaced():
    isl, k, doc = 100, 4, 256
    n = 5
    res = run(scenario({"num_vectors": N, "dim": DIM, "k": k, "doc_tokens": doc}, n=n, isl=isl, llm=True))
    assert res.summary["requests"]["completed"] == n
    steps = {r.step for r in res.steps}
    assert steps == {"0:retriever", "1:llm"}
    # osl = 1: the LLM computes exactly each prompt, isl + k x doc_tokens tokens
    llm = res.summary["clients"]["llm"]["llm/0"]
    assert llm["tokens_computed"] == n * (isl + k * doc)
    # the user's request keeps its own prompt length; the LLM step starts when the search ends
    assert all(r.prompt_tokens == isl for r in res.requests)
    by_req = {}
    for r in res.steps:
        by_req.setdefault(r.request_id, {})[r.step] = r
    for rec in by_req.values():
        assert rec["1:llm"].queued_s == pytest.approx(rec["0:retriever"].ended_s)
        assert rec["0:retriever"].ended_s == pytest.approx(FLAT_SCAN_S)  # one batch of 5
    # no cluster: each request's documents move from the retriever to the LLM at no cost, counted
    assert res.summary["transfers"]["moves_not_modelled"] == n
    assert res.summary["transfers"]["transfers"] == 0


def test_documents_move_over_the_cluster_link():
    sc = scenario({"num_vectors": 1000, "dim": 8, "k": 2, "doc_tokens": 64}, n=1, isl=10, llm=True)
    sc["cluster"] = {
        "nodes": [{"name": "cpu0", "kind": "device", "device": {"type": "cpu_socket"}},
                  {"name": "gpu0", "kind": "device", "device": {"type": "gpu", "preset": "h100_sxm"}}],
        "links": [{"between": ["cpu0", "gpu0"], "bandwidth_GBps": 64, "latency_us": 2}],
    }
    sc["clients"][0]["place"] = "cpu0"
    del sc["clients"][0]["device"]
    sc["clients"][1]["place"] = "gpu0"
    res = run(sc)
    llm_step = next(r for r in res.steps if r.step == "1:llm")
    assert llm_step.bytes_in == 2 * 64 * TOKEN_ID_BYTES  # 512 B of token ids
    assert llm_step.transfer_s == pytest.approx(2e-6 + 512 / 64e9, rel=1e-9)
    assert res.summary["clients"]["llm"]["llm/0"]["tokens_computed"] == 10 + 2 * 64


# -- bad configurations ---------------------------------------------------------------------
@pytest.mark.parametrize("stage, message", [
    ({"nlist": 10}, r"clients\[0\]\.stage.*nlist apply only to index 'ivf'"),
    ({"index": "ivf", "nlist": 10}, r"clients\[0\]\.stage.*index 'ivf' needs nprobe"),
    ({"index": "ivf", "nlist": 10, "nprobe": 11}, r"nprobe \(11\) must be <= nlist \(10\)"),
    ({"index": "ivf", "nlist": 2000, "nprobe": 1}, r"nlist \(2000\) must be <= num_vectors \(1000\)"),
    ({"dtype": "fp16"}, r"clients\[0\]\.stage\.dtype: Xeon-Platinum-8480\+ has no fp16 peak"),
    ({"dtype": "fp64"}, r"clients\[0\]\.stage\.dtype.*unknown precision 'fp64'"),
    ({"max_batch": 0}, r"clients\[0\]\.stage\.max_batch"),
])
def test_bad_stage_config(stage: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        run(scenario({"num_vectors": 1000, "dim": 8, **stage}, n=1))


def test_refused_outside_a_request_type():
    alone = {"workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 1, "isl": 8, "osl": 1},
             "clients": [{"name": "r", "device": {"type": "cpu_socket"},
                          "stage": {"type": "vector_search", "num_vectors": 10, "dim": 4}}]}
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage: vector_search runs as a step of a request type"):
        run(alone)
    sc = scenario({"num_vectors": 10, "dim": 4}, n=1)
    sc["clients"][0]["stages"] = [sc["clients"][0].pop("stage")]
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stages\[0\]: vector_search hands its documents"):
        run(sc)
