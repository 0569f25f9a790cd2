"""Step costs computed by hand for the tiny model on the ideal toy device.

Toy device: 100 TFLOP/s, 1 TB/s, efficiency 1, no launch cost. Tiny model: hidden 256,
4 heads x 64, 2 KV heads, MLP 512, vocab 1000, 2 layers; bf16 everywhere (2 bytes).
Each operator's time is max(FLOP / 1e14, bytes / 1e12).
"""

import numpy as np
import pytest

from hermes_core import ModelSpec, Topology
from hermes_plugins.stages.step_cost import (
    StepCostModel, busiest_device_slots, expected_max_std_normal, masked_slot_bytes)

from conftest import TINY_MODEL, ToyConfig, ToyDevice

PEAK, BW = 1e14, 1e12


def rl(flops, nbytes):
    return max(flops / PEAK, nbytes / BW)


def gemm(T, n, k):
    # FLOP 2Tnk; bytes: input T*k, weights k*n (2 bytes each), output T*n (2 bytes)
    return rl(2 * T * n * k, (T * k + k * n) * 2 + T * n * 2)


def layer_linear(T):
    """One layer's token-proportional operators, by hand (bytes = elements * 2)."""
    t = 0.0
    t += T * 4 * 256 * 2 / BW            # fused residual add + input norm: 2 reads, 2 writes
    t += gemm(T, (4 + 2 * 2) * 64, 256)  # fused QKV: 512 outputs
    t += T * 2 * (4 + 2) * 64 * 2 / BW   # RoPE on q and k
    t += gemm(T, 256, 4 * 64)            # o_proj
    t += T * 4 * 256 * 2 / BW            # fused residual add + post-attention norm
    t += gemm(T, 2 * 512, 256)           # gate+up
    t += T * 3 * 512 * 2 / BW            # SiLU(gate) * up
    t += gemm(T, 256, 512)               # down (its residual add: the next layer's norm)
    return t


def head(S):
    return S * 4 * 256 * 2 / BW + gemm(S, 1000, 256)  # fused residual add + final norm, LM head


@pytest.fixture
def cost():
    spec = ModelSpec.from_hf_config(TINY_MODEL, name="tiny")
    dev = ToyDevice(ToyConfig())
    topo = Topology.single_switch(["d0"], 1e11, 0.0)
    return StepCostModel(spec, dev, 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 2048, 64)


def test_prefill_step_of_one_prompt(cost):
    T = 1000
    pairs = T * (T + 1) // 2
    # attention: 4 FLOP * 4 heads * 64 dims per (query, key) pair; K/V of 1000 tokens
    # (2 * 2 KV heads * 64 * 2 bytes = 512 B per token) plus Q in and O out (2*4*64*2 B).
    attn = rl(4 * 4 * 64 * pairs, T * 512 + T * 1024)
    expected = 2 * (layer_linear(T) + attn) + T * 2 * 256 * 2 / BW + head(1)
    t, flops, _ = cost.step(T, 1, pairs, T, T, 0, 0)
    assert t == pytest.approx(expected, rel=1e-12)
    # FLOP: 2 * T * (all layer weights) + attention + LM head on one token
    w_layer = 256 * 512 + 256 * 256 + 256 * 1024 + 512 * 256
    assert flops == pytest.approx(2 * (2 * T * w_layer + 4 * 4 * 64 * pairs) + 2 * 1000 * 256)


def test_decode_step_reads_the_kv_cache(cost):
    ctx = [99, 499]  # cached tokens of two decoding sequences
    kv = sum(c + 1 for c in ctx)
    attn = rl(4 * 4 * 64 * kv, kv * 512 + 2 * 1024)
    expected = 2 * (layer_linear(2) + attn) + 2 * 2 * 256 * 2 / BW + head(2)
    t, _, nbytes = cost.step(2, 2, 0, 0, 0, 2, kv)
    assert t == pytest.approx(expected, rel=1e-12)
    assert nbytes > 2 * kv * 512  # at least the KV cache of both layers was read


