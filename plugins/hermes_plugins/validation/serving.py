"""``hermes validate serving``: simulate measured serving benchmarks and compare TTFT and TPOT.

Format ``aiconfigurator-silicon``: the CSV NVIDIA's aiconfigurator keeps of measured serving
points (ai-dynamo/aiconfigurator @ 095f58a5 :
``aic-core/src/aiconfigurator_core/systems/silicon_sample.csv``, Apache-2.0). Each row is one
closed-loop benchmark: ``batch_size`` clients, each sending a prompt of ``isl`` tokens for
``osl`` output tokens and the next one as soon as it finishes, against one engine
(``backend`` vLLM, SGLang or TensorRT-LLM) serving ``model_path`` on ``system`` with
``tp_size`` x ``pp_size`` GPUs, aggregated (``mode=agg``) or prefill-decode disaggregated
(``mode=disagg``). The measured ``silicon_ttft_ms`` and ``silicon_tpot_ms`` are means over
the benchmark's requests: aiconfigurator benchmarks with ``aiperf profile --concurrency C
--num-requests 20C --warmup-request-count 2C --extra-inputs ignore_eos:true --streaming``
(its ``generator/config/backend_templates/benchmark/bench_run.sh.j2``) and compares its
mean-field estimates with these numbers, but most rows of the file come from InferenceMAX's
result files, measured with vLLM's ``benchmark_serving`` (:func:`benchmark_of`; the
default ``by-source`` protocol simulates each row with its own client). aiperf's TPOT
(inter-token latency) is, like vLLM's ``benchmark_serving`` ``mean_tpot_ms``, ``(latency -
ttft) / (output tokens - 1)`` per request, averaged over requests. hermes computes both the
same way.

For every row hermes can model, :func:`scenario_for` builds a scenario (a ``closed_loop``
workload on one ``llm_serving`` replica, the engine limits of :data:`ENGINES`), runs it and
compares the mean TTFT and TPOT of the requests after the warm-up. Every other row is kept
with the reason (:func:`unsupported_reason`) and reported; none is skipped silently.
"""

from __future__ import annotations

import csv
import datetime
import math
import re
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hermes_core import CapacityError, ConfigError, HermesError, ModelSpec
from hermes_core import api

from ..calibration import TableError
from ..models import catalog_path
from ..profiled import load_tables
from .report import ape, ape_summary, print_summary, write_rows

#: Formats ``--format`` accepts.
FORMATS = ("aiconfigurator-silicon",)

#: Columns a row must have (others are ignored). ``attention_dp_size`` may be empty (= 1).
REQUIRED_COLUMNS = (
    "id", "backend", "model_path", "system", "precision", "mode", "isl", "osl",
    "gemm_quant_mode", "moe_quant_mode", "batch_size", "tp_size", "pp_size",
    "attention_dp_size", "moe_tp_size", "moe_ep_size", "silicon_ttft_ms", "silicon_tpot_ms",
)

#: Group columns of the report.
GROUPS = ("model", "backend", "system")

#: Hugging Face ``model_path`` -> hermes catalog name. Checkpoints of one architecture map
#: to the same entry; their quantization comes from the row's ``gemm_quant_mode``.
MODELS: dict[str, str] = {
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Meta-Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "nvidia/Llama-3.1-70B-Instruct-FP8": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B": "llama-3.1-405b",
    "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b",
    "nvidia/Llama-3.1-405B-Instruct-FP8": "llama-3.1-405b",
    "Qwen/Qwen3-8B": "qwen3-8b",
    "Qwen/Qwen3-8B-FP8": "qwen3-8b",
    "Qwen/Qwen3-14B": "qwen3-14b",
    "Qwen/Qwen3-14B-FP8": "qwen3-14b",
    "Qwen/Qwen3-32B": "qwen3-32b",
    "Qwen/Qwen3-32B-FP8": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B": "qwen3-235b-a22b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b-fp8",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b",
    "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1": "deepseek-r1",
    "moonshotai/Kimi-K2.5": "kimi-k2.5",
}

#: Checkpoints whose precision is fixed by the checkpoint, not by the row's
#: ``gemm_quant_mode``: ``model_path -> (weights, reason)``. gpt-oss-120b ships MXFP4
#: routed experts and BF16 attention, router, embeddings and LM head (its config.json's
#: ``quantization_config``); its rows say ``nvfp4``, which Hopper cannot run, and vLLM and
#: TensorRT-LLM serve the MXFP4 checkpoint as it is. The experts' precision comes from
#: the catalog entry (:attr:`ModelSpec.expert_weights`).
CHECKPOINT_PRECISION: dict[str, tuple[str, str]] = {
    "openai/gpt-oss-120b": ("bf16", "MXFP4 experts, BF16 elsewhere (config.json quantization_config)"),
    # Kimi-K2.5's rows say int4_wo: compressed-tensors W4A16 on the routed experts only, the
    # attention, shared expert, dense MLP and LM head in BF16 (its quantization_config ignore list)
    "moonshotai/Kimi-K2.5": ("bf16", "INT4 (group 32) experts, BF16 elsewhere (config.json quantization_config)"),
}

#: Why models that are not in the catalog cannot simply be added to it.
UNSUPPORTED_MODELS: dict[str, str] = {
    "zhipuai/GLM-5": "multi-head latent attention with DeepSeek sparse attention is not modelled",
    "Qwen/Qwen3.5-397B-A17B": "hybrid linear attention (Gated DeltaNet layers) is not modelled",
}

#: aiconfigurator ``system`` -> hermes ``gpu`` preset.
SYSTEMS: dict[str, str] = {
    "h100_sxm": "h100_sxm",
    "h200_sxm": "h200_sxm",
    "a100_sxm": "a100_sxm_80gb",
    "b200_sxm": "b200",
}

#: GPUs per node (one NVLink domain) of every system in :data:`SYSTEMS` (HGX 8-GPU boards):
#: a replica on more would cross the inter-node network, which ``validate serving`` does
#: not model (the scenario's devices share one switch).
GPUS_PER_NODE = 8

#: ``gemm_quant_mode`` -> hermes weight precision. The attention core computes in bf16.
GEMM_PRECISION: dict[str, str] = {
    "": "bf16", "bfloat16": "bf16", "float16": "fp16", "fp8": "fp8", "fp8_block": "fp8",
    "fp8_static": "fp8",
}

#: ``moe_dtype`` of aiconfigurator MoE-table rows that match a checkpoint's experts, where
#: the row's own ``moe_quant_mode`` does not say it (used with ``--device-tables``):
#: Qwen3-235B-A22B-FP8 and MiniMax-M2.5 ship block-scaled FP8 experts (their config.json:
#: ``quantization_config = {quant_method: fp8, weight_block_size: [128, 128]}``), which vLLM
#: and SGLang run with their block-FP8 fused MoE kernel, whatever quant mode the row names.
MOE_TABLE_DTYPE: dict[str, str] = {"Qwen/Qwen3-235B-A22B-FP8": "fp8_block",
                                   "MiniMaxAI/MiniMax-M2.5": "fp8_block"}

#: ``--kv-cache-dtype`` choices. ``auto`` is each backend's own default,
#: ``kv_cache_dtype=auto``, applied to the row's checkpoint, since the rows do not say:
#: vLLM and SGLang keep the KV cache in the model's 16-bit dtype even for FP8 checkpoints
#: (an FP8 cache needs ``--kv-cache-dtype fp8``); TensorRT-LLM serves FP8 only from
#: pre-quantized (ModelOpt) checkpoints and takes their ``kv_cache_quant_algo``, FP8 for
#: the FP8 checkpoints NVIDIA publishes. The measured decode slopes agree: on
#: Llama-3.1-70B TP1 (1024/8192), each extra client adds 0.17-0.26 ms to TensorRT-LLM's TPOT
#: (an FP8 cache of its ~5k-token context reads in 0.21 ms) but 0.4-0.66 ms to vLLM's (bf16:
#: 0.42 ms).
KV_CACHE_DTYPES = ("auto", "bf16", "fp8")


def kv_cache_dtype(backend: str, weights: str, choice: str = "auto") -> str:
    """The KV-cache precision of a ``backend`` row with ``weights`` precision."""
    if choice != "auto":
        return choice
    return "fp8" if backend == "trtllm" and weights == "fp8" else "bf16"


@dataclass(frozen=True)
class EngineProfile:
    """What hermes assumes of one backend's engine. ``max_num_batched_tokens`` is the token
    budget of one step under each ``--engine-limits`` choice: ``defaults`` (the engine's
    own default on an H200) and ``aiconfigurator`` (a function of ``(batch_size, isl)``,
    the limit aiconfigurator's generator writes into the deployments it benchmarks).
    Host time per step comes from :data:`HOST_TIME`, the front-end's time per streamed token
    from :data:`FRONTEND_TOKEN_US`. ``source`` says where each figure
    comes from."""

    default_max_num_batched_tokens: int
    aiconfigurator_max_num_batched_tokens: Callable[[int, int], int]
    max_num_seqs: int
    gpu_memory_utilization: float
    batching: dict[str, Any] = field(default_factory=lambda: {"type": "chunked_prefill"})
    prefix_caching: bool = True
    source: str = ""
    #: TensorRT-LLM's ``free_gpu_memory_fraction`` (the KV cache's share of the memory left
    #: after weights and activations), or ``None`` for the ``gpu_memory_utilization`` rule.
    kv_cache_free_memory_fraction: float | None = None

    #: ``(date, rule)``: rows measured before ``date`` (the ``measured=`` field of
    #: ``silicon_data_source``) take ``rule`` instead of ``aiconfigurator_max_num_batched_tokens``.
    earlier_rule: tuple[datetime.date, Callable[[int, int], int]] | None = None
    #: Rows whose ``silicon_data_source`` names this stock engine image ran the engine's own
    #: server, not an aiconfigurator-generated deployment: they take the engine's defaults.
    stock_image: str | None = None

    def max_num_batched_tokens(self, limits: str, batch_size: int, isl: int,
                               measured: datetime.date | None = None, data_source: str = "") -> int:
        """Token budget per step under ``limits`` for ``batch_size`` clients and prompts of
        ``isl`` tokens, for a row measured on ``measured`` (``None``: unknown) whose
        ``silicon_data_source`` cell is ``data_source``."""
        if limits == "defaults" or (self.stock_image and self.stock_image in data_source):
            return self.default_max_num_batched_tokens
        if self.earlier_rule is not None and measured is not None and measured < self.earlier_rule[0]:
            return self.earlier_rule[1](batch_size, isl)
        return self.aiconfigurator_max_num_batched_tokens(batch_size, isl)


