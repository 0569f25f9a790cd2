"""Errors a user sees.

Every subclass of :class:`HermesError` carries one message that names the place of the
problem (YAML field path, file and line, plugin and distribution) and what is allowed. The
CLI prints it as ``error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class HermesError(Exception):
    """Base class of all errors meant for the user rather than for a developer."""


class ConfigError(HermesError):
    """A scenario field is wrong. The message starts with the field's path, e.g.
    ``clients[0].stage.max_num_seqs: must be > 0 (got -4)``."""


class UnknownComponentError(ConfigError):
    """A ``type:`` names no registered component; the message lists the available ones."""


class PluginLoadError(HermesError):
    """A plugin failed to import or registered something invalid; the message names the
    plugin and its distribution."""


class WorkloadError(HermesError):
    """A trace file is missing or malformed; the message names the file, line and column."""


class CapacityError(HermesError):
    """A model does not fit on the devices it was given (weights plus minimum KV cache)."""


class PluginError(HermesError):
    """A plugin broke its contract while a scenario ran (a batching policy returned a batch
    over the engine's limits or without reserving its KV cache, a router picked a replica
    that does not exist); the message names the component, its plugin and distribution."""
