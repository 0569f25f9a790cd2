"""The ``reward_model`` stage: a reward language model that scores text (vLLM's pooling
runner, ``vllm serve --task reward`` / ``--runner pooling``), priced as a prefill.

Every call computes its prompt (less the prompt tokens whose KV it already holds:
:attr:`~hermes_core.Request.cached_tokens`, or a prefix-cache hit) and returns one score: the
engine treats the call as generating one token (its ``output_tokens`` is forced to 1, as
``llm_serving``'s ``role: prefill`` does) and hands on :data:`SCORE_BYTES` bytes, one fp32
score.

Approximation: the step cost prices the LM head on the scored sequence's last token (a
``1 x hidden x vocab`` GEMM row: ``2 x hidden x vocab`` FLOPs, and reading the LM head's
``hidden x vocab`` weights once per step) where a reward model runs a reward head
(``hidden x 1``, or a small MLP). The difference is that one vocab-sized GEMM row per scored
sequence: about 1 GFLOP and, in a step where no other sequence samples, 1 GiB of bf16
weights read (Llama-3.1-8B: hidden 4096, vocab 128,256), about 0.3 ms on an H100; small next
to a prefill of a few thousand tokens. The weight memory likewise counts an LM head (and
the KV cache is a little smaller than a reward checkpoint would leave).
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from hermes_core import Handoff, Request, StageContext

from .llm_serving import LLMServing, LLMServingConfig

#: Bytes a reward call hands on: one fp32 score.
SCORE_BYTES = 4


class RewardModelConfig(LLMServingConfig):
    """Configuration of the ``reward_model`` stage: every field of ``llm_serving``
    (:class:`LLMServingConfig`) except ``role``, which is rejected (a reward model is
    prefill-only by construction; an explicit ``role`` would suggest otherwise)."""

    @field_validator("role")
    @classmethod
    def _no_role(cls, v: str) -> str:
        raise ValueError("reward_model always computes its prompt and returns one score (prefill only); "
                         "remove 'role'")


class RewardModel(LLMServing):
    """The ``reward_model`` stage: an :class:`LLMServing` engine whose every call is a
    prefill returning one score (see the module docstring). Raises what
    :class:`LLMServing` raises (:class:`~hermes_core.CapacityError`,
    :class:`~hermes_core.ConfigError`)."""

    Config = RewardModelConfig

    def __init__(self, config: RewardModelConfig, ctx: StageContext):
        super().__init__(config, ctx)
        self._prefill_only = True  # output_tokens forced to 1 in submit()

    def handoff(self, req: Request) -> Handoff:
        """The score: the same context (``prompt_tokens``; the scored text is unchanged), no
        KV, :data:`SCORE_BYTES` bytes."""
        return Handoff(req.prompt_tokens, 0, SCORE_BYTES)

    def report(self) -> dict[str, Any]:
        """:meth:`LLMServing.report`, with ``role: reward``."""
        return {**super().report(), "role": "reward"}