#: ``--engine-limits`` choices.
ENGINE_LIMITS = ("aiconfigurator", "defaults")

#: Host time per engine step, ``step_overhead_us + seq_overhead_us * sequences``, and
#: whether the engine overlaps it with the GPU (``overlap_host``). Identified per backend on
#: the Llama-3.1-70B TP8 1024/8192 rows (6 TensorRT-LLM, 5 vLLM points, concurrency
#: 4-128): there the GPU's decode step is shortest (6-12 ms) and prefill is under 3 % of
#: the work, so what the measured TPOT adds to hermes's decode step is host time. Fit
#: (mean |log error|) of ``max(gpu, host)`` (TensorRT-LLM: its overlap scheduler prepares
#: step k+1 while the GPU runs step k) and of ``gpu + host`` (vLLM V1 without
#: ``--async-scheduling``: schedule, input preparation and output processing run between
#: GPU steps): TensorRT-LLM 5.9 ms + 115 us per sequence (within 1.1 % on all six),
#: vLLM 1.45 ms + 46 us per sequence (within 6.3 %). Every other row is a test of it.
HOST_TIME: dict[str, tuple[float, float, bool]] = {
    "vllm": (1450.0, 46.0, False),
    "trtllm": (5900.0, 115.0, True),
    # SGLang 0.5.6: identified the same way on its Llama-3.1-8B TP8 rows (9 points, 40-512
    # clients), where the GPU's step is shortest (hermes 9-31 ms against 23-34 ms measured
    # TPOT, flat in TP): 26 us per sequence added to the GPU time (``gpu + host`` fits,
    # ``max`` does not: its overlap scheduler does not hide the per-request work at these
    # batch sizes). On the 37 other SGLang Llama-3.1-8B points (TP1-TP4, held out) the TPOT
    # median APE goes from 18.8 % to 5.7 %. With FP8 GEMMs at their measured share
    # (gemm_compute_fp8) and the front-end of FRONTEND_TOKEN_US, re-identified on the same
    # rows: 20 us (below).
    "sglang": (0.0, 20.0, False),
}

#: Host time per step of engine builds other than the one :data:`HOST_TIME` was identified
#: on, keyed by (backend, model path) where every row of that model on that backend ran
#: the build: InferenceMAX ran gpt-oss-120b on H200 with TensorRT-LLM's ``gpt-oss-dev``
#: image (InferenceX ``.github/workflows/gptoss-tmpl.yml``, ``bmk-h200-trt``), its
#: Llama-3.1-70B and DeepSeek-R1 rows with ``release:1.1.0rc2.post2``. The gpt-oss rows'
#: measured TPOT is below the 5.9 ms step of the latter (4.2-4.4 ms at TP8, 4 clients).
#: Identified as TensorRT-LLM's was, on the TP8 1024/8192 rows (6 points, 4-64 clients):
#: 4.0 ms + 115 us per sequence, TPOT median APE on the 6 from 36.0 % to 8.0 % (4.0 ms + 60
#: us: 12.5 %); on all 77 gpt-oss-120b TensorRT-LLM rows 19.5 % to 12.6 %.
HOST_TIME_BY_MODEL: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("trtllm", "openai/gpt-oss-120b"): (4000.0, 115.0, True),
}


def host_time(p: Point) -> tuple[float, float, bool]:
    """``(step_overhead_us, seq_overhead_us, overlap_host)`` of row ``p``'s engine build:
    :data:`HOST_TIME_BY_MODEL` where it names the row's backend and model, else
    :data:`HOST_TIME` of its backend."""
    return HOST_TIME_BY_MODEL.get((p.backend, p.model_path), HOST_TIME[p.backend])


#: CPU time of the serving front-end per output token (``llm_serving`` field
#: ``frontend_token_us``): detokenization and streaming in the API-server process, which the
#: engine does not wait for. SGLang 0.5.6 (its tokenizer manager, one Python process): on its
#: Llama-3.1-8B TP8 rows at 512 clients the clients received about 20k tokens/s whatever the
#: lengths (TPOT 23-29 ms), and TTFT grew with the output length at a fixed prompt (1000
#: tokens: 2.0 / 3.2 / 8.0 s for 500 / 1000 / 2000 output tokens): a queue in front of the
#: client that fills while a cohort decodes, not prefill. Identified on those 9 rows (TPOT
#: median APE, as the host time above) together with the per-sequence host time, among
#: (host, front-end) = (26, 0), (0, 40), (0, 50), (26, 50), (25, 50), (20, 45), (20, 50), (20,
#: 55), (15, 50) us: (20, 50), TPOT 15.6 % -> 5.7 %, TTFT 87.9 % -> 43.0 %. On the 37
#: TP1-TP4 rows (held out) TPOT 7.4 / 15.1 / 18.8 % -> 4.3 / 8.9 / 12.9 % (TP1 / 2 / 4), TTFT
#: at TP4 76.5 % -> 57.7 %, TP1 and TP2 unchanged (44 %, 63 %).
FRONTEND_TOKEN_US: dict[str, float] = {"sglang": 50.0}

#: Host time per MoE layer that a step holding a prefill chunk adds to its device time
#: (``llm_serving`` field ``eager_moe_layer_us``): such steps run without CUDA graphs, and
#: the GPU waits for the launches of each MoE layer's small kernels. The MoE rows' measured
#: TTFT exceeds hermes's by a gap that hardly moves with the prompt length (gpt-oss-120b on
#: TensorRT-LLM at TP8: 94 ms at 1k, 102 ms at 8k prompts; MiniMax-M2.5 on vLLM 0.18 at
#: TP8: 67 / 61 ms), while the dense Llama-3.1-70B rows fit without one. Identified per
#: engine on one model's rows (TTFT median APE over a few values; every other MoE row tests
#: it): vLLM on gpt-oss-120b (0.18; 400 / 800 / 1200 us: 7.1 / 14.6 / 21.0 %, none 25.5 %),
#: TensorRT-LLM on gpt-oss-120b (with the host time of its own build, HOST_TIME_BY_MODEL:
#: 1500 / 1800 / 2200 us: TTFT 17.2 / 14.1 / 13.8 %, TPOT 12.6 / 12.1 / 12.7 %; none 53.5 %),
#: SGLang on DeepSeek-R1 (0.5.9; 2000 / 3500 us: 7.3 / 23.6 %, none 36.9 %).
EAGER_MOE_LAYER_US: dict[str, float] = {"vllm": 450.0, "trtllm": 1800.0, "sglang": 2000.0}

#: Host time to launch one operator of a step that no captured CUDA graph covers
#: (``llm_serving`` field ``eager_op_us``; which steps, :func:`cuda_graph_max_tokens`): the
#: step lasts at least that times the operators of one forward pass. vLLM runs steps larger
#: than its largest captured CUDA graph eagerly (torch.compile's code, every kernel launched
#: from Python). Its Llama-3.1-70B rows at 1k prompts fall short by a gap that grows with
#: the TP degree while the 8k rows fit (TP8 at 4 clients: 73 ms measured, 58 ms hermes, whose
#: prefill step of 1,024 tokens takes 41 ms on the GPU): the dense model's eager forward (883
#: operators) outlasts its GPU work where that is shortest. Identified on those 60 rows by
#: TTFT median APE (30 / 45 / 60 / 75 / 90 us: 6.1 / 6.1 / 5.0 / 4.0 / 6.1 %, none 6.1 %);
#: every other vLLM row tests it. TensorRT-LLM's Llama-3.1-70B rows gain little from one (50
#: / 75 / 100 us: 8.0 -> 7.7 / 7.8 / 10.1 %) and SGLang's Llama-3.1-8B TPOT loses (see
#: docs/performance-model.md): both keep 0.
EAGER_OP_US: dict[str, float] = {"vllm": 75.0}

#: vLLM's largest captured CUDA graph by default, in tokens: ``min(2 max_num_seqs, 512)``
#: (``VllmConfig`` ``max_cudagraph_capture_size``; the capture sizes run 1, 2, 4, then
#: multiples of 8 and 16 up to it). Steps with more tokens run eagerly.
VLLM_GRAPH_MAX_TOKENS = 512
#: Largest captured CUDA graph that InferenceMAX's scripts set, by model: its gpt-oss H200
#: vLLM script has passed ``cuda-graph-sizes: 2048`` (later ``max-cudagraph-capture-size:
#: 2048``) since its first version (SemiAnalysisAI/InferenceX ``gptoss_fp4_h200*.sh``,
#: 2025-09-15 on), so its steps of up to 2,048 tokens, a 1k prompt's prefill among them, run
#: under (piecewise) CUDA graphs.
INFERENCEMAX_GRAPH_MAX_TOKENS: dict[str, int] = {"openai/gpt-oss-120b": 2048}


