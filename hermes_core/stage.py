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

    def unfinished(self) -> list[Request]:
        """Requests inside this stage when the run stopped (reported as unfinished)."""
        return []

    @abstractmethod
    def submit(self, request: Request) -> None:
        """Accept ``request`` now (``ctx.sim.now``)."""

    @property
    @abstractmethod
    def outstanding(self) -> int:
        """Requests accepted and not yet finished (routers use this)."""

    def report(self) -> dict[str, Any]:
        """Stage statistics for ``summary.json`` (utilisation, KV usage, ...). A
        ``"devices"`` key, if present, is a list of ``{"device", "type", "busy_fraction",
        "mfu", "mbu"}`` dicts that also goes into the summary's ``utilisation`` list."""
        return {}
