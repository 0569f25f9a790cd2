"""First-party routers: spread a client's requests over its data-parallel replicas.

* ``round_robin``: replicas in turn, 0, 1, ..., n-1, 0, ... (the default router).
* ``least_outstanding``: the replica with the fewest outstanding requests (submitted and not
  finished); ties go to the lowest index.

Both are deterministic and use no randomness. ``choose`` runs once per request, so each is
a couple of plain Python operations.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from hermes_core import Request, Router, hookimpl

__all__ = ["LeastOutstanding", "RoundRobin", "hermes_register_routers"]


class RoundRobin(Router):
    """Send request k (in submission order) to replica ``k mod n``.

    Ignores the request and the replicas' load. The counter is per router instance, i.e. per
    client.
    """

    class Config(BaseModel):
        """``round_robin`` takes no options."""

        model_config = ConfigDict(extra="forbid")

    def __init__(self, config: RoundRobin.Config):
        """``config``: the (empty) validated :class:`RoundRobin.Config`."""
        super().__init__(config)
        self._count = 0

    def choose(self, request: Request, outstanding: Sequence[int]) -> int:
        """The next replica index in turn, in ``range(len(outstanding))``."""
        i = self._count % len(outstanding)
        self._count += 1
        return i


class LeastOutstanding(Router):
    """Send each request to the replica with the fewest outstanding requests (submitted and
    not yet finished or dropped); ties go to the lowest replica index.

    Outstanding counts requests, not tokens: a replica busy with one long prompt looks as idle
    as one with a short prompt.
    """

    class Config(BaseModel):
        """``least_outstanding`` takes no options."""

        model_config = ConfigDict(extra="forbid")

    def __init__(self, config: LeastOutstanding.Config):
        """``config``: the (empty) validated :class:`LeastOutstanding.Config`."""
        super().__init__(config)

    def choose(self, request: Request, outstanding: Sequence[int]) -> int:
        """Index of the smallest count in ``outstanding`` (the first one on ties)."""
        return outstanding.index(min(outstanding))


@hookimpl
def hermes_register_routers(register):
    """Register ``round_robin`` and ``least_outstanding``."""
    register("round_robin", RoundRobin, source="replicas in turn")
    register("least_outstanding", LeastOutstanding, source="fewest outstanding requests, ties to lowest index")