def cuda_graph_max_tokens(p: Point, max_num_seqs: int, imax: bool) -> int | None:
    """Largest step, in tokens, that row ``p``'s engine runs under a captured CUDA graph
    (``llm_serving`` field ``cuda_graph_max_tokens``), for an engine of ``max_num_seqs``
    sequences; ``imax``: an InferenceMAX row (:func:`benchmark_of`). vLLM: the script's
    setting (:data:`INFERENCEMAX_GRAPH_MAX_TOKENS`), else vLLM's default ``min(2
    max_num_seqs, VLLM_GRAPH_MAX_TOKENS)``; an aiperf row the batch size, as
    aiconfigurator's generator captures graphs for batches of 1 to ``C``
    (``generator/rule_plugin/benchmark/vllm.rule``, ``cuda_graph_batch_sizes``). Other
    engines: ``None`` (every step with a prefill chunk is eager; TensorRT-LLM's PyTorch
    backend and SGLang capture decode-only batches)."""
    if p.backend != "vllm":
        return None
    if not imax:
        return p.batch_size
    return INFERENCEMAX_GRAPH_MAX_TOKENS.get(p.model_path, min(2 * max_num_seqs, VLLM_GRAPH_MAX_TOKENS))


#: Steps in which a MoE layer's shared experts run beside its routed experts (``llm_serving``
#: fields ``shared_experts_stream_tokens``, ``shared_experts_stream_in_prefill``): vLLM runs
#: them on a second CUDA stream in every step of at most 256 tokens
#: (``VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD``); SGLang fuses DeepSeek-V3/R1's shared
#: expert into the routed MoE kernel as one more expert (``determine_num_fused_shared_experts``,
#: on by default on Hopper) and TensorRT-LLM runs the two on two streams under CUDA graphs
#: (``maybe_execute_in_parallel``): in decode steps. ``None``: every decode step.
SHARED_EXPERTS_STREAM: dict[str, tuple[int | None, bool]] = {
    "vllm": (256, True), "sglang": (None, False), "trtllm": (None, False)}

#: Engines whose MoE kernels, under expert parallelism without an all-to-all, also run
#: over the slots of other devices' experts (``llm_serving`` field ``ep_masked_slots``):
#: vLLM's Triton ``fused_moe`` with an ``expert_map`` (``write_zeros_to_output``, activation
#: over every slot; aiconfigurator's measured vLLM 0.18 H200 tables show it, see
#: :func:`~hermes_plugins.stages.step_cost.masked_slot_bytes`). TensorRT-LLM's expert
#: parallel rows (gpt-oss-120b, DeepSeek-R1) keep only their local slots: hermes has no
#: measured TensorRT-LLM expert-parallel MoE table to check them against. Among the rows:
#: MiniMax-M2.5 at TP8 (54 rows, TTFT 0.69x -> 0.82x of measured, TPOT 0.92x -> 0.95x).
EP_MASKED_SLOTS = ("vllm",)

#: Engines whose scheduler decides step k+1 while step k runs, whatever ``overlap_host``
#: says of their host time (``llm_serving`` field ``schedule_ahead``): SGLang's overlap
#: scheduler (``event_loop_overlap``, on by default in 0.5.6: it receives requests, forms and
#: launches batch k+1, then processes batch k's result), so a request arriving during step k
#: runs in step k+2. Its host time per sequence still adds to the GPU's (:data:`HOST_TIME`).
#: vLLM with async scheduling and TensorRT-LLM schedule ahead through ``overlap_host``.
SCHEDULES_AHEAD = ("sglang",)

#: vLLM version from which async scheduling is on by default: the scheduler prepares step
#: k+1 while the GPU runs step k, so host time overlaps the GPU (``max(gpu, host)``, as
#: TensorRT-LLM's overlap scheduler). Async scheduling came in vLLM 0.10 behind
#: ``--async-scheduling`` (vllm-project/vllm#19970); vllm-project/vllm#27614 made it the
#: default (last item of the tracking issue #27679, December 2025; #31998 of 2026-01-08
#: extends the default to speculative decoding), so the first release of 2026 has it.
#: aiconfigurator's own vLLM decode collector keeps it on as "vLLM's default" and measured
#: 26.5 ms async against 31.3 ms sync at 256 sequences (collector/fpm_forward/runner.py @
#: 095f58a5). In the H200 rows: 0.12.0 and the undated 2025 rows run synchronously, 0.16.0
#: and 0.18.0 asynchronously. On the gpt-oss-120b vLLM 0.18 rows TPOT median APE goes from
#: 45.8 % (host added) to about 12 %.
VLLM_ASYNC_SCHEDULING_SINCE = (0, 14)
#: The date from which a vLLM row without a version is taken to run async scheduling (the
#: release of vLLM 0.14.0).
VLLM_ASYNC_SCHEDULING_DATE = datetime.date(2026, 1, 20)


_VERSION = re.compile(r"v?(\d+)\.(\d+)")
_VLLM_IMAGE = re.compile(r"vllm-openai:v(\d+)\.(\d+)")


def overlaps_host(p: Point) -> bool:
    """Whether the engine of row ``p`` overlaps its host time with the GPU. vLLM: from
    :data:`VLLM_ASYNC_SCHEDULING_SINCE` by the row's ``backend_version``, else by the
    ``vllm-openai:vX.Y`` image its source names, else by its measured date against
    :data:`VLLM_ASYNC_SCHEDULING_DATE`. Otherwise (other engines, and vLLM rows that say
    none of these) the engine build's :func:`host_time`: TensorRT-LLM yes (overlap
    scheduler), SGLang and synchronous vLLM no."""
    if p.backend == "vllm":
        m = (_VERSION.match(p.raw.get("backend_version", "").strip())
             or _VLLM_IMAGE.search(p.raw.get("silicon_data_source", "")))
        if m:
            return (int(m[1]), int(m[2])) >= VLLM_ASYNC_SCHEDULING_SINCE
        day = measured_date(p)
        if day is not None:
            return day >= VLLM_ASYNC_SCHEDULING_DATE
    return host_time(p)[2]


# vLLM's budget. The rows do not record the deployment's ``--max-num-batched-tokens``.
# aiconfigurator's generator writes ``C + isl + 1500`` (generator/rule_plugin/vllm.rule), but
# it had no vLLM backend before 2025-12-04 and the budget reached its run script only on
# 2026-01-08 (commit 2cecd6596). The Llama-3.1-70B rows were measured on 2025-10-29, in the
# same campaign as the TensorRT-LLM ones; TTFT median APE of their 60 vLLM rows: vLLM's own
# H200 default 8192: 149 %; ``C + isl + 1500``: 36.8 %; 2048 (vLLM's generic default):
# 11.0 %; ``C + isl + 500`` (the campaign's TensorRT-LLM rule): 8.1 %. So rows measured
# before 2026-01-08 take ``C + isl + 500``, identified on them; later and undated rows
# (aiconfigurator's automated gap analysis) the generator's rule. Rows whose source names the
# stock ``vllm/vllm-openai`` image ran vLLM's own server, so vLLM's default 8192 (MiniMax-M2.5,
# 84 rows: 8192 18.0 %, ``C + isl + 1500`` 34.4 %, ``C + isl + 500`` 40.9 %). TPOT moves by
# less than a point. See docs/performance-model.md.
VLLM_RULE_DATE = datetime.date(2026, 1, 8)

