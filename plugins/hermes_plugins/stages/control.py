"""Control stages: ``route`` (dynamic model routing) and ``reasoning`` (multi-round
reasoning with best-of-N and a reward model).

A control stage runs on no devices (:meth:`ControlStage.devices_needed` is 0). It serves the
step call it gets by making calls to other clients through
:meth:`~hermes_core.StageContext.call`, and finishes the step call with the user-visible
figures of the calls it made: ``first_token_time``, ``finish_time`` (when its last call
ended), ``generated_tokens``, ``replica`` (the replica that produced the visible tokens) and
``max_itl``. When a call it made is dropped, the step call is dropped with that call's
reason (``"category: details"``), and the calls still under way are left to finish unseen.
Control stages need a scenario with ``request_types`` (the core's door to other clients);
without one they refuse to start with a :class:`~hermes_core.ConfigError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hermes_core import TOKEN_ID_BYTES, ConfigError, Request, Stage, StageContext

from ..workloads import LengthDist, _length_shorthand


class ControlStage(Stage):
    """Base of the first-party control stages: no devices, a table of open step calls
    (``outstanding``, ``unfinished()``), counts of the calls made per client, and the
    finishing of a step call (:meth:`_finish`, :meth:`_drop`).

    Raises :class:`~hermes_core.ConfigError` when the scenario has no ``request_types``.
    """

    @classmethod
    def devices_needed(cls, config: BaseModel) -> int:
        """0: a control stage only sends calls to other clients."""
        return 0

    def __init__(self, config: BaseModel, ctx: StageContext):
        super().__init__(config, ctx)
        if ctx.door is None:
            raise ConfigError(f"{ctx.where}: this stage calls other clients, which needs a scenario with "
                              "request_types (see docs/scenarios.md)")
        self._open: dict[int, Request] = {}
        #: calls made, per client name
        self.calls: dict[str, int] = {}
        self.requests = 0
        self.dropped = 0

    @property
    def outstanding(self) -> int:
        """Step calls accepted and not yet finished."""
        return len(self._open)

    def unfinished(self) -> list[Request]:
        """Step calls still open when the run stopped."""
        return list(self._open.values())

    def _accept(self, call: Request) -> None:
        call.start_time = self.ctx.sim.now  # a control stage has no queue
        call.replica = self.ctx.name
        self._open[id(call)] = call
        self.requests += 1

    def _send(self, client: str, call: Request, on_done, *, nbytes: float | None = None,
              replica: int | None = None) -> int:
        self.calls[client] = self.calls.get(client, 0) + 1
        return self.ctx.call(client, call, on_done, nbytes=nbytes, replica=replica)

    def _finish(self, call: Request, *, first_token_time: float, generated_tokens: int, replica: str,
                max_itl: float) -> None:
        call.first_token_time = first_token_time
        call.finish_time = self.ctx.sim.now
        call.generated_tokens = generated_tokens
        call.replica = replica
        call.max_itl = max_itl
        del self._open[id(call)]
        self.ctx.on_done(call)

    def _drop(self, call: Request, sub: Request) -> None:
        """Drop ``call`` because the call ``sub`` it made was dropped (same reason; the
        replica that dropped it becomes the step call's, so the reason names it)."""
        call.dropped_reason = sub.dropped_reason
        call.replica = sub.replica or call.replica
        self.dropped += 1
        del self._open[id(call)]
        self.ctx.on_done(call)


# -- route ---------------------------------------------------------------------------------
class Threshold(BaseModel):
    """One entry of ``route``'s ``thresholds``: prompts of fewer than ``below`` tokens go to
    ``client`` (the first entry that matches wins)."""

    model_config = ConfigDict(extra="forbid")
    below: int = Field(ge=1, description="Prompt length bound (tokens, exclusive).")
    client: str = Field(min_length=1, description="Client that serves prompts shorter than `below`.")


#: The fields each routing rule takes (the others must be left out).
_RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "prompt_length": ("thresholds", "default"),
    "request_type": ("by_type", "default"),
    "cascade": ("small", "large", "escalate_p"),
}


