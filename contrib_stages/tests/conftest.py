"""Fixtures for hermes-contrib-stages's tests. The package must be installed (``pip
install ./contrib_stages``): the tests reach it the way hermes does, through its entry
point."""

from __future__ import annotations

import pytest

from hermes_core import Registry, Simulator, StageContext, load_plugins, make_rng


@pytest.fixture(scope="session")
def registry() -> Registry:
    """All installed hermes plugins, loaded through their entry points, with the
    ``HERMES_LOAD_PLUGINS`` / ``HERMES_DISABLE_PLUGINS`` switches cleared."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HERMES_LOAD_PLUGINS", raising=False)
        mp.delenv("HERMES_DISABLE_PLUGINS", raising=False)
        return load_plugins()


@pytest.fixture
def stage_ctx():
    """A factory of minimal :class:`StageContext` objects for driving one stage by hand:
    a fresh simulator, a seeded random stream, and ``done`` (the list ``on_done`` appends
    to, with the time: ``(request, t)``)."""

    def make(registry=None, seed: int = 0):
        sim = Simulator()
        done: list = []
        ctx = StageContext(
            sim=sim, name="test/0", devices=[], device_names=[], topology=None, registry=registry,
            rng=make_rng(seed, "stage"), on_done=lambda r: done.append((r, sim.now)), metrics=None,
            where="clients[0].stages[0]",
        )
        return ctx, done

    return make