#: Engine profiles per backend (see ``docs/performance-model.md``, "Serving validation").
ENGINES: dict[str, EngineProfile] = {
    "vllm": EngineProfile(
        default_max_num_batched_tokens=8192,
        aiconfigurator_max_num_batched_tokens=lambda b, isl: b + isl + 1500,
        # identified on the rows measured before the generator wrote the budget (note above)
        earlier_rule=(VLLM_RULE_DATE, lambda b, isl: b + isl + 500),
        stock_image="vllm/vllm-openai:",
        max_num_seqs=1024, gpu_memory_utilization=0.9,
        source="defaults: vLLM V1 EngineArgs for the OpenAI server on GPUs with >= 70 GiB "
               "(max_num_batched_tokens 8192, max_num_seqs 1024), gpu_memory_utilization 0.9; "
               "aiconfigurator: generator/rule_plugin/vllm.rule, agg max_num_tokens = "
               "batch_size + isl + 1500; rows measured before 2026-01-08 (when the generator "
               "started passing it): batch_size + isl + 500, identified on their TTFT; rows "
               "run on the stock vllm/vllm-openai image (vLLM's own server): its defaults; "
               "chunked prefill, decodes first; automatic prefix caching "
               "(on by default in vLLM V1; aiconfigurator passes --no-enable-prefix-caching only "
               "when asked)",
    ),
    "sglang": EngineProfile(
        default_max_num_batched_tokens=8192,
        aiconfigurator_max_num_batched_tokens=lambda b, isl: min(isl + 1500, 8192) + b,
        max_num_seqs=1024, gpu_memory_utilization=0.9,
        source="defaults: SGLang ServerArgs on an H200 (80-160 GB): chunked_prefill_size 8192, "
               "max_running_requests bounded by the KV pool, mem_fraction_static "
               "(141 - 12 - tp/2) / 141 ~ 0.9, overlap scheduler; aiconfigurator: "
               "generator/rule_plugin/sglang.rule, max_prefill_tokens = isl + 1500 (within "
               "chunked_prefill_size) and enable_mixed_chunk (prefill chunks share a step "
               "with the running decodes); radix cache (prefix caching) on, as SGLang's default "
               "(aiconfigurator passes --disable-radix-cache only when asked)",
    ),
    "trtllm": EngineProfile(
        default_max_num_batched_tokens=8192,
        aiconfigurator_max_num_batched_tokens=lambda b, isl: -(-(b + isl + 500) // 32) * 32,
        max_num_seqs=2048, gpu_memory_utilization=0.9,
        batching={"type": "guaranteed_no_evict"},
        prefix_caching=False,
        kv_cache_free_memory_fraction=0.9,
        source="defaults: TensorRT-LLM LLM API (max_num_tokens 8192, max_batch_size 2048, KV "
               "cache 0.9 of the memory free after loading the model and a profiling forward "
               "pass (KvCacheConfig.free_gpu_memory_fraction; aiconfigurator's templates write "
               "0.80, but the KV-bound Llama-3.1-70B TP1 rows held ~0.9-0.95 of it, see "
               "docs/performance-model.md), overlap scheduler, capacity scheduler policy "
               "GUARANTEED_NO_EVICT: a request starts only when its whole KV fits); aiconfigurator: "
               "generator/rule_plugin/trtllm.rule, agg max_num_tokens = batch_size + isl + 500 "
               "rounded up to 32; in-flight batching of context and generation requests; no KV "
               "block reuse (aiconfigurator's extra_engine_args templates write "
               "enable_block_reuse: false unless asked)",
    ),
}


def _num(value: str) -> float | None:
    """A numeric cell, or ``None`` for an empty one (raises ``ValueError`` otherwise)."""
    value = value.strip()
    if value == "":
        return None
    return float(value)


@dataclass
class Point:
    """One row of the file, parsed."""

    line: int
    raw: dict[str, str]
    id: str
    backend: str
    model_path: str
    system: str
    mode: str
    isl: int
    osl: int
    gemm_quant_mode: str
    batch_size: int | None
    tp: int | None
    pp: int | None
    attention_dp: int | None
    moe_tp: int | None
    moe_ep: int | None
    ttft_ms: float
    tpot_ms: float
    #: The InferenceMAX row of the same file that this aiconfigurator gap-analysis row repeats
    #: (same settings, same measured TTFT and TPOT; :func:`link_copies`), else ``None``.
    copy_of: Point | None = field(default=None, repr=False, compare=False)
    #: Why a cell of this row cannot be used (``column 'x': ...``), else ``None``: the row is
    #: listed as not modelled with this reason; the rest of the file is still read.
    cell_error: str | None = None


_MEASURED = re.compile(r"measured=(\d{4})-(\d{2})-(\d{2})")


def measured_date(p: Point) -> datetime.date | None:
    """The date a row was measured: the ``measured=YYYY-MM-DD`` field of its
    ``silicon_data_source`` cell, else that of the row it repeats (:attr:`Point.copy_of`), or
    ``None`` when the file has no such column or the row does not say."""
    m = _MEASURED.search(p.raw.get("silicon_data_source", ""))
    if m is None:
        return None if p.copy_of is None else measured_date(p.copy_of)
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _int(x: float | None) -> int | None:
    return None if x is None else int(round(x))


def read_points(path: Path) -> list[Point]:
    """Parse an aiconfigurator silicon CSV. Raises :class:`ConfigError` naming the file when
    it is missing, is not this format, lacks a column or has no data row. A row with a cell it
    cannot use is kept with its reason (:attr:`Point.cell_error`), listed as not modelled."""
    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text CSV file (format aiconfigurator-silicon)") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ConfigError(
                f"{path}: column '{missing[0]}' is missing (format aiconfigurator-silicon needs "
                f"{', '.join(REQUIRED_COLUMNS)}; the file has {', '.join(header) or 'no header'})"
            )
        points = []
        try:
            for row in reader:
                points.append(_parse(path, reader.line_num, row))
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text CSV file (format aiconfigurator-silicon)") from None
    if not points:
        raise ConfigError(f"{path}: no data rows")
    link_copies(points)
    return points


def _is_gap_analysis(p: Point) -> bool:
    """Whether a row's ``silicon_data_source`` is empty or names aiconfigurator's gap
    analysis (``aic-auto-gap-analysis``, ``*-gap-analysis.csv``)."""
    src = p.raw.get("silicon_data_source", "")
    return not src.strip() or "gap-analysis" in src


def _measurement_key(p: Point) -> tuple:
    return (p.model_path, p.backend, p.system, p.mode, p.isl, p.osl, p.batch_size, p.tp, p.pp,
            round(p.ttft_ms, 2), round(p.tpot_ms, 2))


def link_copies(points: Sequence[Point]) -> None:
    """Set :attr:`Point.copy_of` on each gap-analysis row that repeats an InferenceMAX row of
    ``points``: same model, backend, system, mode, lengths, concurrency, TP and PP, and the
    same measured TTFT and TPOT to 0.01 ms. aiconfigurator's Kimi-K2.5 and Qwen3.5 gap
    analyses (``kimi-k2.5-gap-analysis.csv``, ``qwen3.5-397b-gap-analysis.csv``) took their
    points from InferenceMAX's results: all 15 Kimi-K2.5 rows of the H200 file equal its
    2026-03-27 rows to the last digit. Such a row was measured with InferenceMAX's client,
    which :func:`benchmark_of` then simulates."""
    originals = {_measurement_key(p): p for p in points if not _is_gap_analysis(p)}
    for p in points:
        if _is_gap_analysis(p):
            p.copy_of = originals.get(_measurement_key(p))


#: Columns of a parallelism that a row may leave at 0 where it does not apply (aiconfigurator's
#: own silicon files write ``moe_tp_size`` / ``moe_ep_size`` 0 on dense-model rows): read as empty.
ZERO_MEANS_NOT_APPLICABLE = ("moe_tp_size", "moe_ep_size", "attention_dp_size", "pp_size")


def _parse(path: Path, line: int, row: dict[str, str | None]) -> Point:
    """One row as a :class:`Point`. A cell the row cannot be used with (not a number, empty
    where needed, not positive) does not refuse the file: the row gets ``cell_error`` (its
    ``file:line: column 'x': ...`` reason) and is listed as not modelled."""
    cells = {k: (v or "") for k, v in row.items() if k is not None}
    errors: list[str] = []

    def num(col: str, required: bool = True, positive: bool = True) -> float | None:
        try:
            v = _num(cells[col])
        except ValueError:
            errors.append(f"{path}:{line}: column '{col}': not a number ({cells[col]!r})")
            return None
        if v == 0 and col in ZERO_MEANS_NOT_APPLICABLE:
            return None
        if v is None and required:
            errors.append(f"{path}:{line}: column '{col}' is empty")
            return None
        if v is not None and (not math.isfinite(v) or (positive and v <= 0)):
            errors.append(f"{path}:{line}: column '{col}': must be a positive number (got {cells[col]})")
            return None
        return v

    return Point(
        line=line, raw=cells, id=cells["id"], backend=cells["backend"].strip().lower(),
        model_path=cells["model_path"].strip(), system=cells["system"].strip().lower(),
        mode=cells["mode"].strip().lower(), isl=_int(num("isl")) or 0, osl=_int(num("osl")) or 0,
        gemm_quant_mode=cells["gemm_quant_mode"].strip().lower(),
        batch_size=_int(num("batch_size", required=False)), tp=_int(num("tp_size", required=False)),
        pp=_int(num("pp_size", required=False)),
        attention_dp=_int(num("attention_dp_size", required=False)),
        moe_tp=_int(num("moe_tp_size", required=False)), moe_ep=_int(num("moe_ep_size", required=False)),
        ttft_ms=num("silicon_ttft_ms") or 0.0, tpot_ms=num("silicon_tpot_ms") or 0.0,
        cell_error=errors[0] if errors else None,
    )


def parse_filters(path: Path, filters: Sequence[str], columns: Iterable[str]) -> list[tuple[str, str]]:
    """``["backend=vllm", ...]`` -> ``[("backend", "vllm"), ...]``; the column must exist."""
    cols = set(columns)
    out = []
    for f in filters:
        col, sep, value = f.partition("=")
        col = col.strip()
        if not sep or not col:
            raise ConfigError(f"--filter {f!r}: expected COLUMN=VALUE")
        if col not in cols:
            raise ConfigError(f"--filter {f!r}: {path} has no column '{col}'; columns: {', '.join(sorted(cols))}")
        out.append((col, value.strip()))
    return out


def _matches(p: Point, filters: Sequence[tuple[str, str]]) -> bool:
    for col, value in filters:
        cell = p.raw.get(col, "").strip()
        if cell == value:
            continue
        try:  # numeric cells compare as numbers: tp_size=8 matches "8.0"
            if float(cell) == float(value):
                continue
        except ValueError:
            pass
        return False
    return True


@lru_cache(maxsize=None)
def _spec(catalog_name: str) -> ModelSpec:
    return ModelSpec.from_file(catalog_path(catalog_name))


def _is_moe(catalog_name: str) -> bool:
    return _spec(catalog_name).is_moe