class RouteConfig(BaseModel):
    """Configuration of the ``route`` stage.

    * ``rule: prompt_length``: ``thresholds`` (list of ``{below, client}``, ``below``
      strictly increasing) and ``default``: a prompt of ``P`` tokens goes to the first
      entry with ``P < below``, else to ``default``.
    * ``rule: request_type``: ``by_type`` (request type name -> client) and ``default`` (the
      client for types not listed).
    * ``rule: cascade``: ``small``, ``large`` and ``escalate_p`` (probability in [0, 1]).

    A field that the rule does not take, or a missing one it needs, is an error naming it.
    """

    model_config = ConfigDict(extra="forbid")
    rule: Literal["prompt_length", "request_type", "cascade"]
    thresholds: list[Threshold] | None = Field(None, min_length=1, validate_default=True)
    by_type: dict[str, Annotated[str, Field(min_length=1)]] | None = Field(None, validate_default=True)
    default: str | None = Field(None, min_length=1, validate_default=True)
    small: str | None = Field(None, min_length=1, validate_default=True)
    large: str | None = Field(None, min_length=1, validate_default=True)
    escalate_p: float | None = Field(None, ge=0.0, le=1.0, validate_default=True)

    @field_validator("thresholds", "by_type", "default", "small", "large", "escalate_p")
    @classmethod
    def _fits_rule(cls, v: Any, info: ValidationInfo) -> Any:
        rule = info.data.get("rule")
        if rule is None:  # the rule itself is invalid: reported on its own
            return v
        takes = _RULE_FIELDS[rule]
        if info.field_name in takes:
            if v is None:
                raise PydanticCustomError("missing", "rule '{rule}' needs this field", {"rule": rule})
        elif v is not None:
            raise ValueError(f"does not apply to rule '{rule}' (it takes {', '.join(takes)})")
        return v

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, v: list[Threshold] | None) -> list[Threshold] | None:
        bounds = [t.below for t in v or []]
        for k in range(1, len(bounds)):
            if bounds[k] <= bounds[k - 1]:
                raise ValueError(f"'below' must increase from entry to entry: entry {k} has {bounds[k]} "
                                 f"after {bounds[k - 1]}")
        return v


