"""Step cost of a fused prefill/decode batch on one tensor/pipeline-parallel replica.

One engine step runs a batch of prefill chunks (``q`` new tokens on top of ``c`` cached
tokens) and decodes (one new token on ``c`` cached). Its time on one pipeline stage is::

    linear[T]                          GEMMs, norms, RoPE, residual adds, all-reduces and the
                                       embedding at the batch's total token count T
  + L * attn_prefill(F_p, B_p)         one causal flash-attention launch per layer
  + L * attn_decode(F_d, B_d)          one paged decode-attention launch per layer
  + head[S]                            final norm + LM head on the S sampled sequences

with ``L`` layers per stage, plus the embedding gather on the first stage. Attention work aggregates over the batch:

* prefill FLOP ``F_p = 4 * h_q * d * sum_i (q_i c_i + q_i (q_i + 1) / 2)`` (QK^T and PV
  over the causal triangle, 2 FLOP per MAC), bytes ``B_p = sum_i (c_i + q_i) * kv_tok +
  2 * sum_i q_i * h_q * d * act`` (K/V once, Q in and O out);
* decode FLOP ``F_d = 4 * h_q * d * sum_i (c_i + 1)``, bytes ``B_d = sum_i (c_i + 1) *
  kv_tok + 2 * n * h_q * d * act``,

where ``kv_tok = 2 * h_kv * d * kv_bytes`` per device. Multi-head latent attention has
its own constants per phase (:meth:`hermes_core.ModelSpec.attention_work`): prefill over
up-projected keys and values, decode over the cached latent. Sliding-window layers (window
``W``) price the same formulas on the pairs and K/V within the window: a decode reads
``min(c + 1, W)`` tokens; a chunk's query at position ``j`` sees ``min(j + 1, W)`` keys and
the chunk reads ``min(c + q, q + W - 1)`` K/V tokens (:func:`window_sums`); the ``L``
layers split into full and windowed ones. With pipeline parallelism the step
passes all ``pp`` stages in turn plus ``pp - 1`` activation send/recvs; microbatch overlap
across stages is not modelled (a step's latency, not a pipelined throughput).

``linear`` and ``head`` are tables precomputed once per scenario over every possible T
and S (numpy, vectorised over the device's pricing methods), so a step evaluation is a few
table lookups and two roofline evaluations: O(1) in the batch size once its four sums are
known.

Block-scaled FP8 checkpoints (:attr:`ModelSpec.fp8_block`) run with FP8 weights add, before
each converted dense GEMM, one per-token-group quantization kernel priced as a memory
kernel over ``tokens * k * (act + 1 + 4 / group)`` bytes (bf16 in, FP8 values and one fp32
scale per group out): vLLM's ``W8A8BlockFp8LinearOp`` (``per_token_group_quant_fp8``),
SGLang's ``apply_w8a8_block_fp8_linear``. The router gates and the LM head stay unconverted
(:data:`UNQUANTIZED_GEMMS`, the checkpoints' ``modules_to_not_convert``). The fused MoE
quantizes its inputs inside the measured calls its efficiency is fitted on, so it adds
nothing.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hermes_core import HardwareNode, ModelSpec, Topology, dtype_bytes

#: GEMMs a block-FP8 checkpoint keeps in 16 bits (no activation quantization before them).
UNQUANTIZED_GEMMS = frozenset({"moe_router", "lm_head"})
#: A MoE layer's shared-expert operators and its routed path (router and fused experts):
#: the two that engines run concurrently (:attr:`StepCostModel.linear_stream`).
SHARED_EXPERT_OPS = frozenset({"shared_gate_up_proj", "shared_act", "shared_down_proj"})
ROUTED_EXPERT_OPS = frozenset({"moe_router", "moe_experts"})


class StepCostModel:
    """Prices engine steps for one replica.

    Args:
        model: the model's architecture.
        device: one device of the replica (all are identical).
        tp, pp: tensor- and pipeline-parallel degrees (``tp * pp`` devices).
        weights, activations, kv_cache: precisions (``"bf16"``, ``"fp8"``, ...).
        experts: precision of the routed experts' weights (``"mxfp4"`` for gpt-oss);
            ``None``: ``weights``.
        ep: expert-parallel degree of the routed experts within ``tp``.
        moe_kernel: fused-MoE kernel family other than the engine's default
            (:data:`hermes_plugins.devices.MOE_KERNELS`, e.g. ``"marlin"``); ``None``: the
            default. A device's measured MoE table is not used when it is set (the tables
            measure the default kernel).
        topology, device_names: interconnect and the replica's device node names, in
            ``[stage0: tp devices][stage1: ...]`` order.
        max_tokens: largest T to tabulate (max_num_batched_tokens).
        max_seqs: largest S to tabulate (max_num_seqs).
        shared_stream_tokens: largest T at which a MoE layer's shared experts may run on a
            second CUDA stream beside its router and routed experts (0: never). Such a
            layer then takes ``other + max(shared, routed)`` instead of their sum
            (aiconfigurator's ``OverlapOp`` of the two): vLLM's shared-experts stream (at
            most ``VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD`` = 256 tokens), SGLang's
            dual-stream MoE and TensorRT-LLM's ``maybe_execute_in_parallel`` under CUDA
            graphs, SGLang's shared expert fused into the routed kernel as one more expert
            (DeepSeek-V3/R1), whose weights a decode step reads alongside the routed ones.
            The steps that do so are the caller's choice (:meth:`step` ``shared_stream``);
            models without shared experts are unaffected.
        ep_masked_slots: with ``ep > 1``, the MoE kernels also process each token's slots
            routed to other devices' experts (vLLM's ``fused_moe`` with an expert map;
            :func:`masked_slot_bytes`); false: only the local slots (an all-to-all
            dispatch, or kernels that skip them).

    Raises ``ValueError`` if the device lacks a precision.
    """

    def __init__(self, model: ModelSpec, device: HardwareNode, tp: int, pp: int,
                 weights: str, activations: str, kv_cache: str, topology: Topology,
                 device_names: list[str], max_tokens: int, max_seqs: int, experts: str | None = None,
                 ep: int = 1, moe_kernel: str | None = None, shared_stream_tokens: int = 0,
                 ep_masked_slots: bool = False):
        self.model, self.device, self.tp, self.pp = model, device, tp, pp
        self.moe_kernel = moe_kernel
        self.ep_masked_slots = ep_masked_slots
        self.wdt, self.adt = weights, activations
        self.edt = experts or weights
        act_b = dtype_bytes(activations)
        device.peak_flops(weights)  # raises for an unsupported precision
        device.peak_flops(self.edt)
        layers = model.layers
        self.layers_per_stage = math.ceil(layers / pp)
        n_moe = len(model.moe_layers)
        moe_share = n_moe / layers if layers else 0.0
        T = np.arange(max_tokens + 1)
        tp_members = device_names[:tp]

        # block-scaled FP8 checkpoints run with FP8 weights: a per-token-group quantization
        # kernel reads each converted GEMM's bf16 input and writes FP8 values plus one fp32
        # scale per group (bytes per input element; 0: no such kernel)
        quant_b = act_b + 1.0 + 4.0 / model.fp8_block if model.fp8_block and weights == "fp8" else 0.0

        def ops_time(ops, tokens):
            """(time, flops, bytes) arrays over ``tokens`` for one pass over ``ops``."""
            t = np.zeros(len(tokens)); fl = np.zeros(len(tokens)); by = np.zeros(len(tokens))
            for op in ops:
                if op.kind == "gemm":
                    t += device.gemm_time(tokens, op.n, op.k, weights)
                    fl += 2.0 * tokens * op.n * op.k
                    by += op.n * op.k * dtype_bytes(weights) + tokens * (op.k + op.n) * act_b
                    if quant_b and op.name not in UNQUANTIZED_GEMMS:
                        nb = tokens * op.k * quant_b
                        t += device.memory_time(nb)
                        by += nb
                elif op.kind == "memory":
                    nb = tokens * op.elems_per_token * act_b
                    t += device.memory_time(nb)
                    by += nb
                elif op.kind == "allreduce":
                    nb = tokens * op.elems_per_token * act_b
                    est = topology.allreduce_time(tp_members, nb, device.collective_latency,
                                                  device.allreduce_algorithms)
                    t += np.where(tokens > 0, device.collective_time("all_reduce", nb, len(tp_members), est), 0.0)
                elif op.kind == "moe":
                    tt, f, b = self._moe(op, tokens, self.edt, act_b)
                    t += tt; fl += f; by += b
            return t, fl, by

        dense_ops = model.layer_operators(tp, moe=False)
        moe_ops = model.layer_operators(tp, moe=True, ep=ep) if n_moe else []
        dense_t, dense_f, dense_b = ops_time(dense_ops, T)
        moe_t = moe_f = moe_b = 0.0
        moe_stream = None
        if any(op.name in SHARED_EXPERT_OPS for op in moe_ops) and shared_stream_tokens > 0:
            # each path priced once: the layer in turn, and with its shared experts beside
            # the routed path up to the threshold
            groups = ([op for op in moe_ops if op.name in SHARED_EXPERT_OPS],
                      [op for op in moe_ops if op.name in ROUTED_EXPERT_OPS],
                      [op for op in moe_ops if op.name not in SHARED_EXPERT_OPS | ROUTED_EXPERT_OPS])
            (ts, fs, bs), (tr, fr, br), (to, fo, bo) = (ops_time(g, T) for g in groups)
            moe_t, moe_f, moe_b = to + ts + tr, fo + fs + fr, bo + bs + br
            moe_stream = np.where(T <= shared_stream_tokens, to + np.maximum(ts, tr), moe_t)
        elif n_moe:
            moe_t, moe_f, moe_b = ops_time(moe_ops, T)
        lps = self.layers_per_stage
        # sliding-window layers: their share of each stage's layers (stages equal on average)
        win_share = len(model.sliding_layers) / layers if layers else 0.0
        self.window_layers = lps * win_share
        self.full_layers = lps - self.window_layers
        # A stage holds lps layers, moe_share of them MoE (stages are equal on average).
        self.linear = lps * ((1 - moe_share) * dense_t + moe_share * moe_t)
        #: ``linear`` with each MoE layer's shared experts running beside its routed ones
        #: (up to ``shared_stream_tokens``); ``None`` when that does not apply
        self.linear_stream = (None if moe_stream is None else
                              lps * ((1 - moe_share) * dense_t + moe_share * moe_stream))
        self.linear_flops = lps * ((1 - moe_share) * dense_f + moe_share * moe_f)
        self.linear_bytes = lps * ((1 - moe_share) * dense_b + moe_share * moe_b)
        #: operators of one forward pass over all ``pp`` stages (each launches at least one
        #: kernel): the host-side launch work of a step that runs without CUDA graphs
        self.ops_per_forward = layers * ((1 - moe_share) * len(dense_ops) + moe_share * len(moe_ops))
        inputs, outputs = model.head_operators(tp)
        # embedding (first stage) and final norm + LM head (last stage) run once per step
        self.embed, _, self.embed_bytes = ops_time(inputs, T)
        self.ops_per_forward += len(inputs) + len(outputs)
        #: MoE layers of one forward pass over all ``pp`` stages
        self.moe_layers_per_forward = n_moe
        S = np.arange(max_seqs + 1)
        self.head, self.head_flops, self.head_bytes = ops_time(outputs, S)
        # pipeline hand-off: activations of T tokens to the next stage
        if pp > 1:
            a, b = device_names[0], device_names[tp]
            self.p2p = np.where(T > 0, topology.p2p_time(a, b, T * model.hidden * act_b, device.collective_latency), 0.0)
        else:
            self.p2p = np.zeros(len(T))
        # attention constants (per device, per layer), per phase (they differ for MLA)
        hq = model.heads // tp
        hkv = max(1, model.kv_heads // tp)
        d = model.head_dim
        w = model.attention_work(tp)
        kv_b = dtype_bytes(kv_cache)
        self.attn_flop_per_pair = {"prefill": w.prefill_flop_per_pair, "decode": w.decode_flop_per_pair}
        self.kv_tok = {"prefill": w.prefill_kv_elems * (act_b if w.prefill_kv_in_act else kv_b),
                       "decode": w.decode_kv_elems * kv_b}
        self.q_bytes = {"prefill": w.prefill_q_elems * act_b, "decode": w.decode_q_elems * act_b}
        self.kv_dtype = kv_cache
        # the call's shape for devices that take it: per-score and per-(sequence x KV head)
        # costs (the gpu model), standard attention looked up by shape (measured tables).
        # Multi-head latent attention gives no head_dim, so no table looks it up; its decode
        # reads one latent per token (one KV head)
        if not getattr(device, "accepts_attention_shape", False):
            self._shape = None
        elif model.is_mla:
            self._shape = {"heads": hq, "kv_heads": 1, "kv_dtype": kv_cache}
        else:
            self._shape = {"heads": hq, "kv_heads": hkv, "head_dim": d, "kv_dtype": kv_cache}
        self.max_tokens, self.max_seqs = max_tokens, max_seqs

    def _moe(self, op, tokens, weights, act_b):
        """Routed experts of one layer at each token count of ``tokens``: ``(time, flops,
        bytes)`` arrays, priced by :func:`moe_layer_time`.

        A device with measured MoE layers (``moe_time``, e.g. ``gpu_profiled`` with an
        aiconfigurator ``moe_perf`` table) prices the token counts its table covers; the
        model prices the rest; with expert parallelism (``op.ep > 1``) it looks up the rows
        measured at that split (``moe_tp_size`` = tp / ep, ``moe_ep_size`` = ep), whose
        collector routes the tokens over all experts and times one device. The model: a
        device runs its ``E / ep`` experts on the expert slots routed to it, ``T k / ep`` on
        average under uniform routing; the layer's time is that of the busiest device
        (:func:`busiest_device_slots`), its FLOP and bytes the average device's. The layers
        of a :attr:`moe_kernel` other than the default always come from the model. With
        ``ep_masked_slots`` the busiest device's kernels also run over the other devices'
        slots (:func:`masked_slot_bytes`)."""
        E, k = op.experts / op.ep, op.top_k / op.ep
        T = np.asarray(tokens, dtype=float)
        dev = self.device
        # the layer lasts as long as its busiest device's experts take
        kb = busiest_device_slots(T, op.top_k, op.ep, op.experts) if op.ep > 1 else k
        masked = op.top_k - kb if self.ep_masked_slots else 0.0
        t = moe_layer_time(dev, T, op.k, op.n, E, kb, weights, act_b, self.moe_kernel, masked)
        measured = getattr(dev, "moe_time", None) if self.moe_kernel is None else None
        if measured is not None:
            # the table's split: experts' width over tp / ep devices, experts over ep
            split = {"ep": op.ep} if op.ep > 1 else {}
            mt, ok = measured(T, op.k, self.model.moe_intermediate, op.top_k, op.experts, self.tp // op.ep,
                              weights, **split)
            t = np.where(ok, mt, t)
        active = E * (1.0 - (1.0 - k / E) ** T)
        flops = 2.0 * T * k * 3 * op.n * op.k
        nbytes = (active * 3 * op.n * op.k * dtype_bytes(weights) + T * k * (2 * op.k + 3 * op.n) * act_b
                  + T * masked * masked_slot_bytes(op.k, op.n, weights, act_b))
        return t, flops, nbytes

    def step(self, tokens: int, sampled: int, pf_pairs: float, pf_kv: float, pf_q: int,
             dec_n: int, dec_kv: float, pf_n: int = 0,
             window: tuple[float, float, float] | None = None,
             shared_stream: bool = False) -> tuple[float, float, float]:
        """``(seconds, flops, bytes)`` of one step on one device.

        Args:
            tokens: total new tokens T (prefill chunks + decodes), ``<= max_tokens``.
            sampled: sequences that sample a token this step (S).
            pf_pairs: ``sum_i (q_i c_i + q_i (q_i + 1) / 2)`` over prefill chunks.
            pf_kv: ``sum_i (c_i + q_i)`` over prefill chunks (tokens of K/V read).
            pf_q: ``sum_i q_i`` over prefill chunks.
            dec_n: number of decode sequences.
            dec_kv: ``sum_i (c_i + 1)`` over decodes.
            pf_n: number of prefill chunks (only devices with
                ``accepts_attention_shape`` use it).
            window: ``(pf_pairs, pf_kv, dec_kv)`` within the sliding window
                (:func:`window_sums`), for a model with sliding-window layers; ``None``
                prices those layers as full attention.
            shared_stream: this step runs the MoE layers' shared experts beside the routed
                ones (:attr:`linear_stream`, when the model has them and the constructor's
                ``shared_stream_tokens`` covers ``tokens``); FLOP and bytes are the same.
        """
        L = self.layers_per_stage
        t = (self.linear_stream if shared_stream and self.linear_stream is not None else self.linear)[tokens]
        fl = self.linear_flops[tokens]
        by = self.linear_bytes[tokens]
        at, af, ab = self._attention(pf_pairs, pf_kv, pf_q, pf_n, dec_n, dec_kv)
        if window is None or not self.window_layers:
            t += L * at; fl += L * af; by += L * ab
        else:
            wt, wf, wb = self._attention(window[0], window[1], pf_q, pf_n, dec_n, window[2])
            lf, lw = self.full_layers, self.window_layers
            t += lf * at + lw * wt; fl += lf * af + lw * wf; by += lf * ab + lw * wb
        pp = self.pp
        total = pp * t + self.embed[tokens] + self.head[sampled] + (pp - 1) * self.p2p[tokens]
        # per device: each holds 1/pp of the layers, so its share of the work is that
        # stage's plus an even share of the embedding and head
        fl += self.head_flops[sampled] / pp
        by += (self.head_bytes[sampled] + self.embed_bytes[tokens]) / pp
        return float(total), float(fl), float(by)

    def _attention(self, pf_pairs: float, pf_kv: float, pf_q: int, pf_n: int,
                   dec_n: int, dec_kv: float) -> tuple[float, float, float]:
        """``(seconds, flops, bytes)`` of one layer's attention launches (prefill chunks and
        decodes) on one device."""
        dev = self.device
        fpp, kv_tok, q_bytes = self.attn_flop_per_pair, self.kv_tok, self.q_bytes
        t = fl = by = 0.0
        if pf_q:
            f = fpp["prefill"] * pf_pairs
            b = pf_kv * kv_tok["prefill"] + pf_q * q_bytes["prefill"]
            if self._shape is None:
                t += float(dev.attention_time(f, b, "prefill", self.adt))
            else:
                t += float(dev.attention_time(f, b, "prefill", self.adt, seqs=pf_n, new_tokens=pf_q,
                                              kv_tokens=pf_kv, pairs=pf_pairs, **self._shape))
            fl += f; by += b
        if dec_n:
            f = fpp["decode"] * dec_kv
            b = dec_kv * kv_tok["decode"] + dec_n * q_bytes["decode"]
            if self._shape is None:
                t += float(dev.attention_time(f, b, "decode", self.adt))
            else:
                t += float(dev.attention_time(f, b, "decode", self.adt, seqs=dec_n, new_tokens=dec_n,
                                              kv_tokens=dec_kv, pairs=dec_kv, **self._shape))
            fl += f; by += b
        return t, fl, by


def window_sums(window: int, cached, new) -> tuple[float, float, float]:
    """Attention sums of a batch within a sliding window of ``window`` tokens:
    ``(pf_pairs, pf_kv, dec_kv)`` as :meth:`StepCostModel.step` takes them, for sequences
    with ``cached[i]`` tokens in the KV cache computing ``new[i]`` new tokens (1 for a
    decode). Query ``j`` (0-based position) attends to keys ``max(0, j - W + 1) .. j``,
    ``min(j + 1, W)`` of them (the convention of Mistral and gpt-oss, whose ``sliding_window``
    counts the query's own token); a chunk reads the K/V of positions ``max(0, c - W + 1)
    .. c + q - 1``."""
    W = window
    pf_pairs = pf_kv = dec_kv = 0
    for c, q in zip(cached, new):
        if q == 1:
            dec_kv += c + 1 if c < W else W
            continue
        end = c + q  # positions c .. end-1, each sees min(pos + 1, W) keys
        if end <= W:
            pf_pairs += q * c + q * (q + 1) // 2
        elif c >= W:
            pf_pairs += q * W
        else:
            ramp = W - c  # positions c .. W-1 see pos + 1 keys
            pf_pairs += ramp * c + ramp * (ramp + 1) // 2 + (q - ramp) * W
        pf_kv += end if end < q + W - 1 else q + W - 1
    return pf_pairs, pf_kv, dec_kv


@functools.lru_cache(maxsize=None)
def expected_max_std_normal(n: int) -> float:
    """Expected maximum of ``n`` independent standard normal variables,
    ``int x n phi(x) Phi(x)^(n-1) dx`` by the trapezoidal rule on [-10, 10] (step 0.001) (0 for ``n <=
    1``; 0.5642, 1.0294, 1.4236, 1.7660 for n = 2, 4, 8, 16, the values of the standard
    tables of normal order statistics, e.g. Harter 1961)."""
    if n <= 1:
        return 0.0
    x = np.linspace(-10.0, 10.0, 20001)
    phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    f = x * n * phi * cdf ** (n - 1)  # ~0 at both ends: the trapezoid sum is the plain sum
    return float(np.sum(f) * (x[1] - x[0]))


def busiest_device_slots(tokens, top_k: float, ep: int, experts: float) -> np.ndarray:
    """Expert slots per token on the busiest of ``ep`` expert-parallel devices, at each
    token count of ``tokens``: a device holds ``1 / ep`` of the experts, so under uniform
    routing its share of the ``T k`` slots is binomial with mean ``T k / ep`` and standard
    deviation ``sqrt(T k (1/ep) (1 - 1/ep))``; the largest of the ``ep`` shares is taken as
    the mean plus :func:`expected_max_std_normal` (``ep``) deviations (normal approximation),
    at most ``min(k, experts / ep)`` per token (a token's ``k`` experts are distinct). The
    layer waits for that device: with 4 tokens of DeepSeek-R1 (top-8 of 256) on 8 devices,
    the busiest holds 6.7 slots against 4 on average."""
    T = np.maximum(np.asarray(tokens, dtype=float), 1.0)  # 0 tokens: no layer to price
    p = 1.0 / ep
    sd = np.sqrt(top_k * p * (1 - p) / T)
    return np.minimum(top_k * p + expected_max_std_normal(int(ep)) * sd, min(top_k, experts / ep))


def masked_slot_bytes(hidden: int, inter: int, weights: str, act_bytes: float = 2.0) -> float:
    """Memory traffic (bytes) of one expert slot routed to another device's expert in an
    expert-parallel MoE layer whose kernels still run over every slot: vLLM's Triton
    ``fused_moe`` with an ``expert_map`` (expert parallelism without an all-to-all: each
    device sees every token) writes zeros for such a slot in both grouped GEMMs
    (``write_zeros_to_output``: the gate/up output, ``2 inter`` wide, and the down output,
    ``hidden`` wide) and runs the SiLU-and-multiply over it (reads ``2 inter``, writes
    ``inter``), all at ``act_bytes``; with FP8 experts the activation's per-token-group FP8
    quantization reads ``inter`` values and writes ``inter`` bytes. Against aiconfigurator's
    measured vLLM 0.18 H200 ``fused_moe`` layers of MiniMax-M2.5's experts (block FP8, hidden
    3072, inter 1536, 256 experts, top-8, balanced routing, moe_ep_size 8): modelled over
    measured at 1,024 / 4,096 / 8,192 tokens 0.64 / 0.43 / 0.42 without these slots, 0.81 /
    0.69 / 0.70 with them."""
    return (2 * inter + 3 * inter + hidden) * act_bytes + (inter * (act_bytes + 1) if weights == "fp8" else 0.0)


def moe_layer_time(device: HardwareNode, tokens, hidden: int, inter: int, experts: float, top_k: float,
                   weights: str, act_bytes: float = 2.0, kernel: str | None = None,
                   masked_top_k: float = 0.0) -> np.ndarray:
    """Modelled time (s) of one MoE layer's routed experts on one device, at each token
    count of ``tokens`` (array): ``hidden`` model width, ``inter`` each expert's
    intermediate width on this device (after tensor parallelism), ``top_k`` of
    ``experts`` per token, ``weights`` precision.

    Routing is taken as uniform: the expected number of distinct active experts is ``E (1 -
    (1 - k/E)^T)`` and each runs its gate/up and down GEMMs on ``m = ceil(T k / active)``
    tokens. The experts run as one grouped GEMM per projection (vLLM's and SGLang's
    fused_moe, TensorRT-LLM's grouped kernels): one launch whose tiles of all active experts
    share the SMs, with the FLOP, weight bytes and tile count of one GEMM ``[m, hidden] x
    [hidden, active * 2 inter]`` (gate/up) and ``[m, inter] x [inter, active * hidden]``
    (down); launching one GEMM per expert would pay ``active`` launches and each expert's low
    SM occupancy. The activation (SiLU and multiply) is a memory kernel over ``T k 3 inter``
    elements. A device with ``grouped_gemm_time`` (the ``gpu`` model, whose ``moe_compute``
    efficiency is fitted on measured fused-MoE kernels) prices the GEMMs with it and adds
    its ``moe_launch_s`` (routing, sort and combine kernels) per layer, with the factors of
    ``kernel`` (:data:`hermes_plugins.devices.MOE_KERNELS`) when given; any other device
    prices them as plain GEMMs. ``masked_top_k``: slots per token routed to other devices'
    experts that the kernels still process (expert parallelism without an all-to-all, vLLM's
    ``expert_map``), one memory kernel over ``T masked_top_k`` :func:`masked_slot_bytes`."""
    T = np.asarray(tokens, dtype=float)
    active = experts * (1.0 - (1.0 - top_k / experts) ** T)
    safe = np.maximum(active, 1e-9)
    m = np.ceil(T * top_k / safe)
    gemm = getattr(device, "grouped_gemm_time", None)
    if gemm is None:
        gemm = device.gemm_time
    elif kernel is not None:
        gemm = functools.partial(gemm, kernel=kernel)
    grouped = gemm(m, safe * 2 * inter, hidden, weights) + gemm(m, safe * hidden, inter, weights)
    launch = getattr(device, "moe_launch_s", 0.0)
    t = grouped + device.memory_time(T * top_k * 3 * inter * act_bytes) + launch
    if np.any(np.asarray(masked_top_k) > 0):
        t = t + device.memory_time(T * masked_top_k * masked_slot_bytes(hidden, inter, weights, act_bytes))
    return np.where(T > 0, t, 0.0)