#: InferenceMAX runs with speculative decoding, which the rows do not record, keyed by
#: what identifies the run: (backend, model path, the ``measured=`` timestamp and the
#: ``image=`` of ``silicon_data_source``), so another run of the same model on the same
#: day, without MTP, is not caught. DeepSeek-R1 on TensorRT-LLM measured on
#: 2026-01-14 is InferenceX's ``dsr1-fp8-h200-trt-mtp`` (PR #392, ``speculative_config:
#: decoding_type: MTP``, 3 draft tokens with attention TP, 1 with attention DP; merged
#: 2026-01-15): its grid has 1k/8k at 128 clients with attention TP, which only the MTP
#: configuration has, and its TPOT at 4 clients is 8.6 / 7.1 / 8.6 ms (1k/1k, 1k/8k, 8k/1k)
#: against 13.8 / 13.7 / 14.9 ms for the same settings without MTP on 2025-11-02, its TTFT
#: 1.3-2x higher.
SPECULATIVE_RUNS: dict[tuple[str, str, str, str], str] = {
    # the same run, spelt two ways in the silicon file (41 rows in all)
    ("trtllm", "deepseek-ai/DeepSeek-R1", "2026-01-14T22:26:21Z", "nvcr.io#nvidia/tensorrt-llm/release:1.1.0rc2.post2"):
        "MTP, InferenceX dsr1-fp8-h200-trt-mtp",
    ("trtllm", "deepseek-ai/DeepSeek-R1", "2026-01-14T00:00:00.000Z", "nvcr.io/nvidia/tensorrt-llm/release:1.1.0rc2.post2"):
        "MTP, InferenceX dsr1-fp8-h200-trt-mtp",
}

_SOURCE_FIELD = re.compile(r"(?:^|;)\s*(measured|image)=([^;]*)")


def run_key(p: Point) -> tuple[str, str, str, str]:
    """``(backend, model path, measured timestamp, image)`` of a row: what identifies the
    benchmark run it came from (the ``measured=`` and ``image=`` fields of its
    ``silicon_data_source``; empty when absent)."""
    fields = dict(_SOURCE_FIELD.findall(p.raw.get("silicon_data_source", "")))
    return (p.backend, p.model_path, fields.get("measured", "").strip(), fields.get("image", "").strip())


def unsupported_reason(p: Point) -> str | None:
    """Why hermes cannot simulate this row yet, or ``None`` if it can."""
    if p.cell_error is not None:
        return p.cell_error
    if p.mode != "agg":
        if p.mode == "disagg":
            return "disaggregated serving (mode=disagg): prefill-decode disaggregation is not modelled yet"
        return f"unknown mode '{p.mode}'"
    spec = SPECULATIVE_RUNS.get(run_key(p))
    if spec is not None and benchmark_of(p, "by-source") == "inferencemax":
        return f"speculative decoding ({spec}) is not modelled"
    if p.system not in SYSTEMS:
        return f"system '{p.system}' has no hermes GPU preset"
    if p.backend not in ENGINES:
        return f"backend '{p.backend}' has no engine profile (known: {', '.join(sorted(ENGINES))})"
    if p.model_path not in MODELS:
        why = UNSUPPORTED_MODELS.get(p.model_path, "not in the hermes model catalog")
        return f"model {p.model_path}: {why}"
    if p.gemm_quant_mode not in GEMM_PRECISION and p.model_path not in CHECKPOINT_PRECISION:
        return f"GEMM quantization '{p.gemm_quant_mode}' is not modelled"
    if p.batch_size is None or p.tp is None:
        return "batch_size or tp_size is empty"
    gpus = p.tp * (p.pp or 1)
    if gpus > GPUS_PER_NODE:
        return (f"tp_size x pp_size = {gpus} GPUs span several {p.system} nodes ({GPUS_PER_NODE} per "
                "NVLink domain); the inter-node network is not modelled")
    dp = p.attention_dp or 1
    if dp > 1:
        return f"attention data parallelism (attention_dp_size={dp}) is not modelled"
    if not _is_moe(MODELS[p.model_path]):
        return None  # the moe_* columns do not apply to a dense model
    moe = (p.moe_tp or 1) * (p.moe_ep or 1)
    if moe != p.tp * dp:
        return (f"inconsistent parallelism: tp_size x attention_dp_size = {p.tp * dp} GPUs for attention "
                f"but moe_tp_size x moe_ep_size = {moe} for the MLP")
    return None


#: The measured benchmark (aiconfigurator ``bench_run.sh.j2`` with aiperf's defaults):
#: ``--warmup-request-count 2C``, ``--num-requests 20C``, synthetic prompts drawn from
#: aiperf's default 100 dataset entries (``--num-dataset-entries``, shuffle sampling), and a
#: warm-up phase that drains before the measured phase starts.
WARMUP_ROUNDS = 2
MEASURED_ROUNDS = 20
DATASET_ENTRIES = 100

#: Largest ``requests x osl`` simulated per point: above it, :func:`plan_for` simulates
#: :data:`SHORT_ROUNDS` measured rounds instead of 20 (see :func:`plan_for`).
SEQUENCE_STEP_BUDGET = 6_000_000
SHORT_ROUNDS = 3


@dataclass(frozen=True)
class Plan:
    """How one point is simulated: ``warmup`` requests (drained before the rest start),
    then ``measured_rounds`` rounds of ``concurrency`` requests. ``burst_weight`` is the
    weight of the first measured round (the burst that starts the measured phase) in the
    means: ``1 / benchmark_rounds`` as in the benchmark (aiperf: 20); when fewer rounds are
    simulated, the other rounds stand for the remaining ones."""

    concurrency: int
    warmup: int
    measured_rounds: int
    #: Rounds of ``concurrency`` requests the benchmark itself measured.
    benchmark_rounds: int = 20

    @property
    def num_requests(self) -> int:
        return self.warmup + self.measured_rounds * self.concurrency

    @property
    def burst_weight(self) -> float:
        return 1.0 / self.benchmark_rounds


def plan_for(concurrency: int, osl: int, rounds: int | None = None) -> Plan:
    """The :class:`Plan` of a point with ``concurrency`` clients and ``osl`` output tokens:
    the benchmark as it ran (2C warm-up, 20 measured rounds) when ``22 C osl`` is at most
    :data:`SEQUENCE_STEP_BUDGET`, else :data:`SHORT_ROUNDS` measured rounds (the rounds
    after the first are alike: equal lengths, and from ``2C >= 100`` on, every measured
    prompt is a repeat of the dataset). ``rounds`` forces the number of measured rounds."""
    warm = WARMUP_ROUNDS * concurrency
    if rounds is None:
        full = (warm + MEASURED_ROUNDS * concurrency) * osl <= SEQUENCE_STEP_BUDGET
        rounds = MEASURED_ROUNDS if full else SHORT_ROUNDS
    return Plan(concurrency, warm, rounds)


def weight_precision(p: Point) -> str:
    """hermes weight precision of a row: the checkpoint's (:data:`CHECKPOINT_PRECISION`)
    where it is fixed, else the row's ``gemm_quant_mode`` (:data:`GEMM_PRECISION`)."""
    if p.model_path in CHECKPOINT_PRECISION:
        return CHECKPOINT_PRECISION[p.model_path][0]
    return GEMM_PRECISION[p.gemm_quant_mode]