class Route(ControlStage):
    """The ``route`` stage: sends each step call to one client chosen by a rule (see
    :class:`RouteConfig`), with the step call's prompt, cached and output tokens; the
    chosen client's router picks the replica, and the call's data moves as the core moves
    any call (what the last call handed on, from where it was served).

    ``cascade``: the call goes to ``small``; when ``small`` is done, the call escalates to
    ``large`` with probability ``escalate_p``: one uniform draw ``u`` from ``ctx.rng`` per
    step call, made when the call arrives (so in arrival order), escalating when
    ``u < escalate_p`` (never at 0, always at 1). The escalated call's prompt is the
    original prompt plus the small model's generated tokens (as a cascade that shows the
    large model the small model's draft, e.g. FrugalGPT's answer-then-verify cascade), with
    none of its KV (a different model), and it generates the request's output tokens. The
    step's visible tokens, first token and replica are then the large model's, so its TTFT
    includes the whole small-model call; without escalation they are the small model's.
    Output quality (which requests deserve escalation) is not modelled: ``escalate_p`` stands
    for the rate a real scorer would escalate at.

    Hands on like any stage (:meth:`Stage.handoff`: the context grown by the visible
    tokens, as token ids): a route in front of a ``role: prefill`` client does not forward
    that client's KV cache.
    """

    Config = RouteConfig

    @classmethod
    def targets(cls, config: RouteConfig) -> dict[str, str]:
        """Every client the config names, by field path (``thresholds[0].client``,
        ``by_type.<type>``, ``default``, ``small``, ``large``)."""
        out: dict[str, str] = {}
        for k, t in enumerate(config.thresholds or []):
            out[f"thresholds[{k}].client"] = t.client
        for name, client in (config.by_type or {}).items():
            out[f"by_type.{name}"] = client
        for f in ("default", "small", "large"):
            if getattr(config, f) is not None:
                out[f] = getattr(config, f)
        return out

    def __init__(self, config: RouteConfig, ctx: StageContext):
        super().__init__(config, ctx)
        self.escalations = 0

    def _choose(self, call: Request) -> str:
        cfg = self.config
        if cfg.rule == "prompt_length":
            for t in cfg.thresholds:
                if call.prompt_tokens < t.below:
                    return t.client
            return cfg.default
        if cfg.rule == "request_type":
            return cfg.by_type.get(call.request_type, cfg.default)
        return cfg.small

    def submit(self, call: Request) -> None:
        self._accept(call)
        escalate = False
        if self.config.rule == "cascade":
            escalate = bool(self.ctx.rng.random() < self.config.escalate_p)
        target = self._choose(call)
        sub = self.ctx.new_call(call, prompt_tokens=call.prompt_tokens, output_tokens=call.output_tokens,
                                cached_tokens=call.cached_tokens)
        self._send(target, sub, lambda s: self._done(call, s, escalate))

    def _done(self, call: Request, sub: Request, escalate: bool) -> None:
        if sub.dropped_reason:
            self._drop(call, sub)
            return
        if escalate:
            self.escalations += 1
            big = self.ctx.new_call(call, prompt_tokens=call.prompt_tokens + sub.generated_tokens,
                                    output_tokens=call.output_tokens)
            self._send(self.config.large, big, lambda s: self._done(call, s, False))
            return
        self._finish(call, first_token_time=sub.first_token_time, generated_tokens=sub.generated_tokens,
                     replica=sub.replica, max_itl=sub.max_itl)

    def report(self) -> dict[str, Any]:
        """``rule``, ``requests`` (step calls accepted), ``calls`` (per client), ``dropped``
        and, for ``cascade``, ``escalations``."""
        out: dict[str, Any] = {"rule": self.config.rule, "requests": self.requests,
                               "calls": dict(sorted(self.calls.items())), "dropped": self.dropped}
        if self.config.rule == "cascade":
            out["escalations"] = self.escalations
        return out


# -- reasoning -----------------------------------------------------------------------------
class ReasoningConfig(BaseModel):
    """Configuration of the ``reasoning`` stage: ``client`` (the LLM client that thinks and
    answers), ``rounds`` (>= 1), ``tokens_per_round`` (a :class:`LengthDist`, or an int:
    tokens each sample generates in a round), ``best_of`` (samples per round, default 1),
    ``reward_client`` (the client that scores the samples; required when ``best_of > 1``,
    unused otherwise) and ``answer_tokens`` (``request``, default: a final answer call
    generating the request's output tokens; an int: that many; ``none``: no answer call)."""

    model_config = ConfigDict(extra="forbid")
    client: str = Field(min_length=1)
    rounds: int = Field(ge=1)
    tokens_per_round: LengthDist
    best_of: int = Field(1, ge=1)
    reward_client: str | None = Field(None, min_length=1, validate_default=True)
    answer_tokens: Literal["request", "none"] | Annotated[int, Field(ge=1)] = "request"

    @field_validator("tokens_per_round", mode="before")
    @classmethod
    def _length(cls, v: Any) -> Any:
        return _length_shorthand(v)

    @field_validator("reward_client")
    @classmethod
    def _needs_scorer(cls, v: str | None, info: ValidationInfo) -> str | None:
        n = info.data.get("best_of")
        if v is None and n is not None and n > 1:
            raise PydanticCustomError("missing", "best_of {n} needs a reward_client to pick among the samples",
                                      {"n": n})
        return v


class _Thinking:
    """One step call on its way through the reasoning rounds."""

    __slots__ = ("call", "round", "context", "replica", "lengths", "samples", "pending", "scores",
                 "chosen_tokens", "first_token", "max_itl", "dead")

    def __init__(self, call: Request):
        self.call = call
        self.round = 0
        self.context = call.prompt_tokens  # prompt + the chosen candidates so far (tokens)
        self.replica: int | None = None  # the policy replica holding the context's KV
        self.lengths = np.zeros(0, dtype=np.int64)
        self.samples: list[Request | None] = []
        self.pending = 0
        self.chosen_tokens = 0
        self.first_token = -1.0
        self.max_itl = 0.0
        self.dead = False


