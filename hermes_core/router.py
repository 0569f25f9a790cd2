"""The :class:`Router` interface: picks which replica of a client serves a request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel

from .workload import Request


class Router(ABC):
    """Spreads requests over data-parallel replicas.

    Built as ``cls(config)``. :meth:`choose` gets the request and the replicas' outstanding
    request counts (requests submitted and not finished) and returns a replica index.
    """

    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel):
        self.config = config

    @abstractmethod
    def choose(self, request: Request, outstanding: Sequence[int]) -> int:
        """Index in ``range(len(outstanding))`` of the replica that takes ``request``."""
