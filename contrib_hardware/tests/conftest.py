"""Fixtures for hermes-contrib-hardware's tests. The package must be installed (``pip
install ./contrib_hardware``): the tests reach it the way hermes does, through its entry
point."""

from __future__ import annotations

import pytest

from hermes_core import Registry, load_plugins


@pytest.fixture(scope="session")
def registry() -> Registry:
    """All installed hermes plugins, loaded through their entry points, with the
    ``HERMES_LOAD_PLUGINS`` / ``HERMES_DISABLE_PLUGINS`` switches cleared."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HERMES_LOAD_PLUGINS", raising=False)
        mp.delenv("HERMES_DISABLE_PLUGINS", raising=False)
        return load_plugins()
