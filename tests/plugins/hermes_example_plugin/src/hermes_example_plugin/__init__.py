"""hermes-example-plugin: a third-party hermes plugin, as small as a real one can be.

It registers three components, one per ``hermes_register_<kind>`` hook:

* device ``example_asic`` (:class:`~hermes_example_plugin.asic.ExampleASIC`): a TPU-like
  accelerator priced by a roofline with its own datasheet-style figures;
* batching policy ``decode_first_fcfs``
  (:class:`~hermes_example_plugin.batching.DecodeFirstFCFS`): decodes first, then at most
  ``prefill_chunk`` prompt tokens per step in first-come-first-served order;
* stage ``fan_out`` (:class:`~hermes_example_plugin.fan_out.FanOut`): a control stage that
  sends each request to several clients at once and finishes with the first copy that
  completes (hedged requests).

hermes finds this module through the entry point declared in ``pyproject.toml``::

    [project.entry-points.hermes]
    example = "hermes_example_plugin"

A scenario then uses the components by name::

    device: {type: example_asic, memory_GiB: 128}
    stage: {type: llm_serving, ..., batching: {type: decode_first_fcfs, prefill_chunk: 256}}
"""

from __future__ import annotations

from hermes_core import hookimpl

from .asic import ExampleASIC, ExampleASICConfig
from .batching import DecodeFirstFCFS, DecodeFirstFCFSConfig
from .fan_out import FanOut, FanOutConfig

__version__ = "0.1.0"

__all__ = [
    "DecodeFirstFCFS",
    "DecodeFirstFCFSConfig",
    "ExampleASIC",
    "ExampleASICConfig",
    "FanOut",
    "FanOutConfig",
    "hermes_register_batching_policies",
    "hermes_register_devices",
    "hermes_register_stages",
]


@hookimpl
def hermes_register_devices(register):
    """Register the ``example_asic`` device (config model: :class:`ExampleASICConfig`).

    Called once by hermes when plugins load. Returns nothing; a name clash with another
    plugin's device raises :class:`hermes_core.PluginLoadError` naming both plugins.
    """
    register("example_asic", ExampleASIC)


@hookimpl
def hermes_register_batching_policies(register):
    """Register the ``decode_first_fcfs`` batching policy (config model:
    :class:`DecodeFirstFCFSConfig`).

    Called once by hermes when plugins load. Returns nothing; a name clash raises
    :class:`hermes_core.PluginLoadError` naming both plugins.
    """
    register("decode_first_fcfs", DecodeFirstFCFS)


@hookimpl
def hermes_register_stages(register):
    """Register the ``fan_out`` control stage (config model: :class:`FanOutConfig`).

    Called once by hermes when plugins load. Returns nothing; a name clash raises
    :class:`hermes_core.PluginLoadError` naming both plugins.
    """
    register("fan_out", FanOut)
