"""The llm_serving stage end to end: hand-computed latencies, request conservation, KV
capacity, drops with reasons, determinism."""

import types

import numpy as np
import pytest

from hermes_core import CapacityError, ConfigError, api, hookimpl, load_plugins, run
from hermes_core.metrics import request_rows as metrics_rows
from hermes_plugins.batching import ChunkedPrefill, ContinuousBatching, GuaranteedNoEvict, StaticBatching

from conftest import serving_scenario, toy_plugin
from test_step_cost import head, layer_linear, rl

BW = 1e12


def _closed(n=1, c=1, isl=100, osl=3):
    return {"type": "closed_loop", "concurrency": c, "num_requests": n, "isl": isl, "osl": osl}


def test_prefix_cache_hit_skips_the_cached_prompt_hand_computed(registry, tiny_model):
    """Two requests with the same prompt (one dataset entry) on an engine with prefix
    caching: the second computes only its last prompt token, on 99 cached tokens, so its
    first step costs what a decode on 99 cached tokens costs. Without prefix caching both
    pay the full prefill."""
    emb = lambda T: T * 2 * 256 * 2 / BW  # noqa: E731

    def decode(ctx):
        kv = ctx + 1
        return 2 * (layer_linear(1) + rl(4 * 4 * 64 * kv, kv * 512 + 1024)) + emb(1) + head(1)

    pairs = 100 * 101 // 2
    prefill = 2 * (layer_linear(100) + rl(4 * 4 * 64 * pairs, 100 * 512 + 100 * 1024)) + emb(100) + head(1)
    wl = {**_closed(n=2), "num_prompts": 1}
    res = run(serving_scenario(tiny_model, wl, prefix_caching=True), registry=registry)
    first, second = res.request_rows()
    assert first["ttft_ms"] == pytest.approx(prefill * 1e3, rel=1e-9)
    assert second["ttft_ms"] == pytest.approx(decode(99) * 1e3, rel=1e-9)
    assert second["e2e_ms"] == pytest.approx((decode(99) + decode(100) + decode(101)) * 1e3, rel=1e-9)
    report = res.summary["clients"]["c"]["c/0"]
    assert report["prefix_cache_hit_tokens"] == 99
    assert report["prefix_cache_hit_rate"] == pytest.approx(99 / 200)
    cold = run(serving_scenario(tiny_model, wl), registry=registry)
    assert [r["ttft_ms"] for r in cold.request_rows()] == pytest.approx([prefill * 1e3] * 2, rel=1e-9)


def test_single_request_latencies_match_hand_computed_steps(registry, tiny_model):
    res = run(serving_scenario(tiny_model, _closed()), registry=registry)
    emb = lambda T: T * 2 * 256 * 2 / BW  # noqa: E731

    def decode(ctx):  # one decode on `ctx` cached tokens
        kv = ctx + 1
        return 2 * (layer_linear(1) + rl(4 * 4 * 64 * kv, kv * 512 + 1024)) + emb(1) + head(1)

    pairs = 100 * 101 // 2
    prefill = 2 * (layer_linear(100) + rl(4 * 4 * 64 * pairs, 100 * 512 + 100 * 1024)) + emb(100) + head(1)
    (row,) = res.request_rows()
    assert row["ttft_ms"] == pytest.approx(prefill * 1e3, rel=1e-9)
    e2e = prefill + decode(100) + decode(101)
    assert row["e2e_ms"] == pytest.approx(e2e * 1e3, rel=1e-9)
    assert row["tpot_ms"] == pytest.approx((decode(100) + decode(101)) / 2 * 1e3, rel=1e-9)
    s = res.summary
    assert s["requests"] == {"total": 1, "completed": 1, "dropped": 0, "unfinished": 0, "dropped_reasons": {}}
    # ITL pools the two gaps; the sketch is accurate to 0.1 %
    assert s["itl_ms"]["mean"] == pytest.approx((decode(100) + decode(101)) / 2 * 1e3, rel=1e-9)
    assert s["itl_ms"]["p50"] == pytest.approx(decode(100) * 1e3, rel=2e-3)
    assert s["throughput"]["output_tokens_per_s"] == pytest.approx(3 / e2e)


