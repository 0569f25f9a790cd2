"""hermes-contrib-hardware: hardware for hermes beyond the first-party GPU.

It registers, through the ``hermes`` entry-point group (``contrib_hardware =
"hermes_contrib_hardware"`` in ``pyproject.toml``):

* device ``tpu`` (:class:`~hermes_contrib_hardware.tpu.TPU`): Google Cloud TPU v5e / v5p,
  a roofline with a 128 x 128 systolic-array (MXU) GEMM padding model;
* device ``cpu`` (:class:`~hermes_contrib_hardware.cpu.CPUSocket`): an Intel Xeon
  Platinum 8480+ socket with AMX, for small models;
* memory tier ``cxl_expander`` (:class:`~hermes_contrib_hardware.cxl.CXLExpander`): Micron
  CZ120 / Samsung CMM-D CXL 2.0 memory modules.

Every figure's source is in its module's docstring. Scenario use::

    device: {type: tpu, preset: v5e}
    device: {type: cpu, preset: xeon_8480p}
    tier:   {type: cxl_expander, preset: micron_cz120_256gb, modules: 4}
"""

from __future__ import annotations

from hermes_core import hookimpl

from .cpu import CPUConfig, CPUSocket
from .cxl import CXLExpander, CXLExpanderConfig
from .tpu import TPU, TPUConfig

__version__ = "0.1.0"

__all__ = [
    "CPUConfig", "CPUSocket", "CXLExpander", "CXLExpanderConfig", "TPU", "TPUConfig",
    "hermes_register_devices", "hermes_register_memory_tiers",
]


@hookimpl
def hermes_register_devices(register):
    """Register the ``cpu`` and ``tpu`` devices (config models :class:`CPUConfig`,
    :class:`TPUConfig`). Called once when hermes loads plugins; returns nothing."""
    register("cpu", CPUSocket)
    register("tpu", TPU)


@hookimpl
def hermes_register_memory_tiers(register):
    """Register the ``cxl_expander`` memory tier (config model :class:`CXLExpanderConfig`).
    Called once when hermes loads plugins; returns nothing."""
    register("cxl_expander", CXLExpander)
