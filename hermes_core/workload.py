"""Requests and the :class:`Workload` interface."""

from __future__ import annotations

import hashlib

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel

if TYPE_CHECKING:
    from .engine import Simulator


@dataclass(slots=True, eq=False)
class Request:
    """One inference request and what happened to it.

    Times are simulated seconds. ``prompt_tokens`` is the input sequence length (ISL),
    ``output_tokens`` the number of tokens to generate (OSL, >= 1). ``hash_ids`` optionally
    names the prompt's blocks for prefix sharing, one id per ``hash_block_tokens`` tokens
    (the last block may be partial; Mooncake traces: 512), for engines with prefix caching
    (:class:`~hermes_core.scheduler.PrefixCache`). ``warmup`` marks a warm-up request.
    Result fields are filled by the stages; ``dropped_reason`` is set when the request can
    never be served.
    """

    id: int
    arrival_time: float
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] | None = None
    hash_block_tokens: int = 512
    #: Sent in a benchmark's warm-up phase: simulated like any other request, but left out
    #: of the summary's latency, throughput and goodput figures (as vLLM's ``bench serve
    #: --num-warmups`` and aiperf's ``--warmup-request-count`` leave it out).
    warmup: bool = False
    # -- results -------------------------------------------------------------------------
    first_token_time: float = -1.0
    finish_time: float = -1.0
    generated_tokens: int = 0
    preemptions: int = 0
    replica: str = ""
    dropped_reason: str = ""
    #: Inter-token latencies are aggregated on the fly; the largest gap is kept per request.
    max_itl: float = 0.0
    #: Per-request values a stage records (e.g. ``{"rag_retrieval_s": 0.0025,
    #: "prompt_tokens_before_rag": 512}``); each key becomes a column of ``requests.csv``.
    #: ``None`` until a stage writes one, so plain runs pay nothing for it.
    annotations: dict | None = None
    # -- multi-stage requests (scenarios with request_types) -------------------------------
    #: Name of the request's type (its pipeline of steps); "" in single-client scenarios.
    request_type: str = ""
    #: Prompt tokens whose KV cache arrives with the request (computed on another client and
    #: transferred, or fetched from a KV store): an LLM stage computes only the rest (it
    #: always computes the last prompt token, whose logits it samples from).
    cached_tokens: int = 0
    #: When a stage first worked on the request (s; -1 before): the end of its queueing.
    start_time: float = -1.0
    #: Called by an LLM stage with the request when its first token is sampled (best-of-N
    #: forks its samples there); ``None`` costs nothing.
    on_first_token: Callable[[Request], None] | None = None
    #: Set by the core for a call between clients: what runs when the call leaves its client.
    continuation: Callable[[Request], None] | None = None
    #: The core's record of a multi-stage request's progress (:class:`hermes_core.pipeline.Journey`).
    journey: object = None

    @property
    def completed(self) -> bool:
        return self.finish_time >= 0.0 and not self.dropped_reason


class Workload(ABC):
    """Produces requests over simulated time.

    A workload is built as ``cls(config, rng=..., base_dir=...)`` and then started with
    :meth:`start`, which schedules its own arrival events on the simulator and hands each
    request to ``submit(request)``. Closed-loop workloads react to :meth:`on_request_done`.
    ``rng`` is a :class:`numpy.random.Generator` seeded from the scenario seed.
    """

    Config: ClassVar[type[BaseModel]]

    @abstractmethod
    def start(self, sim: Simulator, submit: Callable[[Request], None]) -> None:
        """Schedule arrivals on ``sim``; call ``submit`` at each request's arrival time."""

    def on_request_done(self, request: Request) -> None:
        """Called when a request completes or is dropped (closed-loop clients send the next)."""

    def expected_requests(self) -> int | None:
        """Total number of requests if known in advance (for the progress bar)."""
        return None

    def horizon_s(self) -> float | None:
        """Last arrival time if known in advance (s)."""
        return None

    def request_types(self) -> set[str] | None:
        """The request types this workload sets on its requests itself (e.g. from a trace
        column), if known in advance; ``None`` when it sets none. The core checks them
        against the scenario's ``request_types`` before the run."""
        return None


def make_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator derived from the scenario ``seed`` and a stable component path, so that
    adding a component never changes another component's random stream."""
    key = [seed] + [int.from_bytes(hashlib.blake2b(n.encode(), digest_size=8).digest(), "little") for n in names]
    return np.random.default_rng(np.random.SeedSequence(key))