def test_mixed_step_prices_prefill_and_decode_attention_separately(cost):
    # one chunk of 100 new tokens on 300 cached, plus one decode on 50 cached
    q, c = 100, 300
    pairs = q * c + q * (q + 1) // 2
    pf = rl(4 * 4 * 64 * pairs, (c + q) * 512 + q * 1024)
    dec = rl(4 * 4 * 64 * 51, 51 * 512 + 1024)
    T = q + 1
    # the chunk does not finish its prompt here: only the decode samples a token
    expected = 2 * (layer_linear(T) + pf + dec) + T * 2 * 256 * 2 / BW + head(1)
    t, _, _ = cost.step(T, 1, pairs, c + q, q, 1, 51)
    assert t == pytest.approx(expected, rel=1e-12)


def test_tensor_parallel_adds_two_ring_allreduces_per_layer():
    spec = ModelSpec.from_hf_config(TINY_MODEL, name="tiny")
    dev = ToyDevice(ToyConfig())
    names = ["d0", "d1"]
    topo = Topology.single_switch(names, 1e11, 1e-6)
    c1 = StepCostModel(spec, dev, 2, 1, "bf16", "bf16", "bf16", topo, names, 64, 8)
    T = 10
    # all-reduce over 2 devices: 2*(n-1)/n * bytes / bw + path latency (the path between
    # two GPUs crosses the switch: two hops of 1 us each); the toy device has no fixed
    # collective latency.
    nbytes = T * 256 * 2
    ar = 2 * 1 / 2 * nbytes / 1e11 + 2e-6
    t_with = c1.linear[T]
    no_ar = StepCostModel(spec, dev, 2, 1, "bf16", "bf16", "bf16",
                          Topology.single_switch(names, 1e30, 0.0), names, 64, 8).linear[T]
    assert t_with - no_ar == pytest.approx(2 * 2 * ar, rel=1e-9)


def test_step_cost_table_lookups_are_bounded(cost):
    with pytest.raises(IndexError):
        cost.step(5000, 1, 0, 0, 0, 1, 1)


def test_pipeline_parallel_step_passes_every_stage_plus_send_recv():
    spec = ModelSpec.from_hf_config(TINY_MODEL, name="tiny")
    dev = ToyDevice(ToyConfig())
    names = ["s0", "s1"]  # tp=1, pp=2: one layer per stage
    topo = Topology.single_switch(names, 1e11, 1e-6)
    c = StepCostModel(spec, dev, 1, 2, "bf16", "bf16", "bf16", topo, names, 2048, 64)
    assert c.layers_per_stage == 1
    T = 1000
    pairs = T * (T + 1) // 2
    attn = rl(4 * 4 * 64 * pairs, T * 512 + T * 1024)
    stage = layer_linear(T) + attn  # each stage runs its one layer
    emb = T * 2 * 256 * 2 / BW  # the first stage gathers embeddings, once
    # activations of T tokens (hidden 256, bf16) cross one switch path (2 us) once
    p2p = 2e-6 + T * 256 * 2 / 1e11
    t, _, _ = c.step(T, 1, pairs, T, T, 0, 0)
    assert t == pytest.approx(2 * stage + emb + head(1) + p2p, rel=1e-12)