class _Checked:
    """Wraps a policy and asserts the KV invariants after every schedule() call."""

    max_used = 0

    def schedule(self, state):
        batch = super().schedule(state)
        kv = state.kv
        assert 0 <= kv.free <= kv.total
        assert sum(s.blocks for s in state.running) == kv.used
        assert all(s.blocks == 0 for s in state.waiting)
        assert len(state.running) <= state.limits.max_num_seqs
        if batch is not None:
            assert sum(batch.num_new) <= state.limits.max_num_batched_tokens
            for s, n in zip(batch.seqs, batch.num_new):
                assert s.blocks * kv.block_size >= s.num_computed + n
                assert 0 < n <= s.num_tokens - s.num_computed
        type(self).max_used = max(type(self).max_used, kv.used)
        return batch


def _checked_registry():
    classes = {}
    for name, base in (("checked_chunked", ChunkedPrefill), ("checked_continuous", ContinuousBatching),
                       ("checked_static", StaticBatching), ("checked_no_evict", GuaranteedNoEvict)):
        classes[name] = type(name, (_Checked, base), {"max_used": 0})

    @hookimpl
    def reg(register):
        for n, c in classes.items():
            register(n, c)

    plugin = types.SimpleNamespace(hermes_register_batching_policies=reg)
    return load_plugins(extra=[("toy", toy_plugin), ("checked", plugin)]), classes


# 5.9 MB of device memory: 3.4 MB of weights leave ~150 KV blocks of 16 tokens, so a
# burst of long requests must preempt.
TIGHT = {"type": "toy", "memory_GiB": 0.0055}
TIGHT_STAGE = {"gpu_memory_utilization": 1.0, "activation_reserve_GiB": 0, "max_model_len": 2048,
               "max_num_batched_tokens": 1024, "max_num_seqs": 32}


@pytest.mark.parametrize("policy", ["checked_chunked", "checked_continuous", "checked_static", "checked_no_evict"])
def test_every_request_ends_completed_or_dropped_and_kv_is_never_exceeded(tiny_model, policy):
    reg, classes = _checked_registry()
    wl = {"type": "synthetic", "rate_rps": 2000, "num_requests": 300,
          "isl": {"dist": "uniform", "low": 50, "high": 1500},
          "osl": {"dist": "uniform", "low": 1, "high": 400}}
    sc = serving_scenario(tiny_model, wl, device=TIGHT, batching=policy, **TIGHT_STAGE)
    res = run(sc, registry=reg)
    r = res.summary["requests"]
    assert r["total"] == 300
    assert r["completed"] + r["dropped"] == 300 and r["unfinished"] == 0
    # prompts of up to 1500 tokens + 400 output fit max_model_len; only the static and
    # continuous policies cannot run prompts above the 1024-token budget
    for row in res.request_rows():
        if row["status"] == "dropped":
            assert policy not in ("checked_chunked", "checked_no_evict")
            reason = row["dropped_reason"]
            if reason.startswith("prompt_exceeds_token_budget"):
                assert row["prompt_tokens"] > 1024
            else:  # vLLM v0 ignores a preempted sequence too long to recompute at once
                assert reason.startswith("recompute_exceeds_token_budget") and policy == "checked_continuous"
                assert row["prompt_tokens"] + row["generated_tokens"] > 1024
        else:
            assert row["generated_tokens"] == row["output_tokens"]
            assert row["first_token_s"] <= row["finish_s"]
    report = res.summary["clients"]["c"]["c/0"]
    assert classes[policy].max_used <= report["kv_blocks"]
    assert report["kv_peak_blocks_used"] == classes[policy].max_used
    if policy in ("checked_static", "checked_no_evict"):
        assert res.summary["preemptions"] == 0  # both reserve the full KV up front
    else:
        assert res.summary["preemptions"] > 0  # the cache is small enough to force some


def test_requests_that_can_never_fit_are_dropped_with_a_reason(registry, tiny_model):
    wl = {"type": "closed_loop", "concurrency": 1, "num_requests": 3, "isl": 2000, "osl": 100}
    res = run(serving_scenario(tiny_model, wl, max_model_len=2048), registry=registry)
    r = res.summary["requests"]
    assert r["dropped"] == 3 and r["completed"] == 0
    assert r["dropped_reasons"] == {"exceeds_max_model_len": 3}
    assert "prompt 2000 + output 100 tokens > max_model_len 2048" in res.request_rows()[0]["dropped_reason"]