def device_for(p: Point, tables: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``device`` of a row's engine: the analytic ``gpu`` preset of its system, or, when
    ``tables`` (backend -> path) has its backend, ``gpu_profiled`` on those measured
    operator tables (with the same preset as the fallback model)."""
    dev: dict[str, Any] = {"type": "gpu", "preset": SYSTEMS[p.system]}
    path = (tables or {}).get(p.backend)
    if path is not None:
        dev = {**dev, "type": "gpu_profiled", "tables": path}
        if p.model_path in MOE_TABLE_DTYPE:
            dev["moe_dtype"] = MOE_TABLE_DTYPE[p.model_path]
    return dev


#: ``--protocol`` choices: ``aiperf`` simulates every row as aiconfigurator's own benchmark
#: (:func:`plan_for`); ``by-source`` takes the rows whose ``silicon_data_source`` does not
#: name aiconfigurator's gap analysis as InferenceMAX (SemiAnalysisAI/InferenceX) runs
#: (:func:`benchmark_of`).
PROTOCOLS = ("aiperf", "by-source")
#: The protocol ``hermes validate serving`` runs unless told otherwise: each row with the
#: client it was measured with. On the 612 simulated H200 rows it scores TTFT / TPOT median
#: APE 8.9 / 7.5 % against 56.1 / 8.5 % for aiperf everywhere (on the 558 rows that run as
#: aiperf deployments; docs/validation.md).
DEFAULT_PROTOCOL = "by-source"

#: InferenceMAX's client (InferenceX ``benchmarks/benchmark_lib.sh`` and the per-model
#: scripts it calls, SemiAnalysisAI/InferenceX @ 843c6254): vLLM's ``benchmark_serving.py``
#: with ``--dataset-name random --random-range-ratio 0.8 --num-prompts 10C
#: --max-concurrency C --request-rate inf --ignore-eos``. Its random dataset draws each
#: prompt and output length uniformly from ``[int(0.8 L), L]`` (``sample_random_requests``),
#: so the closed-loop clients do not stay in step as they do with aiperf's fixed lengths.
#: From 2026-01-13 (commit 36141886d, upstream ``benchmark_serving.py`` with
#: ``--num-warmups 2C``) 2C warm-up requests run and finish before the measured ones.
INFERENCEMAX_RANGE_RATIO = 0.8
INFERENCEMAX_ROUNDS = 10
INFERENCEMAX_WARMUP_SINCE = datetime.date(2026, 1, 13)
#: From 2026-01-02 (InferenceX commit 4e52ed4c6, PR #327, "Fix H100/H200 perf regression")
#: InferenceMAX's gpt-oss H100/H200 vLLM scripts export ``VLLM_MXFP4_USE_MARLIN=1``: the
#: MXFP4 experts run vLLM's Marlin W4A16 kernels instead of the default OpenAI Triton ones.
INFERENCEMAX_MARLIN_SINCE = datetime.date(2026, 1, 2)
#: From 2026-03-13 (InferenceX commit 5e2c705d3, PR #869) InferenceMAX's MiniMax-M2.5 H200
#: vLLM script passes ``--enable-expert-parallel`` when ``EP_SIZE -ge 1``, which the sweep's
#: default ``ep: 1`` always meets: its TP8 rows ran the experts with expert parallelism over
#: the 8 GPUs (whole experts per GPU), as they must: MiniMax-M2.5's block-FP8 experts (1536
#: wide, 128-wide blocks) do not split over TP8 (:meth:`ModelSpec.check_block_quantization`).
#: Its TP4 rows (2026-03-01, the first script) ran without.
INFERENCEMAX_MINIMAX_EP_SINCE = datetime.date(2026, 3, 13)


def benchmark_of(p: Point, protocol: str = DEFAULT_PROTOCOL) -> str:
    """``"aiperf"`` or ``"inferencemax"``: the client a row is simulated with under
    ``protocol`` (:data:`PROTOCOLS`). Under ``by-source`` a row whose
    ``silicon_data_source`` is empty or names aiconfigurator's gap analysis
    (``aic-auto-gap-analysis``, ``*-gap-analysis.csv``) is an aiperf run; every other
    source (InferenceMAX's result files ``source_file=YYYY-MM-DD.csv`` and database dumps
    with their ``workflow_run_id``) is an InferenceMAX run. The evidence: their grids are
    InferenceMAX's (1k/1k, 1k/8k, 8k/1k; 4-64 or 128 clients; TP 1-8), their images are its
    images (``nvcr.io#nvidia/...``), and the TensorRT-LLM Llama-3.1-70B 1k/1k rows at TP < 8
    carry the 20-step batch wait that only InferenceMAX's script sets for exactly those
    runs (:func:`inferencemax_stage`). A gap-analysis row that repeats an InferenceMAX row
    (:func:`link_copies`) is that InferenceMAX run."""
    if protocol == "aiperf":
        return "aiperf"
    return "aiperf" if _is_gap_analysis(p) and p.copy_of is None else "inferencemax"


def inferencemax_plan(p: Point, rounds: int | None = None) -> Plan:
    """The :class:`Plan` of an InferenceMAX row: 2C warm-up requests for rows measured from
    :data:`INFERENCEMAX_WARMUP_SINCE` (none before), then :data:`INFERENCEMAX_ROUNDS` rounds
    of C, or :data:`SHORT_ROUNDS` when ``(warm-up + 10C) x osl`` exceeds
    :data:`SEQUENCE_STEP_BUDGET`; ``rounds`` forces the number."""
    C = p.batch_size
    day = measured_date(p)
    warm = WARMUP_ROUNDS * C if day is not None and day >= INFERENCEMAX_WARMUP_SINCE else 0
    if rounds is None:
        full = (warm + INFERENCEMAX_ROUNDS * C) * p.osl <= SEQUENCE_STEP_BUDGET
        rounds = INFERENCEMAX_ROUNDS if full else SHORT_ROUNDS
    return Plan(C, warm, rounds, INFERENCEMAX_ROUNDS)


def inferencemax_stage(p: Point) -> dict[str, Any]:
    """The ``llm_serving`` settings of an InferenceMAX row, from the InferenceX script that
    ran it (SemiAnalysisAI/InferenceX, at the row's measured date):

    * vLLM (``70b_fp8_h200_slurm.sh``, ``gptoss_fp4_h200*.sh``, ``minimaxm2.5_fp8_h200.sh``,
      ``kimik2.5_int4_h200.sh``): ``--max-num-seqs C``, ``max-num-batched-tokens 8192``
      (MiniMax, Kimi: vLLM's default, the same), ``no-enable-prefix-caching`` (Kimi keeps
      vLLM's prefix caching, which random prompts never hit), ``--gpu-memory-utilization 0.9``
      (MiniMax, Kimi 0.95),
      ``kv-cache-dtype fp8`` for Llama-3.3-70B-FP8; gpt-oss rows measured from
      :data:`INFERENCEMAX_MARLIN_SINCE` ``moe_kernel: marlin`` (``VLLM_MXFP4_USE_MARLIN=1``);
      MiniMax-M2.5 rows measured from :data:`INFERENCEMAX_MINIMAX_EP_SINCE` expert
      parallelism over the TP group (``--enable-expert-parallel``);
    * TensorRT-LLM (``70b_fp8_h200_trt_slurm.sh``, ``gptoss_fp4_h200_trt*.sh``,
      ``dsr1_fp8_h200_trt*.sh``): no chunked prefill (the LLM API default), ``max_num_tokens``
      16384 (Llama), 20000 (gpt-oss) or ``C + isl + 64`` rounded up to 64 (DeepSeek-R1),
      gpt-oss ``--max_batch_size C``, ``free_gpu_memory_fraction`` 0.85 (gpt-oss) or 0.75 with
      an FP8 KV cache (DeepSeek-R1), ``--ep_size`` equal to the TP degree for both (expert
      parallelism over the TP group, ``parallelism.ep``), and for Llama 1k/1k below TP 8
      ``batch_wait_timeout_iters 20``, ``batch_wait_max_tokens_ratio 0.9`` (see
      :class:`GuaranteedNoEvictConfig`);
    * SGLang (``dsr1_fp8_h200.sh``): ``--chunked-prefill-size 32768``,
      ``--mem-fraction-static 0.82``, ``--disable-radix-cache``.

    Every row: ``max_model_len`` ``isl + osl + 256`` (the scripts' ``isl + osl + 20`` to
    ``+ 256``). ``kv_cache`` is the precision's KV-cache dtype. Settings the scripts leave
    at the engine's default keep :data:`ENGINES`' values."""
    C = p.batch_size
    ep_over_tp = {"tp": p.tp, "pp": p.pp or 1, "ep": p.tp}  # the scripts' expert parallelism
    st: dict[str, Any] = {"max_num_seqs": C, "prefix_caching": False,
                          "max_model_len": p.isl + p.osl + 256}
    if p.backend == "vllm":
        st["max_num_batched_tokens"] = 8192
        if p.model_path in ("MiniMaxAI/MiniMax-M2.5", "moonshotai/Kimi-K2.5"):
            st["gpu_memory_utilization"] = 0.95
        if p.model_path == "meta-llama/Llama-3.1-70B":
            st["kv_cache"] = "fp8"
        day = measured_date(p)
        if (p.model_path == "MiniMaxAI/MiniMax-M2.5" and day is not None
                and day >= INFERENCEMAX_MINIMAX_EP_SINCE):
            st["parallelism"] = ep_over_tp
        if p.model_path == "openai/gpt-oss-120b" and day is not None and day >= INFERENCEMAX_MARLIN_SINCE:
            st["moe_kernel"] = "marlin"
    elif p.backend == "trtllm":
        batching: dict[str, Any] = {"type": "guaranteed_no_evict", "enable_chunked_prefill": False}
        if p.model_path == "meta-llama/Llama-3.1-70B":
            st["max_num_batched_tokens"] = 16384
            if p.isl == 1024 and p.osl == 1024 and (p.tp or 1) < 8:
                batching.update(batch_wait_timeout_iters=20, batch_wait_max_tokens_ratio=0.9)
        elif p.model_path == "openai/gpt-oss-120b":
            st["max_num_batched_tokens"] = 20000
            st["kv_cache_free_memory_fraction"] = 0.85
            st["parallelism"] = ep_over_tp
        elif p.model_path in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"):
            st["max_num_batched_tokens"] = -(-(C + p.isl + 64) // 64) * 64
            st["kv_cache_free_memory_fraction"] = 0.75
            st["kv_cache"] = "fp8"
            st["parallelism"] = ep_over_tp
        st["batching"] = batching
    elif p.backend == "sglang" and p.model_path in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"):
        st["max_num_batched_tokens"] = 32768
        st["gpu_memory_utilization"] = 0.82
    return st


def scenario_for(p: Point, rounds: int | None = None, limits: str = "aiconfigurator",
                 kv: str = "auto", prompt_reuse: bool = False,
                 tables: dict[str, str] | None = None, protocol: str = DEFAULT_PROTOCOL) -> tuple[dict[str, Any], Plan]:
    """``(scenario dict, plan)`` for a supported row, with the engine limits ``limits`` (one
    of :data:`ENGINE_LIMITS`), KV-cache dtype ``kv`` (one of :data:`KV_CACHE_DTYPES`) and
    ``rounds`` measured rounds (default :func:`plan_for`). ``prompt_reuse``: the clients of
    an aiperf row draw their prompts from aiperf's :data:`DATASET_ENTRIES` default dataset
    entries and the engine runs its default prefix caching
    (:attr:`EngineProfile.prefix_caching`); off (default), and always for an InferenceMAX
    row, every request has a prompt of its own. ``tables``: measured operator tables
    per backend (:func:`device_for`). ``protocol`` (:data:`PROTOCOLS`): an InferenceMAX row
    (:func:`benchmark_of`) gets that benchmark's client (:func:`inferencemax_plan`, lengths
    uniform in ``[0.8 L, L]``) and its script's engine settings (:func:`inferencemax_stage`,
    which take precedence over ``limits`` and ``kv``)."""
    eng = ENGINES[p.backend]
    C = p.batch_size
    imax = benchmark_of(p, protocol) == "inferencemax"
    plan = inferencemax_plan(p, rounds) if imax else plan_for(C, p.osl, rounds)
    weights = weight_precision(p)
    over = inferencemax_stage(p) if imax else {}
    if imax:  # InferenceMAX's random dataset: lengths uniform in [int(0.8 L), L]
        lengths = {k: {"dist": "uniform", "low": max(1, int(n * INFERENCEMAX_RANGE_RATIO)), "high": n}
                   for k, n in (("isl", p.isl), ("osl", p.osl))}
    else:
        lengths = {"isl": p.isl, "osl": p.osl}
    reuse = prompt_reuse and not imax
    host = host_time(p)
    stream = SHARED_EXPERTS_STREAM.get(p.backend, (0, True))
    scenario = {
        "name": f"{p.id}",
        "seed": 0,
        "workload": {"type": "closed_loop", "concurrency": C, **lengths,
                     "num_requests": plan.num_requests, "warmup_requests": plan.warmup,
                     "drain_after_warmup": True,
                     **({"num_prompts": DATASET_ENTRIES, "prompt_sampling": "shuffle"} if reuse else {})},
        "clients": [{
            "name": "engine",
            "device": device_for(p, tables),
            "stage": {
                "type": "llm_serving",
                "model": MODELS[p.model_path],
                "precision": {"weights": weights, "activations": "bf16",
                              "kv_cache": over.pop("kv_cache", None) or kv_cache_dtype(p.backend, weights, kv)},
                "parallelism": {"tp": p.tp, "pp": p.pp or 1,
                                **({"ep": p.moe_ep} if (p.moe_ep or 1) > 1 and _is_moe(MODELS[p.model_path]) else {})},
                "max_num_seqs": max(eng.max_num_seqs, C),
                "max_num_batched_tokens": eng.max_num_batched_tokens(limits, C, p.isl, measured_date(p),
                                                                   p.raw.get("silicon_data_source", "")),
                # aiconfigurator's generated configs: max_model_len = isl + osl + 1500
                "max_model_len": min(p.isl + p.osl + 1500,
                                     _spec(MODELS[p.model_path]).max_position_embeddings),
                "gpu_memory_utilization": eng.gpu_memory_utilization,
                **({"kv_cache_free_memory_fraction": eng.kv_cache_free_memory_fraction}
                   if eng.kv_cache_free_memory_fraction is not None else {}),
                "step_overhead_us": host[0],
                "seq_overhead_us": host[1],
                "overlap_host": overlaps_host(p),
                **({"schedule_ahead": True} if p.backend in SCHEDULES_AHEAD else {}),
                "frontend_token_us": FRONTEND_TOKEN_US.get(p.backend, 0.0),
                "eager_moe_layer_us": EAGER_MOE_LAYER_US.get(p.backend, 0.0),
                "eager_op_us": EAGER_OP_US.get(p.backend, 0.0),
                "shared_experts_stream_tokens": max(eng.max_num_seqs, C) if stream[0] is None else stream[0],
                "shared_experts_stream_in_prefill": stream[1],
                **({"ep_masked_slots": True} if p.backend in EP_MASKED_SLOTS else {}),
                "prefix_caching": reuse and eng.prefix_caching,
                "batching": dict(eng.batching),
                **over,  # InferenceMAX's script settings replace the aiconfigurator ones
            },
        }],
    }
    stage = scenario["clients"][0]["stage"]
    stage["cuda_graph_max_tokens"] = cuda_graph_max_tokens(p, stage["max_num_seqs"], imax)
    return scenario, plan


@dataclass(frozen=True)
class Options:
    """How points are simulated: ``rounds`` measured rounds per point (``None``:
    :func:`plan_for`), engine ``limits`` (:data:`ENGINE_LIMITS`), KV-cache dtype ``kv``
    (:data:`KV_CACHE_DTYPES`), ``prompt_reuse``, measured operator ``tables`` as
    ``(backend, path)`` pairs and the client ``protocol`` (:data:`PROTOCOLS`; see
    :func:`scenario_for`)."""

    rounds: int | None = None
    limits: str = "aiconfigurator"
    kv: str = "auto"
    prompt_reuse: bool = False
    tables: tuple[tuple[str, str], ...] = ()
    protocol: str = DEFAULT_PROTOCOL


def simulate(p: Point, opts: Options = Options(), sources: dict | None = None) -> tuple[float, float]:
    """Mean TTFT and TPOT (ms) of the measured requests, the first measured round weighted
    as in the benchmark (:attr:`Plan.burst_weight`). ``sources``, when given, receives the
    device's count of operators priced from measured tables and by the model (``{kind:
    {"measured": n, "modelled": n}}``; empty for the analytic ``gpu``). Raises
    :class:`HermesError` when the point cannot run (the model does not fit, requests are
    dropped)."""
    scenario, plan = scenario_for(p, opts.rounds, opts.limits, opts.kv, opts.prompt_reuse, dict(opts.tables),
                                  opts.protocol)
    result = api.run(scenario)
    if sources is not None:
        for rep in result.summary["clients"]["engine"].values():
            for kind, n in rep.get("device", {}).get("pricing_sources", {}).items():
                acc = sources.setdefault(kind, {"measured": 0, "modelled": 0})
                acc["measured"] += n["measured"]
                acc["modelled"] += n["modelled"]
    first_end = plan.warmup + plan.concurrency
    parts: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    dropped: Counter = Counter()
    for r in result.requests:
        if r.dropped_reason:
            dropped[r.dropped_reason.split(":")[0]] += 1
            continue
        if r.id < plan.warmup or r.finish_time < 0:
            continue
        ttft, tpot = parts[r.id < first_end]
        ttft.append(r.first_token_time - r.arrival_time)
        if r.generated_tokens > 1:
            tpot.append((r.finish_time - r.first_token_time) / (r.generated_tokens - 1))
    if dropped:
        raise HermesError("requests dropped: " + ", ".join(f"{k} ({v})" for k, v in dropped.items()))
    if not parts[True][0]:
        raise HermesError("no request completed after the warm-up")

    def mean(i: int) -> float:
        burst, rest = parts[True][i], parts[False][i]
        if not burst and not rest:
            return float("nan")
        if not rest or not burst:
            return float(np.mean(burst or rest)) * 1e3
        w = plan.burst_weight
        return (w * float(np.mean(burst)) + (1 - w) * float(np.mean(rest))) * 1e3

    return mean(0), mean(1)


def _short_reason(reason: str) -> str:
    """The reason without row-specific numbers, for counting."""
    if reason.startswith("does not fit"):
        return "does not fit on the GPUs"
    if reason.startswith("attention data parallelism"):
        return "attention data parallelism is not modelled"
    if "span several" in reason:
        return "tensor parallelism across nodes is not modelled"
    if reason.startswith("inconsistent parallelism"):
        return "inconsistent parallelism columns (tp_size vs moe_tp_size x moe_ep_size)"
    return reason


def _row(p: Point) -> dict[str, Any]:
    return {
        "id": p.id, "model": p.model_path.rsplit("/", 1)[-1], "model_path": p.model_path,
        "backend": p.backend, "system": p.system,
        "backend_version": p.raw.get("backend_version", ""), "mode": p.mode,
        "precision": p.raw.get("precision", ""), "gemm_quant_mode": p.gemm_quant_mode,
        "isl": p.isl, "osl": p.osl, "concurrency": p.batch_size, "tp": p.tp, "pp": p.pp,
        "hermes_model": MODELS.get(p.model_path, ""),
        "ttft_measured": p.ttft_ms, "ttft_predicted": None, "ttft_ape": None,
        "tpot_measured": p.tpot_ms, "tpot_predicted": None, "tpot_ape": None,
        "status": "simulated", "reason": "", "wall_s": None, "device": "", "measured_operators": "",
        "benchmark": "",
    }


def validate_point(p: Point, opts: Options = Options()) -> dict[str, Any]:
    """The CSV row of one point: simulated (predicted, measured, APE) or not (``reason``).
    ``device`` is the device type the point ran on; on ``gpu_profiled``,
    ``measured_operators`` gives per operator kind the priced operators that came from the
    measured tables out of all (e.g. ``moe 303/303; gemm 0/18545``)."""
    row = _row(p)
    reason = unsupported_reason(p)
    if reason is None:
        t0 = time.perf_counter()
        sources: dict = {}
        row["device"] = device_for(p, dict(opts.tables))["type"]
        row["benchmark"] = benchmark_of(p, opts.protocol)
        try:
            ttft, tpot = simulate(p, opts, sources)
        except CapacityError as exc:
            reason = f"does not fit: {str(exc).split(': ', 1)[-1]}"
        except HermesError as exc:
            reason = str(exc)
        else:
            row.update(ttft_predicted=ttft, tpot_predicted=tpot, ttft_ape=ape(ttft, p.ttft_ms),
                       tpot_ape=ape(tpot, p.tpot_ms) if math.isfinite(tpot) else None)
            # which operators came from measurement: "moe 303/303; gemm 0/18545; ..."
            row["measured_operators"] = "; ".join(
                f"{k} {v['measured']}/{v['measured'] + v['modelled']}"
                for k, v in sources.items() if v["measured"] + v["modelled"])
        row["wall_s"] = round(time.perf_counter() - t0, 3)
    if reason is not None:
        row.update(status="not simulated", reason=reason)
    return row


def validate_points(points: Sequence[Point], opts: Options = Options(), jobs: int = 1,
                    progress: Callable[[Point], None] | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """Simulate every supported point, on ``jobs`` processes. Returns ``(rows, unsupported)``:
    one dict per row of the file in file order (simulated or not, with ``status`` and
    ``reason``) and ``(id, short reason)`` for the rows not simulated. Each point is an
    independent deterministic run, so the result does not depend on ``jobs``."""
    rows: list[dict | None] = [None] * len(points)
    todo = [i for i, p in enumerate(points) if unsupported_reason(p) is None]
    skip = set(range(len(points))) - set(todo)
    for i, p in enumerate(points):
        if i in skip:
            rows[i] = validate_point(p)
            if progress is not None:
                progress(p)
    if jobs > 1 and len(todo) > 1:
        # longest first, so that no long point starts last
        todo.sort(key=lambda i: -_cost(points[i]))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(validate_point, points[i], opts): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                rows[i] = fut.result()
                if progress is not None:
                    progress(points[i])
    else:
        for i in todo:
            rows[i] = validate_point(points[i], opts)
            if progress is not None:
                progress(points[i])
    unsupported = [(r["id"], _short_reason(r["reason"])) for r in rows if r["status"] != "simulated"]
    return rows, unsupported


def parse_device_tables(specs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``BACKEND=PATH`` options -> ``((backend, absolute path), ...)``. Raises
    :class:`ConfigError` for a malformed spec, an unknown or repeated backend, or tables
    that cannot be read (naming the file and column)."""
    out: dict[str, str] = {}
    for spec in specs:
        backend, sep, path = spec.partition("=")
        if not sep or not path:
            raise ConfigError(f"--device-tables {spec!r}: expected BACKEND=PATH, e.g. sglang=tables/h200_sglang")
        if backend not in ENGINES:
            raise ConfigError(f"--device-tables {spec!r}: unknown backend {backend!r}; allowed: {', '.join(ENGINES)}")
        if backend in out:
            raise ConfigError(f"--device-tables: backend {backend!r} given twice")
        resolved = str(Path(path).expanduser().resolve())
        try:
            load_tables([resolved])
        except TableError as exc:
            raise ConfigError(f"--device-tables {spec!r}: {exc}") from None
        out[backend] = resolved
    return tuple(sorted(out.items()))


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cost(p: Point) -> float:
    """Rough simulation cost of a point (sequence-steps simulated)."""
    plan = plan_for(p.batch_size or 1, p.osl)
    return plan.num_requests * (p.osl + p.isl / 512)


