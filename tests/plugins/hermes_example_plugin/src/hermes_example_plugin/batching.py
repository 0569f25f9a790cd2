"""``decode_first_fcfs``: decodes first, then a capped amount of prefill, first come first
served.

Each engine step:

1. every running sequence that is decoding gets its one token, in admission order; when KV
   blocks run out the most recently admitted running sequence is preempted (recompute), via
   :meth:`hermes_core.SchedulerState.allocate_or_preempt`;
2. running sequences part-way through their prompt get further chunks, in admission order;
3. if nothing was preempted this step, waiting requests are admitted in arrival order
   (FCFS) with a first chunk of their prompt,

where steps 2 and 3 together compute at most ``prefill_chunk`` prompt tokens (and never more
than what is left of ``max_num_batched_tokens`` after the decodes). This bounds how much a
step's prefill work can delay the decodes riding with it, like Sarathi-Serve's token budget,
but with a separate knob for prefill. Unlike the first-party ``chunked_prefill`` policy, a
partial prefill never takes budget ahead of a decode.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import Batch, BatchingPolicy, SchedulerState


class DecodeFirstFCFSConfig(BaseModel):
    """Scenario fields of ``batching: {type: decode_first_fcfs, ...}``.

    ``prefill_chunk``: most prompt tokens computed per step, summed over all sequences
    (tokens, >= 1, default 512). Unknown fields are rejected (``extra="forbid"``).
    """

    model_config = ConfigDict(extra="forbid")

    prefill_chunk: int = Field(
        512, ge=1, description="Most prompt tokens computed per engine step, over all sequences (tokens)."
    )


class DecodeFirstFCFS(BatchingPolicy):
    """The ``decode_first_fcfs`` policy (see the module docstring for the rules).

    Built by hermes as ``DecodeFirstFCFS(config)``. Prompts longer than the step budget are
    split over several steps (``chunks_prefill = True``), so no request is rejected for its
    prompt length.
    """

    Config = DecodeFirstFCFSConfig
    chunks_prefill = True

    def schedule(self, state: SchedulerState) -> Batch | None:
        """Return the next batch, or ``None`` when nothing can run.

        Mutates ``state``: admits sequences from ``state.waiting`` to ``state.running``,
        reserves KV blocks for every scheduled token and may preempt running sequences.
        Never exceeds ``state.limits`` (``max_num_batched_tokens`` tokens,
        ``max_num_seqs`` running sequences).
        """
        batch = Batch()
        kv, lim = state.kv, state.limits
        waiting, running = state.waiting, state.running
        budget = lim.max_num_batched_tokens
        preemptions_before = state.preemptions

        # 1. Decodes. Victims of a preemption come from the end of `running`, after `seq`,
        #    so nothing already in the batch is ever preempted.
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            i += 1
            if not seq.is_decoding:
                continue
            if not state.allocate_or_preempt(seq, 1):
                break  # seq itself was preempted, and with it everything admitted later
            batch.add(seq, 1)
            budget -= 1

        # 2. Partial prefills of running sequences. Only preempt when the batch is still
        #    empty (a victim could otherwise be a sequence already in the batch); that is
        #    enough to guarantee progress.
        prefill = min(self.config.prefill_chunk, budget)
        i = 0
        while i < len(running) and prefill > 0:
            seq = running[i]
            i += 1
            if seq.is_decoding:
                continue
            n = min(seq.remaining_prefill, prefill)
            if not kv.try_allocate(seq, n):
                if batch.seqs or not state.allocate_or_preempt(seq, n):
                    break
            batch.add(seq, n)
            prefill -= n

        # 3. Admit waiting requests, oldest first, unless this step had to preempt.
        if state.preemptions == preemptions_before:
            while waiting and prefill > 0 and len(running) < lim.max_num_seqs:
                seq = waiting[0]
                n = min(seq.remaining_prefill, prefill)
                if not kv.try_allocate(seq, n):
                    break
                waiting.popleft()
                running.append(seq)
                batch.add(seq, n)
                prefill -= n
        return batch if batch.seqs else None