class Reasoning(ControlStage):
    """The ``reasoning`` stage: ``rounds`` rounds of thought on ``client``, each the best of
    ``best_of`` samples picked by ``reward_client``, then an answer.

    Round ``r`` (1..R) starts from the context ``C_r`` = the step call's prompt plus the
    chosen candidates of rounds 1..r-1 (tokens), and draws ``best_of`` lengths from
    ``tokens_per_round`` (``ctx.rng``; N draws per round). Sample 1 generates the first
    length from ``C_r``; round 1's goes where ``client``'s router sends it, with the step
    call's ``cached_tokens``; later rounds' are pinned to that replica with
    ``cached_tokens = C_r``: the engine is assumed to still hold the context's KV (the prompt
    and the thoughts it generated itself; vLLM V1 keeps them with prefix caching, on by
    default) and computes only the context's last token. When sample 1's first token is
    sampled (:attr:`~hermes_core.Request.on_first_token`), the other ``N - 1`` samples are
    sent to the same replica with ``cached_tokens = C_r``: they share the prompt's KV, as
    vLLM's ``n > 1`` sampling and prefix caching do. Approximation: they join the batch one
    engine step after sample 1 (two with ``schedule_ahead``) rather than in sample 1's
    prefill step, and each holds its own KV blocks for the whole context (the engine does
    not share blocks in memory).

    With ``best_of > 1``, when all N samples are done ``reward_client`` scores each
    candidate ``i``: one call with prompt ``C_r + g_i`` (``g_i``: the sample's generated
    tokens), one output token, no cached KV, moving the prompt's token ids
    (:data:`~hermes_core.TOKEN_ID_BYTES` each) from the policy replica; the reward model's
    own prefix caching may find the original prompt's blocks (``hash_ids``). Scores are N
    uniform draws from ``ctx.rng`` once all N scores are in; the highest wins (output
    quality is not simulated, so the pick is random but seeded). With ``best_of = 1`` the
    single sample continues, unscored. ``C_{r+1} = C_r + g_chosen``.

    After round R, the answer call (unless ``answer_tokens: none``) generates the request's
    output tokens (or ``answer_tokens``) from ``C_{R+1}``, pinned to the policy replica
    with ``cached_tokens = C_{R+1}``.

    The step call's visible figures: first token = round 1's sample 1's first token;
    generated tokens = the chosen candidates' tokens + the answer's; finish = when its last
    call ended; replica = the policy replica; ``max_itl`` = the largest inter-token gap
    inside the chosen samples and the answer (the gaps between rounds are not counted).
    """

    Config = ReasoningConfig

    @classmethod
    def targets(cls, config: ReasoningConfig) -> dict[str, str]:
        """``client`` and, when set, ``reward_client``."""
        out = {"client": config.client}
        if config.reward_client is not None:
            out["reward_client"] = config.reward_client
        return out

    def __init__(self, config: ReasoningConfig, ctx: StageContext):
        super().__init__(config, ctx)
        self.rounds_done = 0
        self.samples = 0
        self.forked = 0
        self.thought_tokens = 0
        self.chosen_tokens = 0
        self.answer_tokens = 0

    def submit(self, call: Request) -> None:
        self._accept(call)
        self._round(_Thinking(call))

    # -- one round ----------------------------------------------------------------------
    def _round(self, st: _Thinking) -> None:
        cfg = self.config
        st.round += 1
        n = cfg.best_of
        st.lengths = cfg.tokens_per_round.sample(self.ctx.rng, n)
        st.samples = [None] * n
        st.pending = n
        first = st.round == 1
        s1 = self.ctx.new_call(st.call, prompt_tokens=st.context, output_tokens=int(st.lengths[0]),
                               cached_tokens=st.call.cached_tokens if first else st.context)
        if n > 1:
            s1.on_first_token = lambda s: self._fork(st)
        self.samples += 1
        i = self._send(cfg.client, s1, lambda s: self._sample_done(st, 0, s),
                       nbytes=None if first else 0.0, replica=st.replica)
        if st.replica is None:
            st.replica = i

    def _fork(self, st: _Thinking) -> None:
        if st.dead:
            return
        for k in range(1, self.config.best_of):
            if st.dead:  # a fork was refused at once
                return
            s = self.ctx.new_call(st.call, prompt_tokens=st.context, output_tokens=int(st.lengths[k]),
                                  cached_tokens=st.context)
            self.samples += 1
            self.forked += 1
            self._send(self.config.client, s, lambda c, k=k: self._sample_done(st, k, c), nbytes=0.0,
                       replica=st.replica)

    def _sample_done(self, st: _Thinking, k: int, s: Request) -> None:
        if st.dead:
            return
        if s.dropped_reason:
            st.dead = True
            self._drop(st.call, s)
            return
        self.thought_tokens += s.generated_tokens
        if st.round == 1 and k == 0:
            st.first_token = s.first_token_time
        st.samples[k] = s
        st.pending -= 1
        if st.pending:
            return
        if self.config.best_of == 1:
            self._chosen(st, 0)
            return
        st.pending = self.config.best_of
        for j, cand in enumerate(st.samples):
            prompt = st.context + cand.generated_tokens  # type: ignore[union-attr]
            r = self.ctx.new_call(st.call, prompt_tokens=prompt, output_tokens=1)
            self._send(self.config.reward_client, r, lambda c: self._scored(st, c),  # type: ignore[arg-type]
                       nbytes=float(TOKEN_ID_BYTES * prompt))

    def _scored(self, st: _Thinking, r: Request) -> None:
        if st.dead:
            return
        if r.dropped_reason:
            st.dead = True
            self._drop(st.call, r)
            return
        st.pending -= 1
        if st.pending:
            return
        scores = self.ctx.rng.random(self.config.best_of)
        self._chosen(st, int(np.argmax(scores)))

    def _chosen(self, st: _Thinking, k: int) -> None:
        s = st.samples[k]
        assert s is not None
        st.chosen_tokens += s.generated_tokens
        self.chosen_tokens += s.generated_tokens
        st.context += s.generated_tokens
        st.max_itl = max(st.max_itl, s.max_itl)
        self.rounds_done += 1
        if st.round < self.config.rounds:
            self._round(st)
            return
        a = self.config.answer_tokens
        if a == "none":
            self._done(st, None)
            return
        out = st.call.output_tokens if a == "request" else int(a)
        ans = self.ctx.new_call(st.call, prompt_tokens=st.context, output_tokens=out, cached_tokens=st.context)
        self._send(self.config.client, ans, lambda c: self._answered(st, c), nbytes=0.0, replica=st.replica)

    def _answered(self, st: _Thinking, ans: Request) -> None:
        if ans.dropped_reason:
            st.dead = True
            self._drop(st.call, ans)
            return
        self.answer_tokens += ans.generated_tokens
        self._done(st, ans)

    def _done(self, st: _Thinking, ans: Request | None) -> None:
        rep = st.samples[0].replica  # type: ignore[union-attr]
        self._finish(st.call, first_token_time=st.first_token,
                     generated_tokens=st.chosen_tokens + (ans.generated_tokens if ans else 0),
                     replica=rep, max_itl=max(st.max_itl, ans.max_itl if ans else 0.0))

    def report(self) -> dict[str, Any]:
        """``requests`` (step calls accepted), ``calls`` (per client), ``dropped``,
        ``rounds`` (completed), ``samples`` (sample calls, of which ``forked`` joined a
        sample 1), ``thought_tokens`` (generated by every sample), ``chosen_tokens`` (by the
        chosen samples), ``answer_tokens``."""
        return {"requests": self.requests, "calls": dict(sorted(self.calls.items())), "dropped": self.dropped,
                "rounds": self.rounds_done, "samples": self.samples, "forked": self.forked,
                "thought_tokens": self.thought_tokens, "chosen_tokens": self.chosen_tokens,
                "answer_tokens": self.answer_tokens}
