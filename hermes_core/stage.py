"""The :class:`Stage` interface: one step of a request's journey (RAG retrieval, KV-cache
fetch, LLM serving, reward model, ...) running on a client's hardware."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from .workload import Request

if TYPE_CHECKING:
    from .engine import Simulator
    from .hardware import HardwareNode
    from .metrics import MetricsCollector
    from .plugins import Registry
    from .topology import Topology


#: Bytes per token id moved between clients (int32, as vLLM and SGLang hold token ids).
TOKEN_ID_BYTES = 4


@dataclass(slots=True)
class Handoff:
    """What one step hands the next: ``context_tokens`` (the next step's prompt length),
    ``kv_tokens`` (prompt tokens whose KV cache moves along, so the next LLM step computes
    only the rest; 0 for none) and ``nbytes`` (bytes moved to the next step's client)."""

    context_tokens: int
    kv_tokens: int
    nbytes: float


@dataclass
class StageContext:
    """What a stage gets from the client that hosts it.

    Attributes:
        sim: the event engine.
        name: replica name, e.g. ``"llama70b/0"`` (used in reports).
        devices: the replica's devices, in the order of ``device_names``.
        device_names: the devices' node names in ``topology``.
        topology: the replica's interconnect.
        registry: the component registry (to build nested components such as a policy).
        rng: random generator seeded from the scenario seed and the stage's path.
        on_done: call with a request when this stage has finished with it (completed or
            dropped with ``request.dropped_reason`` set).
        metrics: collector for token-level metrics (inter-token latencies).
        where: YAML path of the stage's config, for error messages.
        base_dir: folder that relative paths in the stage's config resolve against (the
            scenario file's folder).
    """

    sim: Simulator
    name: str
    devices: list[HardwareNode]
    device_names: list[str]
    topology: Topology
    registry: Registry
    rng: np.random.Generator
    on_done: Callable[[Request], None]
    metrics: MetricsCollector
    where: str = "stage"
    base_dir: Path = field(default_factory=Path.cwd)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Name of the client that hosts the stage (``name`` is the replica's).
    client: str = ""
    #: The door to other clients (the core's coordinator) in a scenario with
    #: ``request_types``; ``None`` otherwise. Use :meth:`call` and :meth:`new_call`.
    door: Any = None
    #: When the run is traced (``hermes run --trace``): a list the stage may append
    #: ``(start_s, duration_s, name, args_dict)`` slices to (one per engine step); else None.
    trace: list | None = None

    def new_call(self, parent: Request, *, prompt_tokens: int, output_tokens: int,
                 cached_tokens: int = 0) -> Request:
        """A new request for another client on behalf of ``parent`` (the request this stage
        serves): same id, type, warm-up flag and prompt block hashes, ``prompt_tokens``
        tokens in, ``output_tokens`` (>= 1) to generate, ``cached_tokens`` of its prompt's KV
        already where it goes."""
        return Request(parent.id, self.sim.now, int(prompt_tokens), int(output_tokens), parent.hash_ids,
                       parent.hash_block_tokens, parent.warmup, request_type=parent.request_type,
                       cached_tokens=int(cached_tokens), journey=parent.journey)

    def call(self, client: str, request: Request, on_done: Callable[[Request], None], *,
             nbytes: float | None = None, replica: int | None = None, source: Request | None = None) -> int:
        """Send ``request`` (from :meth:`new_call`) to the client named ``client``; call
        ``on_done(request)`` when that client is done with it (completed, or dropped with
        ``request.dropped_reason`` set). The data moves over the cluster from where the
        request's data is (the replica that served its last call) to the chosen replica:
        ``nbytes`` bytes (default: what the last call handed on). ``source``: an earlier,
        ended call of the same request whose replica holds the data (when several calls ran
        at once, "the last call" may not be the one whose result moves on). ``replica`` pins a
        replica index (else the client's router picks). Returns the replica index.

        Raises :class:`~hermes_core.ConfigError` when the scenario has no ``request_types``
        (no door), ``KeyError`` for an unknown client (names are checked when the
        scenario is built, through :meth:`Stage.targets`) and ``IndexError`` for a
        ``replica`` index the client does not have."""
        if self.door is None:
            from .errors import ConfigError
            raise ConfigError(f"{self.where}: this stage calls other clients, which needs a scenario "
                              "with request_types (see docs/architecture.md)")
        return self.door.call_from(self, client, request, on_done, nbytes=nbytes, replica=replica, source=source)


class Stage(ABC):
    """A request stage. Built as ``cls(config, ctx)`` with a :class:`StageContext`.

    :meth:`submit` hands the stage a request at the current simulated time; the stage
    schedules its own events and calls ``ctx.on_done(request)`` when finished with it.
    Stages must raise :class:`hermes_core.CapacityError` from ``__init__`` when their work
    cannot fit the hardware at all.
    """

    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel, ctx: StageContext):
        self.config = config
        self.ctx = ctx

    @classmethod
    def devices_needed(cls, config: BaseModel) -> int:
        """Devices one replica needs for this stage (default 1). The replica gets the most
        any of its stages needs; stages of one replica share its devices."""
        return 1

    @classmethod
    def targets(cls, config: BaseModel) -> dict[str, str]:
        """Clients this stage calls through :meth:`StageContext.call`, as ``{field path
        relative to the stage's config: client name}`` (default: none). The core checks
        that they exist and that calls between clients form no cycle; a call that finds no
        path in the cluster at run time drops its request with reason ``no_path``."""
        return {}

    def handoff(self, request: Request) -> Handoff:
        """What the next step of ``request``'s pipeline gets from this stage once it is
        done with it. Default: the context grows by the tokens generated here
        (``prompt_tokens + generated_tokens``), no KV is handed on, and the token ids move
        (:data:`TOKEN_ID_BYTES` each)."""
        ctx = request.prompt_tokens + request.generated_tokens
        return Handoff(ctx, 0, TOKEN_ID_BYTES * ctx)

    def unfinished(self) -> list[Request]:
        """Requests inside this stage when the run stopped (reported as unfinished)."""
        return []

    @abstractmethod
    def submit(self, request: Request) -> None:
        """Accept ``request`` now (``ctx.sim.now``)."""

    @property
    @abstractmethod
    def outstanding(self) -> int:
        """Requests accepted and not yet finished (reports and tests use this; routers
        count per replica themselves)."""

    def report(self) -> dict[str, Any]:
        """Stage statistics for ``summary.json`` (utilisation, KV usage, ...). A
        ``"devices"`` key, if present, is a list of ``{"device", "type", "busy_fraction",
        "mfu", "mbu"}`` dicts that also goes into the summary's ``utilisation`` list."""
        return {}