def print_unsupported(console: Console, unsupported: Sequence[tuple[str, str]], total: int) -> None:
    """A table of the rows not simulated: one line per reason, with a count and an example."""
    if not unsupported:
        console.print(f"all {total} rows simulated")
        return
    t = Table(title=f"rows not simulated: {len(unsupported)} of {total}")
    t.add_column("rows", justify="right")
    t.add_column("reason")
    t.add_column("example id")
    first: dict[str, str] = {}
    for rid, r in unsupported:
        first.setdefault(r, rid)
    for r, n in Counter(r for _, r in unsupported).most_common():
        t.add_row(str(n), r, first[r])
    console.print(t)


_HELP = """Simulate measured closed-loop serving points and compare TTFT and TPOT.

FILE is a CSV of the aiconfigurator-silicon format (aiconfigurator's silicon_sample.csv:
one measured benchmark per row, batch_size clients with isl/osl tokens, mean TTFT and TPOT).
Every aggregated row whose model, system and parallelism hermes can model is simulated as a
closed_loop workload on one llm_serving engine (engine limits, KV-cache dtype, host time and
the front-end's time per streamed token per backend: see docs/performance-model.md, section
7); every other row is counted and
listed with the reason. Prints the median and mean absolute percentage error (APE) of mean
TTFT and mean TPOT per model, backend and system and overall, and writes one CSV row per
file row (predicted, measured, APE, or the reason it was not simulated).

Each point is simulated as the benchmark that measured it ran (--protocol by-source, the
default). Rows from InferenceMAX's result files: vLLM's benchmark_serving with 10C prompts,
lengths uniform in [0.8 L, L], 2C warm-ups from 2026-01-13, and the engine settings of its
scripts (see docs/performance-model.md). Rows of aiconfigurator's own gap analysis (and rows
without a source), and every row under --protocol aiperf: aiconfigurator's bench_run.sh with
aiperf, 2C warm-up requests drained before 20 measured rounds of C requests start as one
burst.
Points whose 22 x C x osl exceeds 6M sequence-steps run 3 measured rounds instead, the
first (burst) round weighted 1/20 in the means as in the benchmark. --rounds R sets the
measured rounds of every point. The file does not record whether prompts repeated: by
default every request has a distinct prompt; --prompt-reuse draws the aiperf rows' prompts
from aiperf's 100 default dataset entries, with each engine's default prefix caching.

--device-tables BACKEND=PATH prices that backend's rows on the gpu_profiled device: the
operators PATH's aiconfigurator tables measured (e.g. the fused MoE layer of the same
engine on the same GPU), the analytic model for the rest; the CSV's measured_operators
column says, per operator kind, how many came from the tables.
"""