# -- sliding-window layers ----------------------------------------------------------------
def test_window_sums_by_hand():
    from hermes_plugins.stages.step_cost import window_sums

    # window 4. A prompt of 3 on an empty cache: queries see 1, 2, 3 keys (6 pairs), K/V of
    # 3 tokens. A chunk of 5 on 2 cached: positions 2..6 see 3, 4, 4, 4, 4 keys (19) and
    # read positions 0..6 (7). A chunk of 2 on 10 cached: 4 + 4 pairs, positions 7..11 (5).
    # A decode on 3 cached reads min(4, 4) = 4 tokens.
    assert window_sums(4, [0, 2, 10, 3], [3, 5, 2, 1]) == (6 + 19 + 8, 3 + 7 + 5, 4)
    # a window wider than every context changes nothing
    assert window_sums(10_000, [0, 300], [1000, 1]) == (1000 * 1001 // 2, 1000, 301)


def windowed_cost(window_layers):
    cfg = {**TINY_MODEL, "sliding_window": 4,
           "layer_types": ["sliding_attention" if i in window_layers else "full_attention" for i in range(2)]}
    spec = ModelSpec.from_hf_config(cfg, name="tiny-swa")
    topo = Topology.single_switch(["d0"], 1e11, 0.0)
    return StepCostModel(spec, ToyDevice(ToyConfig()), 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 2048, 64)


def test_sliding_window_layer_reads_only_its_window():
    # two decodes on 99 and 499 cached tokens; layer 0 slides over 4 tokens, layer 1 is full
    kv_full, kv_win = 100 + 500, 4 + 4
    full = rl(4 * 4 * 64 * kv_full, kv_full * 512 + 2 * 1024)
    win = rl(4 * 4 * 64 * kv_win, kv_win * 512 + 2 * 1024)
    expected = 2 * layer_linear(2) + full + win + 2 * 2 * 256 * 2 / BW + head(2)
    t, _, _ = windowed_cost({0}).step(2, 2, 0, 0, 0, 2, kv_full, window=(0, 0, kv_win))
    assert t == pytest.approx(expected, rel=1e-12)
    # without the window sums every layer is priced as full attention
    t_full, _, _ = windowed_cost({0}).step(2, 2, 0, 0, 0, 2, kv_full)
    assert t_full == pytest.approx(2 * (layer_linear(2) + full) + 2 * 2 * 256 * 2 / BW + head(2), rel=1e-12)


def test_mxfp4_experts_are_priced_at_their_own_precision():
    # (an H200: the toy device has no mxfp4 rate) 4.25-bit experts read 0.265625 of the bytes of 16-bit ones; everything else unchanged
    cfg = {**TINY_MODEL, "num_local_experts": 8, "num_experts_per_tok": 2}
    spec = ModelSpec.from_hf_config(cfg, name="tiny-moe")
    topo = Topology.single_switch(["d0"], 1e11, 0.0)
    from hermes_plugins.devices import GPU, GPUConfig

    args = (spec, GPU(GPUConfig(preset="h200_sxm")), 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 2048, 64)
    bf16, mx = StepCostModel(*args), StepCostModel(*args, experts="mxfp4")
    _, _, b16 = bf16.step(1, 1, 0, 0, 0, 1, 10)
    _, _, b4 = mx.step(1, 1, 0, 0, 0, 1, 10)
    # one decode token routes to 2 experts of 3 * 256 * 512 weights in each of 2 layers
    expert_bytes = 2 * 2 * 3 * 256 * 512
    assert b16 - b4 == pytest.approx(expert_bytes * (2 - 4.25 / 8))


def test_marlin_moe_kernel_prices_only_the_routed_experts_with_its_factor():
    """``moe_kernel="marlin"``: the expert GEMMs take ``moe_compute_marlin``; the dense
    operators and attention do not change. On a compute-bound prefill of 2048 tokens the
    difference of the two steps is the difference of the two MoE layers' times."""
    from hermes_plugins.devices import GPU, GPUConfig
    from hermes_plugins.stages.step_cost import moe_layer_time

    cfg = {**TINY_MODEL, "num_local_experts": 8, "num_experts_per_tok": 2}
    spec = ModelSpec.from_hf_config(cfg, name="tiny-moe")
    topo = Topology.single_switch(["d0"], 1e11, 0.0)
    dev = GPU(GPUConfig(preset="h200_sxm", efficiency={"moe_compute_mxfp4": 0.4, "moe_compute_marlin": 0.1}))
    args = (spec, dev, 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 2048, 64)
    default, marlin = StepCostModel(*args, experts="mxfp4"), StepCostModel(*args, experts="mxfp4", moe_kernel="marlin")
    pairs = 2048 * 2049 / 2
    t0, f0, _ = default.step(2048, 1, pairs, 2048, 2048, 0, 0, pf_n=1)
    t1, f1, _ = marlin.step(2048, 1, pairs, 2048, 2048, 0, 0, pf_n=1)
    T = np.array([2048.0])
    per_layer = (moe_layer_time(dev, T, 256, 512, 8, 2, "mxfp4", kernel="marlin")[0]
                 - moe_layer_time(dev, T, 256, 512, 8, 2, "mxfp4")[0])
    assert per_layer > 0
    assert t1 - t0 == pytest.approx(spec.layers * per_layer, rel=1e-9)
    assert f1 == f0  # the same work, done by a slower kernel


def test_int4_experts_always_take_the_marlin_factors():
    """INT4 weight-only experts (``int4_g32``) run only through Marlin: the same grouped GEMM
    time with and without ``kernel="marlin"``, and their weights stream at 4.5 bits."""
    from hermes_plugins.devices import GPU, GPUConfig

    dev = GPU(GPUConfig(preset="h200_sxm", efficiency={"moe_compute_mxfp4": 0.4, "moe_compute_marlin": 0.1}))
    m = np.array([1.0, 64.0, 512.0])
    t_int4 = dev.grouped_gemm_time(m, 8 * 4096, 7168, "int4_g32")
    assert np.allclose(t_int4, dev.grouped_gemm_time(m, 8 * 4096, 7168, "int4_g32", kernel="marlin"))
    # at m = 512 the GEMM is compute-bound: BF16 rate at the Marlin factor (0.1), not 0.4
    slower = dev.grouped_gemm_time(m, 8 * 4096, 7168, "mxfp4")
    assert t_int4[2] > 3 * slower[2]


def test_moe_kernel_on_a_dense_model_is_refused():
    from hermes_core import ConfigError, api

    sc = {"name": "t", "workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2, "num_requests": 1},
          "clients": [{"name": "e", "device": {"type": "gpu", "preset": "h200_sxm"},
                       "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "moe_kernel": "marlin"}}]}
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage\.moe_kernel: llama-3.1-8b has no routed experts"):
        api.run(sc)
    sc["clients"][0]["stage"]["moe_kernel"] = "cutlass"
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage\.moe_kernel: Input should be 'marlin'"):
        api.run(sc)


def test_block_fp8_checkpoint_adds_one_group_quant_kernel_per_converted_gemm():
    """A block-scaled FP8 checkpoint (``weight_block_size: [128, 128]``) run with FP8
    weights quantizes each converted GEMM's input per token in groups of 128: bf16 in (2 B),
    FP8 out (1 B) and one fp32 scale per 128 elements. The LM head stays in bf16. With
    bf16 weights, or without the quantization block, nothing is added."""
    quantized = {**TINY_MODEL, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    topo = Topology.single_switch(["d0"], 1e11, 0.0)

    def model(cfg, weights):
        spec = ModelSpec.from_hf_config(cfg, name="tiny")
        return StepCostModel(spec, ToyDevice(ToyConfig()), 1, 1, weights, "bf16", "bf16", topo, ["d0"], 2048, 64)

    assert ModelSpec.from_hf_config(quantized).fp8_block == 128
    T = 300
    per_elem = 2 + 1 + 4 / 128
    # inputs of qkv (256), o_proj (4 x 64), gate_up (256) and down (512) per token, 2 layers
    quant = 2 * T * (256 + 256 + 256 + 512) * per_elem / BW
    base, blocked = model(TINY_MODEL, "fp8"), model(quantized, "fp8")
    assert blocked.linear[T] - base.linear[T] == pytest.approx(quant, rel=1e-12)
    assert blocked.head[8] == pytest.approx(base.head[8], rel=1e-12)
    assert blocked.linear[0] == 0.0
    assert model(quantized, "bf16").linear[T] == pytest.approx(model(TINY_MODEL, "bf16").linear[T], rel=1e-12)


def test_expert_parallelism_gives_each_device_its_experts_whole_hand_computed():
    """Tiny MoE (4 experts of width 128, top-2) on tp=2. Tensor-parallel experts: each
    device holds all 4 at width 64. ep=2: each holds 2 experts at full width 128 and gets,
    on average, one of each token's two expert slots; the layer waits for the busier
    device, which holds kb = 1 + 0.5642 sqrt(2 x 1/2 x 1/2) = 1.399 slots of the one token
    (the expected larger of two normal shares; exactly, 4/3). One token (T=1) on the ideal
    toy device: its kb slots land on kb experts (active = 2 (1 - (1 - kb/2))), whose
    gate/up [1, 256 kb] x [256] and down [1, 128] x [128, 256 kb] GEMMs read their weights,
    plus the SiLU-and-multiply kernel over kb x 3 x 128 elements. FLOP are the average
    device's (one slot)."""
    moe_cfg = {**TINY_MODEL, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128}
    spec = ModelSpec.from_hf_config(moe_cfg, name="tiny-moe")
    topo = Topology.single_switch(["d0", "d1"], 1e11, 0.0)

    def model(ep):
        return StepCostModel(spec, ToyDevice(ToyConfig()), 2, 1, "bf16", "bf16", "bf16", topo,
                             ["d0", "d1"], 64, 8, ep=ep)

    ep_op = next(op for op in spec.layer_operators(2, moe=True, ep=2) if op.kind == "moe")
    assert (ep_op.n, ep_op.experts, ep_op.ep) == (128, 4, 2)
    t, flops, nbytes = model(2)._moe(ep_op, [1], "bf16", 2.0)
    kb = 1 + 0.5641896 * (2 * 0.5 * 0.5) ** 0.5
    expected = gemm(1, kb * 2 * 128, 256) + gemm(1, kb * 256, 128) + 1 * kb * 3 * 128 * 2 / BW
    assert t[0] == pytest.approx(expected, rel=1e-12)
    assert flops == pytest.approx(2 * 1 * 1 * 3 * 128 * 256)  # one expert slot of 3 matrices
    # without ep the same token runs 2 of 4 half-width experts (active = 4 (1 - 1/2) = 2)
    tp_op = next(op for op in spec.layer_operators(2, moe=True) if op.kind == "moe")
    t_tp, _, _ = model(1)._moe(tp_op, [1], "bf16", 2.0)
    assert t_tp[0] == pytest.approx(gemm(1, 2 * 2 * 64, 256) + gemm(1, 2 * 256, 64) + 2 * 3 * 64 * 2 / BW, rel=1e-12)


def test_ep_masked_slots_add_the_other_devices_slots_hand_computed():
    """vLLM's fused_moe with an expert map (``ep_masked_slots``) also runs over each
    token's slots routed to the other devices' experts: zeros written by both grouped GEMMs
    (2 x 128 and 256 wide) and the SiLU-and-multiply (reads 2 x 128, writes 128), 16-bit,
    so (5 x 128 + 256) x 2 bytes per slot; FP8 experts add their activation's
    quantization (128 values read, 128 bytes written). Tiny MoE on tp=2 with ep=2 and
    top-2: the busier device holds kb = 1 + 0.5642 sqrt(0.5 / T) of each token's 2 slots
    (:func:`busiest_device_slots`) and runs over the other 2 - kb as well. Without expert
    parallelism there is nothing to add."""
    moe_cfg = {**TINY_MODEL, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128}
    spec = ModelSpec.from_hf_config(moe_cfg, name="tiny-moe")
    topo = Topology.single_switch(["d0", "d1"], 1e11, 0.0)

    def model(ep, masked):
        return StepCostModel(spec, ToyDevice(ToyConfig()), 2, 1, "bf16", "bf16", "bf16", topo,
                             ["d0", "d1"], 64, 8, ep=ep, ep_masked_slots=masked)

    op = next(op for op in spec.layer_operators(2, moe=True, ep=2) if op.kind == "moe")
    T = [1, 7, 40]
    base, b_bytes = model(2, False)._moe(op, T, "bf16", 2.0)[::2]
    masked, m_bytes = model(2, True)._moe(op, T, "bf16", 2.0)[::2]
    per_slot = (5 * 128 + 256) * 2
    other = {t: 2 - (1 + 0.5641896 * (0.5 / t) ** 0.5) for t in T}  # 0.601, 0.849, 0.937
    assert masked - base == pytest.approx([t * other[t] * per_slot / BW for t in T], rel=1e-6)
    assert m_bytes - b_bytes == pytest.approx([t * other[t] * per_slot for t in T], rel=1e-6)
    fp8_extra = model(2, True)._moe(op, T, "fp8", 2.0)[0] - model(2, False)._moe(op, T, "fp8", 2.0)[0]
    assert fp8_extra == pytest.approx([t * other[t] * (per_slot + 128 * 3) / BW for t in T], rel=1e-6)
    assert masked_slot_bytes(256, 128, "bf16") == per_slot
    # the whole step: 2 MoE layers of the tiny model, each with the same addition
    tp_op = next(op for op in spec.layer_operators(2, moe=True) if op.kind == "moe")
    assert model(1, True)._moe(tp_op, T, "bf16", 2.0)[0] == pytest.approx(model(1, False)._moe(tp_op, T, "bf16", 2.0)[0])
    lin = model(2, True).linear[40] - model(2, False).linear[40]
    assert lin == pytest.approx(2 * 40 * other[40] * per_slot / BW, rel=1e-6)


def test_busiest_expert_parallel_device_sets_the_layer_time():
    """Expected maximum of n standard normals (tables of normal order statistics) and the
    busiest device's slots: 8 devices, top-8 of 256 experts. One token: 1 + 1.4236 x
    sqrt(8 x 1/8 x 7/8) = 2.33 slots (of 8, at most 8); 4 tokens: 6.66 (mean 4); 1024
    tokens: 1067 (mean 1024); at most min(k, E / ep) per token; ep = 1: no spread."""
    assert [round(expected_max_std_normal(n), 4) for n in (1, 2, 4, 8, 16)] == [0.0, 0.5642, 1.0294, 1.4236, 1.766]
    T = np.array([1.0, 4.0, 1024.0])
    kb = busiest_device_slots(T, 8, 8, 256)
    assert kb * T == pytest.approx([1 + 1.4236 * (7 / 8) ** 0.5, 4 + 1.4236 * (3.5) ** 0.5,
                                    1024 + 1.4236 * (1024 * 7 / 8) ** 0.5], rel=1e-4)
    assert busiest_device_slots(np.array([1.0]), 8, 8, 16)[0] == 2.0  # 2 experts per device: at most 2 slots
    assert busiest_device_slots(np.array([3.0]), 8, 1, 256)[0] == 8.0


def test_shared_experts_beside_the_routed_ones_take_the_longer_path_hand_computed():
    """``shared_stream_tokens``: up to that many tokens a MoE layer's shared experts run
    beside its router and routed experts, so the layer costs ``max(shared, routed)`` for
    the two instead of their sum. Tiny MoE (4 experts of width 128, top-2, one shared
    expert of width 128) on the ideal toy device at T = 1: the router [1, 256] x [256, 4];
    the routed path activates 2 experts (4 (1 - (1 - 2/4))) of 2 x 128 gate/up and 128
    down; the shared path is one gated MLP of width 128. Above the threshold, without
    ``shared_stream``, and for a model without shared experts nothing changes."""
    cfg = {**TINY_MODEL, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
           "shared_expert_intermediate_size": 128}
    spec = ModelSpec.from_hf_config(cfg, name="tiny-shared")
    topo = Topology.single_switch(["d0"], 1e11, 0.0)

    def model(spec, n):
        return StepCostModel(spec, ToyDevice(ToyConfig()), 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 64, 8,
                             shared_stream_tokens=n)

    routed = gemm(1, 4, 256) + gemm(1, 2 * 2 * 128, 256) + gemm(1, 2 * 256, 128) + 2 * 3 * 128 * 2 / BW
    shared = gemm(1, 2 * 128, 256) + 3 * 128 * 2 / BW + gemm(1, 256, 128)
    serial, beside = model(spec, 0), model(spec, 4)
    assert serial.linear_stream is None
    assert beside.linear[1] == pytest.approx(serial.linear[1], rel=1e-12)
    assert beside.linear[1] - beside.linear_stream[1] == pytest.approx(2 * min(routed, shared), rel=1e-12)
    t_serial, f_serial, b_serial = beside.step(1, 1, 0, 0, 0, 1, 10)
    t_beside, f_beside, b_beside = beside.step(1, 1, 0, 0, 0, 1, 10, shared_stream=True)
    assert t_serial - t_beside == pytest.approx(2 * min(routed, shared), rel=1e-12)
    assert (f_beside, b_beside) == (f_serial, b_serial)  # the same work, in less time
    assert beside.linear_stream[5] == beside.linear[5]  # above the threshold: in turn
    unshared = ModelSpec.from_hf_config({**cfg, "shared_expert_intermediate_size": 0}, name="tiny-moe")
    assert model(unshared, 4).linear_stream is None


@pytest.mark.parametrize("ep, tp, match", [
    (3, 6, r"\.ep: 4 experts do not split over ep=3"),
    (4, 2, r"\.ep: ep=4 must divide tp=2"),
])
def test_expert_parallelism_that_does_not_split_is_refused(ep, tp, match):
    from hermes_core import ConfigError
    moe = ModelSpec.from_hf_config({**TINY_MODEL, "num_attention_heads": 12, "num_key_value_heads": 6,
                                    "head_dim": 64, "num_local_experts": 4, "num_experts_per_tok": 2,
                                    "moe_intermediate_size": 128}, name="m")
    with pytest.raises(ConfigError, match=match):
        moe.check_parallelism(tp, 1, "stage.parallelism", ep)
    with pytest.raises(ConfigError, match=r"\.ep: expert parallelism needs a MoE model"):
        ModelSpec.from_hf_config(TINY_MODEL, name="dense").check_parallelism(2, 1, "stage.parallelism", 2)


# tiny multi-head latent attention model: 4 heads, q_lora 64, kv_lora 32, RoPE 16, nope 32, v 32
TINY_MLA = {**TINY_MODEL, "num_key_value_heads": 4, "q_lora_rank": 64, "kv_lora_rank": 32,
            "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32}


def mla_cost():
    spec = ModelSpec.from_hf_config(TINY_MLA, name="tiny-mla")
    topo = Topology.single_switch(["d0"], 1e11, 0.0)
    return StepCostModel(spec, ToyDevice(ToyConfig()), 1, 1, "bf16", "bf16", "bf16", topo, ["d0"], 2048, 64)


def mla_layer_linear(T):
    t = T * 4 * 256 * 2 / BW              # fused residual add + input norm
    t += gemm(T, 64 + 32 + 16, 256)       # fused q_a + kv_a down-projection
    t += T * 2 * 64 * 2 / BW + T * 2 * 32 * 2 / BW  # q_a and kv_a RMSNorms
    t += gemm(T, 4 * 48, 64)              # q_b: 4 heads of 32 + 16
    t += gemm(T, 4 * 64, 32)              # kv_b: 4 heads of key 32 + value 32
    t += T * 2 * (4 + 1) * 16 * 2 / BW    # RoPE on the queries' and the shared key's 16 dims
    t += gemm(T, 256, 4 * 32)             # o_proj from 4 values of 32
    t += T * 4 * 256 * 2 / BW             # fused residual add + post-attention norm
    t += gemm(T, 2 * 512, 256) + T * 3 * 512 * 2 / BW + gemm(T, 256, 512)
    return t


def test_mla_decode_reads_the_latent_cache():
    """Absorbed MLA decode: per (query, key) pair 2 * 4 heads * (2 * 32 + 16) FLOP; per
    cached token the 32 + 16 latent elements (2 bytes); per query 4 * (32 + 16) in and
    4 * 32 out."""
    ctx = [99, 499]
    kv = sum(c + 1 for c in ctx)
    attn = rl(2 * 4 * 80 * kv, kv * 48 * 2 + 2 * 4 * 80 * 2)
    expected = 2 * (mla_layer_linear(2) + attn) + 2 * 2 * 256 * 2 / BW + head(2)
    t, _, _ = mla_cost().step(2, 2, 0, 0, 0, 2, kv)
    assert t == pytest.approx(expected, rel=1e-12)


def test_mla_prefill_attends_over_up_projected_keys_and_values():
    """MLA prefill as multi-head attention: 2 * 4 heads * (48 + 32) FLOP per pair, keys of
    48 and values of 32 per head read in bf16, queries and outputs of as many."""
    T = 1000
    pairs = T * (T + 1) // 2
    attn = rl(2 * 4 * 80 * pairs, T * 4 * 80 * 2 + T * 4 * 80 * 2)
    expected = 2 * (mla_layer_linear(T) + attn) + T * 2 * 256 * 2 / BW + head(1)
    t, _, _ = mla_cost().step(T, 1, pairs, T, T, 0, 0)
    assert t == pytest.approx(expected, rel=1e-12)


def test_operators_per_forward_count_every_layer_and_the_head(cost):
    # 9 operators per tiny layer (add + norm, qkv, rope, attention, o, add + norm, gate_up,
    # act, down: 9) x 2 layers, plus embedding, final add + norm and LM head
    assert cost.ops_per_forward == 2 * 9 + 3