def test_same_seed_same_results_other_seed_other_results(registry, tiny_model):
    wl = {"type": "synthetic", "rate_rps": 50, "num_requests": 200,
          "isl": {"dist": "lognormal", "mean": 300, "sigma": 0.8, "max": 1500},
          "osl": {"dist": "uniform", "low": 1, "high": 200}}
    sc = serving_scenario(tiny_model, wl)
    a = run(sc, registry=registry).summary
    b = run(sc, registry=registry).summary
    c = run(sc, registry=registry, seed=7).summary
    for s in (a, b, c):
        s.pop("wall_time_s")
    assert a == b
    assert a != c


def test_static_batching_admits_no_request_into_a_running_batch(registry, tiny_model):
    # 4 concurrent clients, batch size 2: requests 2 and 3 wait for the whole first batch
    wl = {"type": "closed_loop", "concurrency": 4, "num_requests": 4, "isl": 100, "osl": {"dist": "fixed", "value": 10}}
    sc = serving_scenario(tiny_model, wl, batching="static")
    sc["clients"][0]["stage"]["batching"]["max_batch_size"] = 2
    rows = run(sc, registry=registry).request_rows()
    first_batch_end = max(r["finish_s"] for r in rows[:2])
    assert all(r["first_token_s"] > first_batch_end for r in rows[2:])
    assert rows[0]["finish_s"] == rows[1]["finish_s"]


def test_model_that_does_not_fit_raises_capacity_error(registry):
    sc = serving_scenario("llama-3.1-405b", _closed(), device={"type": "gpu", "preset": "h100_sxm"})
    sc["clients"][0]["stage"]["parallelism"] = {"tp": 2}
    with pytest.raises(CapacityError, match=r"clients\[0\]\.stage: llama-3.1-405b .* 2 x H100"):
        run(sc, registry=registry)


