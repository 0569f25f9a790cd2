"""hermes: an event-driven simulator of multi-stage LLM inference on heterogeneous hardware.

The public import surface. Plugins need only these names::

    from hermes_core import hookimpl, HardwareNode, BatchingPolicy, Stage
"""

from .api import Result, Scenario, load_scenario, run
from .engine import PRIORITY_ARRIVAL, PRIORITY_COMPLETION, PRIORITY_DEFAULT, Simulator
from .errors import (
    CapacityError, ConfigError, HermesError, PluginError, PluginLoadError, UnknownComponentError, WorkloadError,
)
from .hardware import DTYPE_BYTES, HardwareNode, dtype_bytes, roofline_time
from .hookspecs import hookimpl, hookspec
from .memory import MemoryTier
from .metrics import MetricsCollector
from .modelspec import ModelSpec, Operator
from .plugins import Registry, default_registry, load_plugins, model_path
from .router import Router
from .scheduler import Batch, BatchingPolicy, BlockManager, EngineLimits, PrefixCache, SchedulerState, Sequence
from .cluster import Cluster, LinkType, NodeType
from .network import Network
from .pipeline import StepRecord
from .stage import TOKEN_ID_BYTES, Handoff, Stage, StageContext
from .topology import Topology
from .workload import Request, Workload, make_rng

__version__ = "0.1.0"

__all__ = [
    "PRIORITY_ARRIVAL", "PRIORITY_COMPLETION", "PRIORITY_DEFAULT",
    "Batch", "BatchingPolicy", "BlockManager", "Cluster", "Handoff", "LinkType", "Network", "NodeType",
    "StepRecord", "TOKEN_ID_BYTES", "CapacityError", "ConfigError", "DTYPE_BYTES",
    "EngineLimits", "HardwareNode", "HermesError", "MemoryTier", "MetricsCollector", "ModelSpec",
    "Operator", "PluginError", "PluginLoadError", "PrefixCache", "Registry", "Request", "Result", "Router", "Scenario",
    "SchedulerState", "Sequence", "Simulator", "Stage", "StageContext", "Topology",
    "UnknownComponentError", "Workload", "WorkloadError", "default_registry", "dtype_bytes",
    "hookimpl", "hookspec", "load_plugins", "load_scenario", "make_rng", "model_path", "roofline_time", "run",
    "__version__",
]
