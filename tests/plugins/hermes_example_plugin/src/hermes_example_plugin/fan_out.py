"""``fan_out``: a control stage that sends each request to several clients at once and
finishes with the first copy that completes: hedged requests (Dean & Barroso, "The Tail at
Scale", CACM 56(2), 2013), which trade the extra work of the copies for a shorter tail.

It runs on no devices; it reaches the other clients through the door the core gives every
stage (:meth:`hermes_core.StageContext.call`), so it needs a scenario with
``request_types``. hermes has no cancellation: the slower copies run to their end, taking
their clients' capacity, and are recorded in ``steps.csv`` like any call.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import ConfigError, Request, Stage, StageContext


class FanOutConfig(BaseModel):
    """Scenario fields of ``stage: {type: fan_out, clients: [...]}``."""

    model_config = ConfigDict(extra="forbid")

    clients: list[str] = Field(..., min_length=1, description="Clients that each get a copy of every request.")


class _Race:
    """The copies of one request still out, and whether one has already won."""

    __slots__ = ("left", "won")

    def __init__(self, copies: int):
        self.left = copies
        self.won = False


class FanOut(Stage):
    """Sends a copy of each request to every client of ``config.clients``; the request
    completes when the first copy completes, with that copy's timings and tokens. A dropped
    copy is ignored while another may still complete; the request is dropped, with the last
    copy's reason, only when every copy is dropped."""

    Config = FanOutConfig

    @classmethod
    def devices_needed(cls, config: FanOutConfig) -> int:
        """0: the stage only sends calls to other clients."""
        return 0

    @classmethod
    def targets(cls, config: FanOutConfig) -> dict[str, str]:
        """The clients called, by field path (the core checks they exist and form no cycle)."""
        return {f"clients[{i}]": name for i, name in enumerate(config.clients)}

    def __init__(self, config: FanOutConfig, ctx: StageContext):
        super().__init__(config, ctx)
        if ctx.door is None:
            raise ConfigError(f"{ctx.where}: fan_out calls other clients, which needs a scenario with request_types")
        self._outstanding = 0
        #: requests each client's copy won, by client name
        self.won = {name: 0 for name in config.clients}

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def submit(self, request: Request) -> None:
        self._outstanding += 1
        request.start_time = self.ctx.sim.now  # no queue here: the step starts at once
        race = _Race(len(self.config.clients))  # set up before the calls: one may end at once
        for name in self.config.clients:
            copy = self.ctx.new_call(request, prompt_tokens=request.prompt_tokens,
                                     output_tokens=request.output_tokens, cached_tokens=request.cached_tokens)
            self.ctx.call(name, copy, lambda c, name=name: self._copy_done(request, race, name, c))

    def _copy_done(self, request: Request, race: _Race, name: str, copy: Request) -> None:
        race.left -= 1
        if race.won or (copy.dropped_reason and race.left):
            return  # a slower copy, or a dropped one while others are still out
        race.won = True
        request.replica = copy.replica  # the replica that served it (or dropped it last)
        if copy.dropped_reason:
            request.dropped_reason = copy.dropped_reason
        else:
            self.won[name] += 1
            # a per-request value: it becomes the requests.csv column "fan_out_winner"
            request.annotations = {**(request.annotations or {}), "fan_out_winner": name}
            request.first_token_time = copy.first_token_time
            request.finish_time = copy.finish_time
            request.generated_tokens = copy.generated_tokens
            request.max_itl = copy.max_itl
        # preemptions are not copied: the core sums them over every call of the request
        self._outstanding -= 1
        self.ctx.on_done(request)

    def report(self) -> dict[str, Any]:
        """``won``: requests each client's copy completed first; ``outstanding``: requests
        still racing when the run stopped (0 unless ``max_time_s`` cut it short)."""
        return {"won": dict(self.won), "outstanding": self._outstanding}
