"""Hook specifications of hermes.

One registration hook per component kind. Each receives a typed register object (see
:mod:`hermes_core.plugins`) and calls it once per component::

    @hookimpl
    def hermes_register_devices(register):
        register("my_asic", MyAsic)          # MyAsic.Config is its pydantic model

Hooks run once, when plugins are loaded; nothing in the per-event hot path goes through
pluggy. Specs are listed in lifecycle order (registration only, so far).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("hermes")
hookimpl = pluggy.HookimplMarker("hermes")


@hookspec
def hermes_register_stages(register):
    """Register request stages (LLM serving, RAG, ...).

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.Stage` and has a pydantic ``Config``. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_devices(register):
    """Register hardware node types (GPUs, ASICs, CPUs).

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.HardwareNode` and has a pydantic ``Config``. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_memory_tiers(register):
    """Register memory tier types (HBM, host DRAM, CXL).

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.MemoryTier`. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_batching_policies(register):
    """Register batching policies (schedulers) for serving stages.

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.BatchingPolicy`. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_workloads(register):
    """Register workload generators (trace replay, synthetic arrivals, closed loop).

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.Workload`. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_routers(register):
    """Register routers that spread requests over the replicas of a client.

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.Router`. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_commands(cli):
    """Add subcommands to the ``hermes`` command line (a :class:`click.Group`), as
    ``cli.add_command(my_command)``. Called once, when the CLI starts. Returns nothing.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_models(register):
    """Register model architectures by name (the offline catalog).

    Called once at plugin load. ``register(name, path, source=...)`` where ``path`` is a
    Hugging Face ``config.json`` file and ``source`` says where it was copied from.

    .. versionadded:: 0.1
    """


@hookspec
def hermes_register_cluster_nodes(register):
    """Register cluster node types (an 8-GPU server with its host, a CPU host, a switch).

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.NodeType` and has a pydantic ``Config``. Returns nothing.

    .. versionadded:: 0.2
    """


@hookspec
def hermes_register_links(register):
    """Register link types (NVLink, PCIe, CXL, InfiniBand, RoCE) with datasheet figures.

    Called once at plugin load. ``register(name, cls)`` where ``cls`` subclasses
    :class:`hermes_core.LinkType` and has a pydantic ``Config``. Returns nothing.

    .. versionadded:: 0.2
    """
