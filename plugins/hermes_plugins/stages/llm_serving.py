"""A vLLM-like LLM serving engine as a hermes stage.

The engine loops: ask the batching policy for a batch, price it with the
:class:`~hermes_plugins.stages.step_cost.StepCostModel`, advance time by that much, then
apply the step (tokens computed, tokens sampled, requests finished) and loop again. It idles
when nothing can run and wakes when a request arrives.

KV cache (paged, vLLM's scheme): per device,
``capacity = memory * gpu_memory_utilization - weights - activation reserve`` (or, with
``kv_cache_free_memory_fraction`` set, TensorRT-LLM's rule ``fraction * (memory - weights -
activation reserve)``), split into
blocks of ``block_size`` tokens of ``2 * layers/pp * kv_heads/tp * head_dim * bytes`` each.
As in vLLM, the engine refuses to start (:class:`CapacityError`) when the weights do not
fit or the cache cannot hold one ``max_model_len`` sequence.

A request that can never be served is dropped at arrival with a reason:
``exceeds_max_model_len``, ``kv_cache_too_small`` (prompt + output need more blocks than
the whole cache) or ``prompt_exceeds_token_budget`` (policies without chunked prefill).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hermes_core import (
    BlockManager, Handoff, PluginError, CapacityError, ConfigError, EngineLimits, ModelSpec, PrefixCache, Request, SchedulerState,
    Sequence, Stage, StageContext, dtype_bytes,
)
from hermes_core.engine import PRIORITY_COMPLETION, PRIORITY_DEFAULT
from hermes_core.hardware import DTYPE_BYTES
from hermes_core.plugins import model_path

from ..devices import MOE_KERNELS
from .step_cost import StepCostModel, window_sums

GiB = 2**30


class Precision(BaseModel):
    """Precisions of weights, activations (and attention math) and KV cache. ``experts``:
    precision of the routed experts' weights when it differs from ``weights`` (e.g.
    ``mxfp4``); unset, the checkpoint's own expert quantization
    (:attr:`ModelSpec.expert_weights`, MXFP4 for gpt-oss) or else ``weights``."""

    model_config = ConfigDict(extra="forbid")
    weights: str = "bf16"
    activations: str = "bf16"
    kv_cache: str = "bf16"
    experts: str | None = None

    @field_validator("weights", "activations", "kv_cache", "experts")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPE_BYTES:
            raise ValueError(f"unknown precision '{v}'; allowed: {', '.join(DTYPE_BYTES)}")
        return v


class Parallelism(BaseModel):
    """Tensor-parallel (``tp``) and pipeline-parallel (``pp``) degrees, and the
    expert-parallel degree ``ep`` of a MoE model's routed experts within the ``tp`` group
    (``ep`` must divide ``tp``; each expert is split over the other ``tp / ep``)."""

    model_config = ConfigDict(extra="forbid")
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)


class LLMServingConfig(BaseModel):
    """Configuration of the ``llm_serving`` stage (vLLM engine argument names).

    Fields: ``model`` (catalog name such as ``llama-3.1-70b``, or a path to a Hugging Face
    ``config.json``); ``precision``; ``parallelism``; ``max_num_seqs`` (default 256);
    ``max_num_batched_tokens`` (token budget per step, default 8192);
    ``max_model_len`` (tokens, default the model's ``max_position_embeddings``);
    ``block_size`` (tokens per KV block, default 16); ``gpu_memory_utilization`` (share of
    device memory the engine may use, default 0.9); ``kv_cache_free_memory_fraction``
    (default unset): TensorRT-LLM's ``kv_cache_config.free_gpu_memory_fraction``, the share
    of the memory left after the weights and activations that the KV cache takes; when set
    it replaces the ``gpu_memory_utilization`` rule; ``activation_reserve_GiB`` (memory kept
    for activations per device; default estimated, see :func:`activation_reserve_bytes`);
    ``step_overhead_us`` (host CPU time per engine step, default 0) and
    ``seq_overhead_us`` (host time per sequence in the step, default 0): scheduling, input
    preparation, sampling bookkeeping and output processing; ``overlap_host`` (default
    false): whether the host prepares the next step while the GPU runs the current one
    (TensorRT-LLM's and SGLang's overlap schedulers, vLLM's ``--async-scheduling``), so a step
    lasts ``max(device, host)``, or runs between steps (vLLM V1 default), ``device + host``.
    ``schedule_ahead`` (default: as ``overlap_host``): whether the scheduler decides step
    k+1 while step k runs (vLLM's async scheduling, TensorRT-LLM's and SGLang's overlap
    schedulers), so a request that arrives during step k is first scheduled in step k+2 (one
    step later than a scheduler that works between steps; an idle engine takes it at once).
    Set it apart from ``overlap_host`` for an engine that schedules ahead but whose host work
    per step still adds to the GPU's (SGLang's rows in ``hermes validate serving``);
    ``eager_op_us`` (default 0): host time to launch one operator of a step that holds a
    prefill chunk, which engines run without CUDA graphs (SGLang, TensorRT-LLM's PyTorch
    backend): such a step lasts at least ``eager_op_us x`` the operators of one forward pass
    (:attr:`StepCostModel.ops_per_forward`);
    ``cuda_graph_max_tokens`` (default ``None``): the largest step, in tokens, that the engine
    runs under a captured CUDA graph (vLLM: ``max_cudagraph_capture_size``, by default
    ``min(2 max_num_seqs, 512)``); ``eager_op_us`` applies only to steps with a prefill chunk
    and more tokens than that. ``None``: every step with a prefill chunk runs eagerly;
    ``eager_moe_layer_us`` (default 0): host time that each MoE layer adds to a step holding
    a prefill chunk. Without CUDA graphs the host launches every kernel of the forward pass
    from Python; a MoE layer's many small kernels (router top-k, token alignment and
    permutation, activation quantization, un-permutation) take the GPU less time than their
    launches, so the GPU waits for the host there whatever the number of tokens, and the
    wait adds to the device time (aiconfigurator prices the same CPU dispatch as 0.8 ms per
    layer for vLLM, ``VLLMBackend._prefill_dispatch_overhead_ms``; the measured H200 rows of
    dense models fit without it, so hermes charges it to MoE layers only);
    ``shared_experts_stream_tokens`` (default 0: never): largest step, in tokens, in which a
    MoE layer's shared experts run beside its router and routed experts instead of after
    them, so the layer takes the longer of the two paths (vLLM's shared-experts CUDA stream
    up to ``VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD`` = 256 tokens; see
    :class:`~hermes_plugins.stages.step_cost.StepCostModel`); models without shared
    experts are unaffected; ``shared_experts_stream_in_prefill`` (default true): false
    limits that to decode-only steps, the ones engines run under CUDA graphs (SGLang's
    dual-stream MoE and TensorRT-LLM's ``maybe_execute_in_parallel`` run the two streams
    only then);
    ``ep_masked_slots`` (default false): with expert parallelism (``parallelism.ep > 1``),
    the MoE kernels also run over each token's expert slots routed to other devices, as
    vLLM's Triton ``fused_moe`` does with an expert map (expert parallelism without an
    all-to-all: it writes zeros for those slots and runs the activation over them; see
    :func:`~hermes_plugins.stages.step_cost.masked_slot_bytes`); false prices only the
    local slots;
    ``frontend_token_us`` (default 0): CPU time of the serving front-end per output token
    (detokenization and streaming to the client in the API-server process, e.g. SGLang's
    tokenizer manager), one first-in-first-out server per replica that the engine does not
    wait for: a step's tokens reach the client ``frontend_token_us x tokens`` after the
    front-end is free of everything earlier, and TTFT, ITL and E2E latency are measured
    there, where a benchmark client sees them; a closed-loop client sends its next request
    when the last token arrives. 0 delivers at the end of the step;
    ``moe_kernel`` (default unset: the engine's default fused-MoE kernel for the expert
    precision): ``marlin`` prices the routed experts with the Marlin W4A16 kernels' fitted
    efficiency (vLLM ``VLLM_MXFP4_USE_MARLIN=1``; see :data:`~hermes_plugins.devices.MOE_KERNELS`),
    MoE models only;
    ``prefix_caching`` (default false): automatic prefix caching (vLLM
    ``--enable-prefix-caching``, SGLang's radix cache, TensorRT-LLM ``enable_block_reuse``):
    prompt blocks named by :attr:`Request.hash_ids` are looked up when a request arrives and
    remembered once its prefill is done, in an LRU cache as large as the KV cache
    (:class:`~hermes_core.PrefixCache`); ``batching`` (policy spec, default
    ``{type: chunked_prefill}``);
    ``role`` (default ``both``): in prefill-decode disaggregation, ``prefill`` computes the
    prompt, samples one token (vLLM's disaggregated prefill runs the prefill instance with
    ``max_tokens=1``) and hands the prompt's KV cache on (bytes: the whole model's KV bytes
    per token x prompt tokens, :meth:`LLMServing.handoff`); ``decode`` serves requests that
    arrive with their prompt's KV (:attr:`Request.cached_tokens`), computing only the last
    prompt token and the output; ``both`` serves whole requests. Any role computes only the
    prompt tokens whose KV did not arrive with the request.
    """

    model_config = ConfigDict(extra="forbid")
    model: str
    precision: Precision = Field(default_factory=Precision)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    max_num_seqs: int = Field(256, ge=1, le=1 << 20)
    max_num_batched_tokens: int = Field(8192, ge=1, le=1 << 20)
    max_model_len: int | None = Field(None, ge=1)
    block_size: int = Field(16, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    kv_cache_free_memory_fraction: float | None = Field(None, gt=0, le=1)
    activation_reserve_GiB: float | None = Field(None, ge=0)
    step_overhead_us: float = Field(0.0, ge=0)
    seq_overhead_us: float = Field(0.0, ge=0)
    overlap_host: bool = False
    schedule_ahead: bool | None = None
    eager_op_us: float = Field(0.0, ge=0)
    cuda_graph_max_tokens: int | None = Field(None, ge=0)
    eager_moe_layer_us: float = Field(0.0, ge=0)
    shared_experts_stream_tokens: int = Field(0, ge=0)
    shared_experts_stream_in_prefill: bool = True
    ep_masked_slots: bool = False
    frontend_token_us: float = Field(0.0, ge=0)
    moe_kernel: Literal[MOE_KERNELS] | None = None  # type: ignore[valid-type]
    prefix_caching: bool = False
    batching: dict[str, Any] = Field(default_factory=lambda: {"type": "chunked_prefill"})
    role: Literal["both", "prefill", "decode"] = "both"

    @model_validator(mode="after")
    def _budget_holds_a_decode_step(self) -> LLMServingConfig:
        # vLLM's SchedulerConfig refuses the same setting: a decode step of max_num_seqs
        # sequences would not fit the token budget
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
                             f"({self.max_num_seqs}), as vLLM requires: a decode step of max_num_seqs sequences "
                             "must fit the token budget")
        return self


def activation_reserve_bytes(model: ModelSpec, tp: int, max_tokens: int, max_seqs: int, act_bytes: float) -> float:
    """Estimated peak activation memory per device during a ``max_tokens`` forward pass, as
    vLLM's profiling run measures it: the widest live intermediates (gate/up output, QKV,
    residual stream) for ``max_tokens`` tokens, fp32 logits for ``max_seqs`` sequences,
    plus 1 GiB for CUDA graphs, NCCL buffers and the allocator (a round figure typical of
    vLLM logs on H100)."""
    inter = max(model.intermediate, 2 * model.moe_intermediate * max(model.experts_per_token, 1))
    per_tok = (2 * inter / tp + (model.heads + 2 * model.kv_heads) * model.head_dim / tp + 4 * model.hidden) * act_bytes
    logits = max_seqs * model.vocab / tp * 4
    return max_tokens * per_tok + logits + 1 * GiB


class LLMServing(Stage):
    """The ``llm_serving`` stage: a paged-KV continuous-batching engine on ``tp * pp``
    devices.

    Raises :class:`CapacityError` if the model does not fit, :class:`ConfigError` for an
    unknown model or policy.
    """

    Config = LLMServingConfig

    @classmethod
    def devices_needed(cls, config: LLMServingConfig) -> int:
        """Devices per replica: ``tp * pp``."""
        return config.parallelism.tp * config.parallelism.pp

    def __init__(self, config: LLMServingConfig, ctx: StageContext):
        super().__init__(config, ctx)
        where = ctx.where
        reg = ctx.registry
        path = model_path(reg, config.model, f"{where}.model", ctx.base_dir)
        comp = None
        for n in reg.names("models"):
            if reg.get("models", n).obj == str(path):
                comp = reg.get("models", n)
        self.model = ModelSpec.from_file(path, name=comp.name if comp else path.stem,
                                         source=comp.source if comp else str(path))
        tp, pp, ep = config.parallelism.tp, config.parallelism.pp, config.parallelism.ep
        self.model.check_parallelism(tp, pp, f"{where}.parallelism", ep)
        if config.moe_kernel is not None and not self.model.is_moe:
            raise ConfigError(f"{where}.moe_kernel: {self.model.name} has no routed experts; "
                              "moe_kernel applies to MoE models only")
        prec = config.precision
        dev = ctx.devices[0]
        self.expert_precision = (prec.experts or self.model.expert_weights or prec.weights) if self.model.is_moe else None
        for f in ("weights", "activations", "experts"):
            value = self.expert_precision if f == "experts" else getattr(prec, f)
            if value is None:
                continue
            try:
                dev.peak_flops(value)
            except ValueError as exc:
                raise ConfigError(f"{where}.precision.{f}: {exc}") from None
        if prec.weights == "fp8":  # a block-FP8 checkpoint run as such
            self.model.check_block_quantization(tp, f"{where}.parallelism", ep)
        if config.max_model_len and config.max_model_len > self.model.max_position_embeddings:
            raise ConfigError(
                f"{where}.max_model_len: {config.max_model_len} exceeds the model's "
                f"max_position_embeddings ({self.model.max_position_embeddings})"
            )
        self.max_model_len = config.max_model_len or self.model.max_position_embeddings
        limits = EngineLimits(max_num_seqs=config.max_num_seqs,
                              max_num_batched_tokens=config.max_num_batched_tokens,
                              max_model_len=self.max_model_len)
        self.policy = reg.build("batching_policies", config.batching, f"{where}.batching")
        # -- memory --------------------------------------------------------------------
        weights = self.model.weight_bytes_per_device(
            dtype_bytes(prec.weights), tp, pp,
            dtype_bytes(self.expert_precision) if self.expert_precision else None)
        reserve = (config.activation_reserve_GiB * GiB if config.activation_reserve_GiB is not None
                   else activation_reserve_bytes(self.model, tp, config.max_num_batched_tokens,
                                                 config.max_num_seqs, dtype_bytes(prec.activations)))
        free_frac = config.kv_cache_free_memory_fraction
        budget = dev.memory_bytes * (config.gpu_memory_utilization if free_frac is None else 1.0)
        kv_bytes = budget - weights - reserve
        if free_frac is not None:
            kv_bytes *= free_frac
        self.kv_per_token = self.model.kv_bytes_per_token(dtype_bytes(prec.kv_cache), tp, pp)
        n_dev = tp * pp
        offers = (f"({dev.memory_bytes / GiB:.1f} GiB x gpu_memory_utilization {config.gpu_memory_utilization})"
                  if free_frac is None else "(all of its memory)")
        fit_msg = (f"{where}: {self.model.name} with {prec.weights} weights needs {weights / GiB:.1f} GiB "
                   f"per device plus {reserve / GiB:.1f} GiB activations on {n_dev} x {dev.name} "
                   f"(tp={tp}, pp={pp}), but each device offers {budget / GiB:.1f} GiB {offers}")
        if kv_bytes <= 0:
            raise CapacityError(fit_msg + "; use more devices (tp/pp), fp8 weights or a larger device")
        num_blocks = int(kv_bytes // (config.block_size * self.kv_per_token))
        if num_blocks * config.block_size < self.max_model_len:
            raise CapacityError(
                f"{where}: the KV cache holds {num_blocks * config.block_size:,} tokens "
                f"({kv_bytes / GiB:.1f} GiB per device), fewer than one max_model_len={self.max_model_len:,} "
                "sequence; lower max_model_len or add devices"
            )
        self.weight_bytes = weights
        self.kv_cache_bytes = kv_bytes
        prefix = PrefixCache(num_blocks * config.block_size) if config.prefix_caching else None
        self.state = SchedulerState(BlockManager(num_blocks, config.block_size), limits, prefix)
        self.cost = StepCostModel(
            self.model, dev, tp, pp, prec.weights, prec.activations, prec.kv_cache, ctx.topology,
            ctx.device_names, config.max_num_batched_tokens, config.max_num_seqs,
            experts=self.expert_precision, ep=ep, moe_kernel=config.moe_kernel,
            shared_stream_tokens=config.shared_experts_stream_tokens,
            ep_masked_slots=config.ep_masked_slots,
        )
        self._stream_in_prefill = config.shared_experts_stream_in_prefill
        self._window = self.model.sliding_window if self.model.sliding_layers else 0
        self._overhead = config.step_overhead_us * 1e-6
        self._seq_overhead = config.seq_overhead_us * 1e-6
        self._overlap = config.overlap_host
        self._ahead = config.overlap_host if config.schedule_ahead is None else config.schedule_ahead
        self._fe_token = config.frontend_token_us * 1e-6
        self._eager = config.eager_op_us * 1e-6 * self.cost.ops_per_forward
        # steps with more tokens than this run without CUDA graphs (None, 0: every step)
        self._graph_max = config.cuda_graph_max_tokens or 0
        self._eager_moe = config.eager_moe_layer_us * 1e-6 * self.cost.moe_layers_per_forward
        self._fe_free = 0.0  # when the front-end has streamed everything handed to it so far
        self._prefill_only = config.role == "prefill"
        #: KV bytes per token of the whole model (all layers and KV heads), what a prefill
        #: instance hands its decode instance
        self.kv_bytes_per_token_total = self.model.kv_bytes_per_token(dtype_bytes(prec.kv_cache), 1, 1)
        self._trace = ctx.trace
        self._step_start = 0.0
        self._last_step = (0.0, 0.0, 0.0, 0.0)  # end, duration, FLOP, bytes of the latest step
        self._in_frontend: list[list[Sequence]] = []  # finished, being streamed by the front-end
        self._busy = False
        self._in_step = False  # a step runs on the device
        # schedule_ahead: arrivals during the running step, which the next step (already
        # decided) does not take
        self._late: list[Sequence] = []
        self._outstanding = 0
        self.steps = 0
        self.busy_time = 0.0
        self.flops = 0.0
        self.bytes = 0.0
        self.tokens_computed = 0
        self.max_batch = 0

    # -- Stage interface ---------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return self._outstanding

    def submit(self, req: Request) -> None:
        if self._prefill_only:
            req.output_tokens = 1
        if req.generated_tokens:
            # A request carries one output length; a second generating stage would re-prefill
            # the prompt and emit tokens on top of the first stage's, silently wrong.
            raise ConfigError(
                f"{self.ctx.where}: request {req.id} already generated {req.generated_tokens} tokens in an "
                f"earlier stage of this pipeline; chaining two llm_serving stages (a reasoning model then an "
                f"answer model, a reward model) is not modelled yet: use one llm_serving stage per pipeline")
        req.replica = self.ctx.name
        reason = self._rejection(req)
        if reason:
            req.dropped_reason = reason
            self.ctx.on_done(req)
            return
        self._outstanding += 1
        if self._ahead and self._in_step:
            self._late.append(Sequence(req))
            return
        self.state.enqueue(Sequence(req))
        if not self._busy:
            # wake up after every arrival at this instant, so simultaneous requests are
            # scheduled together (as vLLM's engine loop picks up all queued requests)
            self._busy = True
            self.ctx.sim.schedule(0.0, self._step, priority=PRIORITY_DEFAULT)

    def _rejection(self, req: Request) -> str | None:
        total = req.prompt_tokens + req.output_tokens
        if total > self.max_model_len:
            return (f"exceeds_max_model_len: prompt {req.prompt_tokens} + output {req.output_tokens} "
                    f"tokens > max_model_len {self.max_model_len}")
        kv = self.state.kv
        if kv.blocks_for(total) > kv.total:
            return (f"kv_cache_too_small: needs {kv.blocks_for(total)} blocks of {kv.block_size} tokens, "
                    f"the cache has {kv.total}")
        why = self.policy.rejection_reason(req, self.state.limits)
        return f"prompt_exceeds_token_budget: {why} (policy '{self.config.batching['type']}')" if why else None

    def unfinished(self) -> list[Request]:
        """Requests still queued or running, or finished by the engine but not yet streamed
        by the front-end (``frontend_token_us``), when a run stops at ``max_time_s``. Token
        times that lie beyond the stop (front-end delivery still ahead) are cleared: the
        client has not seen those tokens."""
        now = self.ctx.sim.now
        reqs = [s.req for s in list(self.state.running) + list(self.state.waiting) + self._late]
        reqs += [s.req for done in self._in_frontend for s in done]
        for r in reqs:
            if r.first_token_time > now:
                r.first_token_time = -1.0
            r.finish_time = -1.0
        return reqs

    def _blame(self, what: str) -> str:
        """An error message naming the batching policy, its plugin and distribution."""
        name = self.config.batching["type"]
        comp = self.ctx.registry.get("batching_policies", name)
        return (f"{self.ctx.where}.batching: policy '{name}' (plugin {comp.plugin.describe()}) {what}; "
                "a policy must stay within the engine's limits and reserve KV blocks for every token it schedules")

    # -- engine loop -------------------------------------------------------------------
    def _step(self) -> None:
        state = self.state
        late, self._late = self._late, []
        batch = self.policy.schedule(state)
        if late:
            # arrivals during the step that just ended join the queue after this step's
            # batch was decided (schedule_ahead); an engine with nothing to run takes them now
            for seq in late:
                state.enqueue(seq)
            if batch is None or not batch.seqs:
                batch = self.policy.schedule(state)
        while batch is None and not state.running and state.waiting:
            # Nothing runs and nothing ever will free memory: the head request can never
            # be scheduled by this policy. Report it rather than stall forever.
            seq = state.waiting.popleft()
            state.drop(seq, f"unschedulable: policy '{self.config.batching['type']}' cannot schedule "
                            f"{seq.num_tokens - seq.num_computed} tokens on an empty engine "
                            f"({state.kv.total} KV blocks, max_num_batched_tokens={state.limits.max_num_batched_tokens})")
            self._report_dropped()
            batch = self.policy.schedule(state)
        if state.dropped:
            self._report_dropped()
        if batch is None or not batch.seqs:
            self._busy = self._in_step = False
            return
        b = batch
        lim = state.limits
        if b.tokens > lim.max_num_batched_tokens or len(b.seqs) > lim.max_num_seqs:
            raise PluginError(self._blame(
                f"returned a batch of {b.tokens} tokens and {len(b.seqs)} sequences, over "
                f"max_num_batched_tokens={lim.max_num_batched_tokens} or max_num_seqs={lim.max_num_seqs}"))
        win = (window_sums(self._window, [s.num_computed for s in b.seqs], b.num_new)
               if self._window else None)
        dt, fl, by = self.cost.step(b.tokens, b.sampled, b.pf_pairs, b.pf_kv, b.pf_q, b.dec_n, b.dec_kv,
                                    len(b.seqs) - b.dec_n, window=win,
                                    shared_stream=self._stream_in_prefill or not b.pf_q)
        if b.pf_q and self._eager and b.tokens > self._graph_max:
            # a step with prefill that no captured CUDA graph covers runs eagerly: the GPU
            # waits for the host to launch every operator of the forward pass
            dt = max(dt, self._eager)
        if b.pf_q:
            # ... and waits for it at every MoE layer's small kernels
            dt += self._eager_moe
        host = self._overhead + self._seq_overhead * len(b.seqs)
        dt = max(dt, host) if self._overlap else dt + host
        self.steps += 1
        now = self._step_start = self.ctx.sim.now
        if self._trace is not None:
            self._trace.append((now, dt, "prefill" if b.pf_q else "decode",
                                {"seqs": len(b.seqs), "tokens": b.tokens, "decodes": b.dec_n}))
        self.busy_time += dt
        self.flops += fl
        self.bytes += by
        self._last_step = (now + dt, dt, fl, by)
        self.tokens_computed += b.tokens
        if len(batch.seqs) > self.max_batch:
            self.max_batch = len(batch.seqs)
        self._busy = self._in_step = True
        self.ctx.sim.schedule(dt, self._finish_step, batch, priority=PRIORITY_COMPLETION)

    def _finish_step(self, batch) -> None:
        now = engine_now = self.ctx.sim.now
        if self._fe_token:
            # the front-end streams this step's tokens after everything handed to it before
            self._fe_free = max(self._fe_free, now) + self._fe_token * batch.sampled
            now = self._fe_free
        gaps: dict[float, int] = {}
        finished = False
        kv = self.state.kv
        prefix = self.state.prefix_cache
        for seq, q in zip(batch.seqs, batch.num_new):
            seq.num_computed += q
            if seq.num_computed != seq.num_tokens:
                req = seq.req  # partial prefill chunk
                if req.start_time < 0:
                    req.start_time = self._step_start
                if seq.blocks * kv.block_size < seq.num_computed:
                    raise PluginError(self._kv_blame(seq))
                continue
            req = seq.req
            req.generated_tokens += 1
            if req.generated_tokens == 1:
                req.first_token_time = now
                if req.start_time < 0:
                    req.start_time = self._step_start
                if seq.blocks * kv.block_size < seq.num_computed:
                    raise PluginError(self._kv_blame(seq))
                if prefix is not None:
                    prefix.insert(req)
                if req.on_first_token is not None:
                    req.on_first_token(req)
            else:
                last = seq.last_token_time
                if not req.warmup:  # the summary's ITL covers measured requests only
                    gaps[last] = gaps.get(last, 0) + 1
                if now - last > req.max_itl:
                    req.max_itl = now - last
            seq.last_token_time = now
            if req.generated_tokens >= req.output_tokens:
                req.finish_time = now
                kv.release(seq)
                seq.num_tokens = -1  # marks finished
                finished = True
            else:
                seq.num_tokens += 1
        add_itl = self.ctx.metrics.add_itl
        for last, count in gaps.items():
            add_itl(now - last, count)
        if finished:
            done = [s for s in self.state.running if s.num_tokens < 0]
            self.state.running = [s for s in self.state.running if s.num_tokens >= 0]
            if now > engine_now:
                self._in_frontend.append(done)
                self.ctx.sim.schedule(now - engine_now, self._deliver, done, priority=PRIORITY_COMPLETION)
            else:
                self._deliver(done)
        self._step()

    def _kv_blame(self, seq: Sequence) -> str:
        return self._blame(f"scheduled request {seq.req.id} to {seq.num_computed} computed tokens holding "
                           f"{seq.blocks} KV blocks of {self.state.kv.block_size} tokens (it reserved too few)")

    def _deliver(self, done) -> None:
        """Hand finished requests back once the front-end has streamed their last token."""
        if self._in_frontend and self._in_frontend[0] is done:
            self._in_frontend.pop(0)
        for s in done:
            self._outstanding -= 1
            self.ctx.on_done(s.req)

    def _report_dropped(self) -> None:
        dropped, self.state.dropped = self.state.dropped, []
        for seq in dropped:
            self._outstanding -= 1
            self.ctx.on_done(seq.req)

    def handoff(self, req: Request) -> Handoff:
        """What the next step gets: with ``role: prefill``, the prompt's KV cache (``kv_tokens
        = prompt_tokens``, ``kv_bytes_per_token_total x prompt_tokens`` bytes) and the same
        prompt; otherwise the context grown by the generated tokens, as token ids
        (:meth:`Stage.handoff`)."""
        if self._prefill_only:
            return Handoff(req.prompt_tokens, req.prompt_tokens, self.kv_bytes_per_token_total * req.prompt_tokens)
        return super().handoff(req)

    # -- reporting ---------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        now = self.ctx.sim.now
        dev = self.ctx.devices[0]
        peak = dev.peak_flops(self.config.precision.weights)
        pp = self.config.parallelism.pp
        # a run stopped by max_time_s inside a step is charged only the part before the stop
        end, dt, fl, by = self._last_step
        cut = (end - now) / dt if end > now and dt > 0 else 0.0
        busy_time, flops, nbytes = self.busy_time - cut * dt, self.flops - cut * fl, self.bytes - cut * by
        # a device works on its own pipeline stage: 1/pp of each step
        busy = busy_time / pp / now if now > 0 else 0.0
        mfu = flops / (now * peak) if now > 0 else 0.0
        mbu = nbytes / (now * dev.memory_bandwidth) if now > 0 else 0.0
        kv = self.state.kv
        return {
            "model": self.model.name,
            "tp": self.config.parallelism.tp,
            "ep": self.config.parallelism.ep,
            "pp": self.config.parallelism.pp,
            "role": self.config.role,
            "weights_GiB_per_device": self.weight_bytes / GiB,
            "kv_cache_GiB_per_device": self.kv_cache_bytes / GiB,
            "kv_blocks": kv.total,
            "kv_peak_blocks_used": kv.peak_used,
            "kv_peak_usage": kv.peak_used / kv.total if kv.total else 0.0,
            "steps": self.steps,
            "max_batch_size": self.max_batch,
            "tokens_computed": self.tokens_computed,
            "preemptions": self.state.preemptions,
            **({"prefix_cache_hit_rate": self.state.prefix_cache.hit_rate,
                "prefix_cache_hit_tokens": self.state.prefix_cache.hit_tokens}
               if self.state.prefix_cache is not None else {}),
            "device": dev.describe(),
            "devices": [
                {"device": n, "type": dev.name, "busy_fraction": busy, "mfu": mfu, "mbu": mbu}
                for n in self.ctx.device_names[: self.devices_needed(self.config)]
            ],
        }
