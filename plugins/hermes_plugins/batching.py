"""First-party batching policies: ``static``, ``continuous`` (vLLM v0) and
``chunked_prefill`` (vLLM v1 / Sarathi-Serve).

All three use the shared mechanics of :class:`hermes_core.SchedulerState`: paged KV
blocks reserved before a token is scheduled, preemption by recompute of the most recently
admitted running sequence when blocks run out.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import Batch, BatchingPolicy, SchedulerState, hookimpl


class StaticConfig(BaseModel):
    """``max_batch_size``: sequences per batch (default: the engine's ``max_num_seqs``)."""

    model_config = ConfigDict(extra="forbid")
    max_batch_size: int | None = Field(None, ge=1)


class StaticBatching(BatchingPolicy):
    """Request-level (static) batching, as in FasterTransformer or HF ``generate``.

    When the engine is empty, admit up to ``max_batch_size`` waiting requests in FIFO
    order whose prompts fit the token budget together and whose full KV (prompt + output)
    can be reserved; prefill them in one step, then decode until every one has finished.
    No request joins a running batch, so KV is reserved up front and nothing is preempted.
    """

    Config = StaticConfig

    def schedule(self, state: SchedulerState) -> Batch | None:
        batch = Batch()
        running = state.running
        if running:
            for seq in running:
                batch.add(seq, seq.num_tokens - seq.num_computed)
            return batch
        lim = state.limits
        cap = min(self.config.max_batch_size or lim.max_num_seqs, lim.max_num_seqs)
        budget = lim.max_num_batched_tokens
        waiting, kv = state.waiting, state.kv
        while waiting and len(running) < cap:
            seq = waiting[0]
            n = seq.num_tokens - seq.num_computed
            if n > budget:
                break
            full = seq.req.prompt_tokens + seq.req.output_tokens - seq.num_computed
            if not kv.try_allocate(seq, full):
                break
            waiting.popleft()
            running.append(seq)
            batch.add(seq, n)
            budget -= n
        return batch if batch.seqs else None


class ContinuousConfig(BaseModel):
    """``watermark``: share of KV blocks kept free when admitting prefills (vLLM v0's
    ``watermark=0.01``)."""

    model_config = ConfigDict(extra="forbid")
    watermark: float = Field(0.01, ge=0, lt=1)


class ContinuousBatching(BatchingPolicy):
    """Iteration-level batching that prioritises prefills (vLLM v0 default scheduler, Orca).

    Each step, if requests are waiting, admit as many whole prompts as fit
    ``max_num_batched_tokens``, ``max_num_seqs`` and the free KV blocks (minus the
    watermark) and run a prefill-only step. Otherwise run one decode token for every
    running sequence, preempting (recompute) the most recently admitted ones when blocks
    run out.
    """

    Config = ContinuousConfig

    def schedule(self, state: SchedulerState) -> Batch | None:
        batch = Batch()
        lim, kv = state.limits, state.kv
        waiting, running = state.waiting, state.running
        budget = lim.max_num_batched_tokens
        # the watermark keeps room for running decodes; an empty engine needs none
        reserve = int(self.config.watermark * kv.total) if running else 0
        while waiting and len(running) < lim.max_num_seqs:
            seq = waiting[0]
            n = seq.num_tokens - seq.num_computed
            if n > lim.max_num_batched_tokens:
                # a preempted sequence recomputes prompt + generated tokens in one prefill;
                # vLLM v0 ignores such a sequence ("prompt too long"), and so do we
                waiting.popleft()
                state.drop(seq, f"recompute_exceeds_token_budget: after preemption {n} tokens must be "
                                f"recomputed at once, more than max_num_batched_tokens={lim.max_num_batched_tokens}")
                continue
            if n > budget or kv.extra_needed(seq, n) > kv.free - reserve:
                break
            kv.try_allocate(seq, n)
            waiting.popleft()
            running.append(seq)
            batch.add(seq, n)
            budget -= n
        if batch.seqs:
            return batch
        i = 0
        while i < len(running) and i < lim.max_num_batched_tokens:  # one token each, within the budget
            seq = running[i]
            if not state.allocate_or_preempt(seq, 1):
                break
            batch.add(seq, 1)
            i += 1
        return batch if batch.seqs else None


class ChunkedPrefillConfig(BaseModel):
    """``long_prefill_token_threshold``: cap on one prompt's chunk per step (0 = only the
    token budget limits it), as vLLM's option of that name."""

    model_config = ConfigDict(extra="forbid")
    long_prefill_token_threshold: int = Field(0, ge=0)


class ChunkedPrefill(BatchingPolicy):
    """Decodes first, then prefill chunks in the remaining token budget (vLLM v1's
    scheduler, Sarathi-Serve's stall-free batching).

    Running sequences are served in admission order, each with what it still needs (1 token
    for a decode, the rest of its prompt for a partial prefill) capped by the remaining
    budget; when KV blocks run out the most recently admitted running sequence is
    preempted. Then, if nothing was preempted this step, waiting requests are admitted in
    FIFO order with chunks of their prompts until the budget, ``max_num_seqs`` or the KV
    cache runs out.
    """

    Config = ChunkedPrefillConfig
    chunks_prefill = True

    def schedule(self, state: SchedulerState) -> Batch | None:
        batch = Batch()
        lim, kv = state.limits, state.kv
        waiting, running = state.waiting, state.running
        budget = lim.max_num_batched_tokens
        cap = self.config.long_prefill_token_threshold
        preempted = state.preemptions
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            n = seq.num_tokens - seq.num_computed
            if cap and n > cap:
                n = cap
            if n > budget:
                n = budget
            if not state.allocate_or_preempt(seq, n):
                break
            batch.add(seq, n)
            budget -= n
            i += 1
        if state.preemptions == preempted and not self._hold_admissions(state, batch, budget):
            while waiting and budget > 0 and len(running) < lim.max_num_seqs:
                seq = waiting[0]
                n = seq.num_tokens - seq.num_computed
                if cap and n > cap:
                    n = cap
                if n > budget:
                    if not self._fits(n, budget):
                        break
                    n = budget
                if not self._reserve(kv, seq, n):
                    break
                waiting.popleft()
                running.append(seq)
                batch.add(seq, n)
                budget -= n
        return batch if batch.seqs else None

    def _fits(self, n: int, budget: int) -> bool:
        """Whether a waiting prompt needing ``n`` tokens may start with a chunk of
        ``budget`` < ``n`` tokens (always, for a chunking policy)."""
        return True

    def _hold_admissions(self, state: SchedulerState, batch: Batch, budget: int) -> bool:
        """Whether to admit no waiting request this step (never, here)."""
        return False

    def _reserve(self, kv, seq, n: int) -> bool:
        """Reserve KV for admitting ``seq`` with a first chunk of ``n`` tokens."""
        return kv.try_allocate(seq, n)


class GuaranteedNoEvictConfig(ChunkedPrefillConfig):
    """``enable_chunked_prefill``: TensorRT-LLM's option of that name (default off in its
    LLM API). Off, a prompt is scheduled only whole, when it fits what the step's token
    budget has left; the first waiting prompt that does not fit stops admission for the
    step (``MicroBatchScheduler``: ``break`` on a context request over
    ``maxNumTokens``).

    ``batch_wait_timeout_iters`` / ``batch_wait_max_tokens_ratio``: TensorRT-LLM's batch
    waiting (PyTorch executor, ``PyExecutor._waiting_requests``; both 0 by default, which
    turns it off). In a step that has decodes to run, new requests are held back while the
    step's tokens (the held prompts' whole lengths plus one per decode) stay under
    ``batch_wait_max_tokens_ratio x max_num_batched_tokens`` and fewer than
    ``batch_wait_timeout_iters`` steps have held them; then they are admitted and the count
    starts again. With no decodes running nothing is held."""

    enable_chunked_prefill: bool = True
    batch_wait_timeout_iters: int = Field(0, ge=0)
    batch_wait_max_tokens_ratio: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _threshold_needs_chunking(self):
        if not self.enable_chunked_prefill and self.long_prefill_token_threshold:
            raise ValueError("long_prefill_token_threshold caps a prompt's chunk; it needs "
                             "enable_chunked_prefill: true")
        return self


class GuaranteedNoEvict(ChunkedPrefill):
    """In-flight batching that admits a request only when the KV blocks of its whole
    sequence (prompt + output tokens) can be reserved, so a running request is never
    preempted: TensorRT-LLM's default capacity scheduler
    (``CapacitySchedulerPolicy.GUARANTEED_NO_EVICT``). Running sequences are served as in
    :class:`ChunkedPrefill` (decodes first, then prefill chunks within the token budget);
    their blocks are already reserved. With ``enable_chunked_prefill: false`` prompts are
    never split (see :class:`GuaranteedNoEvictConfig`) and a prompt longer than the token
    budget is rejected with its reason.
    """

    Config = GuaranteedNoEvictConfig

    def __init__(self, config: BaseModel):
        super().__init__(config)
        self.chunks_prefill = config.enable_chunked_prefill
        self._waited = 0  # steps that have held new requests back (batch waiting)

    def _hold_admissions(self, state: SchedulerState, batch: Batch, budget: int) -> bool:
        """TensorRT-LLM's batch waiting (see :class:`GuaranteedNoEvictConfig`). The prompts
        counted are those the step's budget and ``max_num_seqs`` would admit."""
        cfg = self.config
        if not (cfg.batch_wait_timeout_iters or cfg.batch_wait_max_tokens_ratio):
            return False
        if not state.waiting or batch.dec_n == 0:
            return False
        lim = state.limits
        ctx, left, seats = 0, budget, lim.max_num_seqs - len(state.running)
        for seq in state.waiting:
            n = seq.num_tokens - seq.num_computed
            if seats <= 0 or left <= 0 or not self._fits(n, left):
                break
            ctx += seq.req.prompt_tokens
            left -= n
            seats -= 1
        if ctx == 0:
            return False
        tokens = ctx + batch.dec_n
        if (self._waited >= cfg.batch_wait_timeout_iters
                or tokens >= cfg.batch_wait_max_tokens_ratio * lim.max_num_batched_tokens):
            self._waited = 0
            return False
        self._waited += 1
        return True

    def _fits(self, n: int, budget: int) -> bool:
        return self.chunks_prefill or n <= budget

    def _reserve(self, kv, seq, n: int) -> bool:
        """Admit only with the blocks of the whole sequence (prompt + output) reserved."""
        return kv.try_allocate(seq, seq.req.prompt_tokens + seq.req.output_tokens - seq.num_computed)


@hookimpl
def hermes_register_batching_policies(register):
    """Register ``static``, ``continuous``, ``chunked_prefill`` and ``guaranteed_no_evict``."""
    register("chunked_prefill", ChunkedPrefill)
    register("continuous", ContinuousBatching)
    register("guaranteed_no_evict", GuaranteedNoEvict)
    register("static", StaticBatching)