def test_kv_cache_size_under_both_memory_rules_hand_computed(registry, tiny_model):
    """vLLM's rule takes ``gpu_memory_utilization`` of all memory and subtracts weights and
    activations; TensorRT-LLM's (``kv_cache_free_memory_fraction``) takes a share of what is
    left after them. 1 GiB device, 0.25 GiB activation reserve."""
    wl = _closed()
    base = serving_scenario(tiny_model, wl, device={"type": "toy", "memory_GiB": 1.0},
                            activation_reserve_GiB=0.25)
    vllm = run(base, registry=registry)
    rep = vllm.summary["clients"]["c"]["c/0"]
    weights = rep["weights_GiB_per_device"]
    assert rep["kv_cache_GiB_per_device"] == pytest.approx(0.9 * 1.0 - weights - 0.25)
    base["clients"][0]["stage"]["kv_cache_free_memory_fraction"] = 0.5
    trt = run(base, registry=registry).summary["clients"]["c"]["c/0"]
    assert trt["kv_cache_GiB_per_device"] == pytest.approx(0.5 * (1.0 - weights - 0.25))
    # 16-token blocks of 2 (K, V) x 2 layers x 2 KV heads x 64 dims x 2 bytes = 1 KiB per token
    assert trt["kv_blocks"] == int(0.5 * (1.0 - weights - 0.25) * 2**30 // (16 * 1024))


def test_unknown_model_lists_the_catalog(registry):
    sc = serving_scenario("llama-9", _closed())
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage\.model: unknown model 'llama-9'. Available: .*'llama-3.1-70b'"):
        run(sc, registry=registry)


def test_data_parallel_replicas_share_the_load(registry, tiny_model):
    wl = {"type": "closed_loop", "concurrency": 8, "num_requests": 40, "isl": 64, "osl": 8}
    sc = serving_scenario(tiny_model, wl)
    sc["clients"][0]["replicas"] = 2
    sc["clients"][0]["router"] = {"type": "least_outstanding"}
    res = run(sc, registry=registry)
    per = {}
    for r in res.request_rows():
        per[r["replica"]] = per.get(r["replica"], 0) + 1
    assert set(per) == {"c/0", "c/1"} and sum(per.values()) == 40
    assert abs(per["c/0"] - per["c/1"]) <= 4


def test_guaranteed_no_evict_admits_only_whole_reservations(registry, tiny_model):
    # ~150 blocks of 16 tokens (TIGHT): one 1000 + 400 token sequence fits, two do not
    wl = {"type": "closed_loop", "concurrency": 2, "num_requests": 2, "isl": 1000, "osl": 400}
    no_evict = run(serving_scenario(tiny_model, wl, device=TIGHT, batching="guaranteed_no_evict", **TIGHT_STAGE),
                   registry=registry)
    first, second = no_evict.request_rows()
    assert second["first_token_s"] > first["finish_s"]  # waited for the whole reservation
    assert no_evict.summary["preemptions"] == 0
    chunked = run(serving_scenario(tiny_model, wl, device=TIGHT, batching="chunked_prefill", **TIGHT_STAGE),
                  registry=registry)
    a, b = chunked.request_rows()
    assert b["first_token_s"] < a["finish_s"]  # admitted at once, paid for with preemption
    assert chunked.summary["preemptions"] > 0


def test_warmup_requests_are_simulated_but_left_out_of_the_summary(registry, tiny_model):
    """closed_loop warm-up requests run (they occupy the engine) but every summary figure
    covers the measured requests only, as vLLM's --num-warmups and aiperf's warm-up do.
    With two output tokens each request has exactly one inter-token gap, so the pooled ITL
    is the mean of the measured requests' ``finish - first token``."""
    wl = {"type": "closed_loop", "concurrency": 2, "num_requests": 10, "warmup_requests": 4,
          "drain_after_warmup": True, "isl": 30, "osl": 2}
    res = api.run(serving_scenario(tiny_model, wl), registry=registry)
    s = res.summary
    warm = [r for r in res.requests if r.warmup]
    meas = [r for r in res.requests if not r.warmup]
    assert [r.id for r in warm] == [0, 1, 2, 3] and len(meas) == 6
    assert s["requests"]["total"] == 6 and s["requests"]["completed"] == 6
    assert s["requests"]["warmup"] == {"total": 4, "completed": 4, "dropped": 0, "dropped_reasons": {}}
    ttft = np.mean([r.first_token_time - r.arrival_time for r in meas]) * 1e3
    assert s["ttft_ms"]["mean"] == pytest.approx(ttft)
    itl = np.mean([r.finish_time - r.first_token_time for r in meas]) * 1e3
    assert s["itl_ms"]["mean"] == pytest.approx(itl)
    start = min(r.arrival_time for r in meas)
    assert start == max(r.finish_time for r in warm)  # drained: the burst starts after the warm-up
    assert s["benchmark_duration_s"] == pytest.approx(max(r.finish_time for r in meas) - start)
    assert s["throughput"]["requests_per_s"] == pytest.approx(6 / s["benchmark_duration_s"])
    rows = list(metrics_rows(res.requests))
    assert [row["warmup"] for row in rows] == [True] * 4 + [False] * 6
    # without warm-up the same requests are all measured
    plain = api.run(serving_scenario(tiny_model, {**wl, "warmup_requests": 0, "drain_after_warmup": False}),
                    registry=registry)
    assert plain.summary["requests"]["total"] == 10 and "warmup" not in plain.summary["requests"]


def test_two_generating_llm_stages_in_one_pipeline_are_one_clear_error(registry, tiny_model):
    """A request has one output length: a second llm_serving stage would re-prefill it and
    emit tokens on top of the first stage's. That is refused, naming the stage's YAML path."""
    stage = {"type": "llm_serving", "model": tiny_model}
    sc = {"name": "two", "workload": _closed(n=2),
          "clients": [{"name": "c", "device": {"type": "toy"}, "stages": [stage, stage]}]}
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stages\[1\]: request 0 already generated 3 tokens"):
        api.run(sc, registry=registry)


def test_guaranteed_no_evict_without_chunking_schedules_whole_prompts(registry, tiny_model):
    """TensorRT-LLM with ``enable_chunked_prefill: false``: a prompt runs whole or waits.
    Two 1000-token prompts arrive together under a 1500-token budget. Chunked, the first
    step runs A (1000) and B's first 500 tokens, so A's first token waits for 1500 tokens
    of work; unchunked, A runs alone (B does not fit the 500 left) and B whole in the next
    step."""
    wl = {"type": "closed_loop", "concurrency": 2, "num_requests": 2, "isl": 1000, "osl": 4}
    stage = {"max_num_batched_tokens": 1500}
    chunked = run(serving_scenario(tiny_model, wl, batching="guaranteed_no_evict", **stage), registry=registry)
    whole = run(serving_scenario(tiny_model, wl, **stage,
                                 batching={"type": "guaranteed_no_evict", "enable_chunked_prefill": False}),
                registry=registry)
    (ca, cb), (wa, wb) = chunked.request_rows(), whole.request_rows()
    assert wa["first_token_s"] < ca["first_token_s"]
    assert wa["first_token_s"] < wb["first_token_s"]
    assert whole.summary["requests"]["completed"] == 2
    # a prompt longer than the budget can never run whole: rejected with the reason
    long = run(serving_scenario(tiny_model, {**wl, "isl": 2000}, **stage,
                                batching={"type": "guaranteed_no_evict", "enable_chunked_prefill": False}),
               registry=registry)
    assert long.summary["requests"]["dropped_reasons"] == {"prompt_exceeds_token_budget": 2}
    why = {r.dropped_reason for r in long.requests}
    assert len(why) == 1 and "the policy does not chunk prefills" in why.pop()


def test_no_chunking_rejects_a_chunk_cap(registry, tiny_model):
    wl = {"type": "closed_loop", "concurrency": 1, "num_requests": 1, "isl": 10, "osl": 2}
    sc = serving_scenario(tiny_model, wl, batching={"type": "guaranteed_no_evict", "enable_chunked_prefill": False,
                                                    "long_prefill_token_threshold": 256})
    with pytest.raises(ConfigError, match="long_prefill_token_threshold.*enable_chunked_prefill"):
        run(sc, registry=registry)


def test_batch_waiting_holds_new_requests_back_for_timeout_steps(registry, tiny_model, tmp_path):
    """TensorRT-LLM's batch waiting: A (100 + 400 tokens) starts alone at t=0; B (100 + 2)
    arrives at 0.1 ms while A decodes. With ``batch_wait_timeout_iters: 3`` and a token
    threshold B never reaches (0.9 x 1000 > 100 + 1 decode), B is held for exactly three
    steps, each one decode of A alone, so its TTFT grows by three of A's decode steps.
    A threshold B's prompt reaches (0.05 x 1000 = 50 tokens) or a zero timeout holds
    nothing: the same TTFT as without batch waiting."""
    trace = tmp_path / "two.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 100, "output_length": 400}\n'
                     '{"timestamp": 0.1, "input_length": 100, "output_length": 2}\n')
    wl = {"type": "mooncake_trace", "path": str(trace)}

    def rows(**wait):
        res = run(serving_scenario(tiny_model, wl, max_num_batched_tokens=1000,
                                   batching={"type": "guaranteed_no_evict", "enable_chunked_prefill": False, **wait}),
                  registry=registry)
        a, b = res.request_rows()
        return a, b

    a0, b0 = rows()
    a3, b3 = rows(batch_wait_timeout_iters=3, batch_wait_max_tokens_ratio=0.9)
    gap = (a0["finish_s"] - a0["first_token_s"]) / 399  # A's decode step, alone or with B
    # three steps of A alone (each a little under A's mean gap, which includes B's prefill)
    assert 2.5 * gap * 1e3 < b3["ttft_ms"] - b0["ttft_ms"] < 3.2 * gap * 1e3
    assert a3["ttft_ms"] == pytest.approx(a0["ttft_ms"])  # nothing decodes at t=0: A is not held
    _, b_ratio = rows(batch_wait_timeout_iters=3, batch_wait_max_tokens_ratio=0.05)
    _, b_zero = rows(batch_wait_timeout_iters=0, batch_wait_max_tokens_ratio=0.9)
    assert b_ratio["ttft_ms"] == pytest.approx(b0["ttft_ms"])
    assert b_zero["ttft_ms"] == pytest.approx(b0["ttft_ms"])