@click.command("serving", help=_HELP)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="Format of FILE.")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Keep only rows whose COLUMN equals VALUE (repeatable; all must match), "
                   "e.g. --filter backend=vllm --filter tp_size=8.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("hermes-out/validate-serving.csv"), show_default=True,
              help="Per-row CSV to write.")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Measured rounds of C requests per point (default 20, or 3 for points "
                   "longer than 6M sequence-steps).")
@click.option("--engine-limits", type=click.Choice(ENGINE_LIMITS), default="aiconfigurator",
              show_default=True,
              help="Token budget per engine step: the one aiconfigurator's generator writes into "
                   "the deployments it benchmarks, or each engine's own default (8192).")
@click.option("--kv-cache-dtype", "kv_choice", type=click.Choice(KV_CACHE_DTYPES), default="auto", show_default=True,
              help="KV-cache precision; auto: the backend's default (TensorRT-LLM: fp8 for FP8 "
                   "checkpoints; vLLM, SGLang: bf16).")
@click.option("--prompt-reuse/--no-prompt-reuse", default=False, show_default=True,
              help="The aiperf rows' clients draw prompts from aiperf's 100 default dataset "
                   "entries and engines run their default prefix caching (vLLM, SGLang on; "
                   "TensorRT-LLM off, as aiconfigurator configures it). Default: every request "
                   "a distinct prompt (InferenceMAX's rows always).")
@click.option("--device-tables", "device_tables", multiple=True, metavar="BACKEND=PATH",
              help="Price BACKEND's rows from the aiconfigurator operator tables in PATH (a "
                   "directory or file; gpu_profiled device, the analytic model outside the "
                   "tables). Repeatable, one per backend.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=DEFAULT_PROTOCOL, show_default=True,
              help="Benchmark client simulated: by-source (rows from InferenceMAX's result "
                   "files with InferenceMAX's client and its scripts' engine settings; the "
                   "rest with aiperf) or aiperf (aiconfigurator's, every row).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Points simulated in parallel processes (default: the CPUs available).")
def serving_command(file: Path, fmt: str, filters: tuple[str, ...], output: Path,
                    rounds: int | None, engine_limits: str, kv_choice: str, prompt_reuse: bool,
                    device_tables: tuple[str, ...], protocol: str, jobs: int | None) -> None:
    tables = parse_device_tables(device_tables)
    points = read_points(file)
    flt = parse_filters(file, filters, points[0].raw.keys())
    points = [p for p in points if _matches(p, flt)]
    if not points:
        raise ConfigError(f"{file}: no row matches {' '.join('--filter ' + f for f in filters)}")
    console = Console()
    if not console.is_terminal:  # files and pipes: wide enough for the model names
        console = Console(width=100)
    err = Console(stderr=True)
    t0 = time.perf_counter()
    bar = Progress(TextColumn("[bold]simulating points"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[label]}"), TimeElapsedColumn(), console=err, transient=True)
    with bar:
        task = bar.add_task("points", total=len(points), label="")
        rows, unsupported = validate_points(
            points, Options(rounds, engine_limits, kv_choice, prompt_reuse, tables, protocol), jobs or _cpus(),
            progress=lambda p: bar.update(task, advance=1, label=p.id[:60]),
        )
    wall = time.perf_counter() - t0
    simulated = [r for r in rows if r["status"] == "simulated"]
    console.print(f"{file}: {len(rows)} rows, {len(simulated)} simulated, {len(unsupported)} not simulated; "
                  f"{wall:.1f} s")
    for backend, path in tables:
        ran = [r for r in simulated if r["backend"] == backend]
        console.print(f"{backend}: {len(ran)} points on gpu_profiled with the tables in {path} "
                      "(measured_operators column: operators priced from them, per kind)")
    for metric, title in (("ttft_", "TTFT (mean per point): predicted vs measured"),
                          ("tpot_", "TPOT (mean per point): predicted vs measured")):
        print_summary(console, title, ape_summary(simulated, GROUPS, metric))
    print_unsupported(console, unsupported, len(rows))
    write_rows(output, rows)
    console.print(f"wrote {output}")
