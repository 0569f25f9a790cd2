"""Scenario configuration: pydantic models, YAML loading and ``--set`` overrides.

A scenario names its components by ``type:``; the core validates only its own fields and
hands each component section to the registered component's own pydantic model (see
:meth:`hermes_core.plugins.Registry.validate`), so plugin types need no change here.
Errors name the YAML path, e.g. ``clients[0].stage.max_num_seqs: ...``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .cluster import ClusterConfig
from .errors import ConfigError
from .plugins import validate_model


#: Upper bounds that keep a typo from building until memory runs out: replicas of one
#: client, and devices of one replica (the largest NVLink domain sold, GB200 NVL72, has 72
#: GPUs; a pod of servers for one replica is far below this).
MAX_REPLICAS = 10_000
MAX_DEVICES_PER_REPLICA = 4_096


class SLOConfig(BaseModel):
    """Service-level objectives for goodput (all optional, milliseconds)."""

    model_config = ConfigDict(extra="forbid")
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2e_ms: float | None = Field(None, gt=0)

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class InterconnectConfig(BaseModel):
    """Scale-up link figures that replace the device's own (effective values, used as
    given: no efficiency factor is applied). ``bandwidth_GBps``: per direction, 10^9
    bytes/s; ``latency_us``: one hop."""

    model_config = ConfigDict(extra="forbid")
    bandwidth_GBps: float | None = Field(None, gt=0)
    latency_us: float | None = Field(None, ge=0)


class ClientConfig(BaseModel):
    """A serving client: ``replicas`` identical copies (data parallelism) of a stage
    (``stage``) or a pipeline of stages (``stages``, e.g. RAG retrieval then LLM serving) on
    its own devices.

    ``device`` picks the device type (component spec); ``num_devices`` defaults to what the
    stage needs (TP x PP for LLM serving). ``interconnect`` overrides the device's own
    scale-up link figures (``bandwidth_GBps`` per direction, ``latency_us``).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1)
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    device: dict[str, Any] = Field(default_factory=lambda: {"type": "gpu"})
    num_devices: int | None = Field(None, ge=1, le=MAX_DEVICES_PER_REPLICA)
    interconnect: InterconnectConfig | None = None
    stage: dict[str, Any] | None = None
    stages: list[dict[str, Any]] | None = None
    router: dict[str, Any] = Field(default_factory=lambda: {"type": "round_robin"})
    place: str | list[str] | None = None

    @model_validator(mode="after")
    def _one_pipeline(self) -> ClientConfig:
        if (self.stage is None) == (self.stages is None):
            raise ValueError("give exactly one of 'stage' (one stage) or 'stages' (a pipeline, in order)")
        if self.stages is not None and not self.stages:
            raise ValueError("'stages' must list at least one stage")
        if self.place is not None and self.interconnect is not None:
            raise ValueError("'interconnect' sets the links of a client without placement; a placed client's "
                             "links come from the cluster")
        return self


class StepConfig(BaseModel):
    """One step of a request type: the ``client`` that serves it (a client running a
    control stage, such as ``route`` or ``reasoning``, reaches further clients itself)."""

    model_config = ConfigDict(extra="forbid")
    client: str = Field(..., min_length=1)


class RequestTypeConfig(BaseModel):
    """A request type: its pipeline of ``steps``, in order. In YAML a plain list of client
    names is the short form (``qa: [llama70b]``)."""

    model_config = ConfigDict(extra="forbid")
    steps: list[StepConfig] = Field(..., min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, (list, str)):
            v = {"steps": [v] if isinstance(v, str) else v}
        if isinstance(v, dict) and isinstance(v.get("steps"), list):
            v = {**v, "steps": [{"client": s} if isinstance(s, str) else s for s in v["steps"]]}
        return v


class MixEntry(BaseModel):
    """One entry of a workload's ``mix``: a ``request_type`` and its ``weight`` (> 0; the
    weights are normalised)."""

    model_config = ConfigDict(extra="forbid")
    request_type: str
    weight: float = Field(..., gt=0)


class TypeRule(BaseModel):
    """One entry of a workload's ``request_type_rules``, tried in order (the first that
    matches types the request): the bounds given must all hold (``*_at_least`` inclusive,
    ``*_below`` exclusive); a rule with no bound matches every request."""

    model_config = ConfigDict(extra="forbid")
    request_type: str
    prompt_tokens_at_least: int | None = None
    prompt_tokens_below: int | None = None
    output_tokens_at_least: int | None = None
    output_tokens_below: int | None = None

    def matches(self, prompt: int, output: int) -> bool:
        """Whether a request with ``prompt`` and ``output`` tokens falls in this rule."""
        return ((self.prompt_tokens_at_least is None or prompt >= self.prompt_tokens_at_least)
                and (self.prompt_tokens_below is None or prompt < self.prompt_tokens_below)
                and (self.output_tokens_at_least is None or output >= self.output_tokens_at_least)
                and (self.output_tokens_below is None or output < self.output_tokens_below))


class WorkloadTyping(BaseModel):
    """The keys of a workload section that type its requests (the core reads them; the rest
    goes to the workload component): ``request_type`` (every request), ``mix`` (drawn per
    request from the weights, a seeded stream), ``request_type_rules`` (by the request's
    token counts), or none of them: the type the workload itself sets (a trace column, see
    the trace workloads' ``request_type_field``), else the only request type defined.
    ``client`` is the single-client form's target client."""

    model_config = ConfigDict(extra="forbid")
    client: str | None = None
    request_type: str | None = None
    mix: list[MixEntry] | None = Field(None, min_length=1)
    request_type_rules: list[TypeRule] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> WorkloadTyping:
        given = [k for k in ("request_type", "mix", "request_type_rules") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of request_type, mix or request_type_rules, not {given}")
        return self

    @property
    def typed(self) -> bool:
        return self.request_type is not None or self.mix is not None or self.request_type_rules is not None

    def type_names(self) -> list[tuple[str, str]]:
        """``(field path, type name)`` of every request type named here."""
        if self.request_type is not None:
            return [("request_type", self.request_type)]
        if self.mix is not None:
            return [(f"mix[{i}].request_type", m.request_type) for i, m in enumerate(self.mix)]
        if self.request_type_rules is not None:
            return [(f"request_type_rules[{i}].request_type", r.request_type)
                    for i, r in enumerate(self.request_type_rules)]
        return []


#: Keys of a workload section that the core reads (see :class:`WorkloadTyping`).
TYPING_KEYS = ("client", "request_type", "mix", "request_type_rules")


class ScenarioConfig(BaseModel):
    """The top level of a scenario file.

    Fields: ``name``; ``seed`` (every random stream derives from it); ``workload``
    (component spec; an optional ``client`` key names its target client, or the
    :class:`WorkloadTyping` keys type its requests) or ``workloads`` (several streams, each
    typed); ``clients``; ``request_types`` (name: pipeline of steps; with them, requests
    travel between clients, see :mod:`hermes_core.pipeline`); ``cluster`` (the graph of
    devices and links, :mod:`hermes_core.cluster`); ``slo`` (goodput thresholds);
    ``max_time_s`` (stop the simulation at this simulated time; requests still in flight
    are reported as unfinished).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = "scenario"
    seed: int = Field(0, ge=0)
    workload: dict[str, Any] | None = None
    workloads: list[dict[str, Any]] | None = Field(None, min_length=1)
    clients: list[ClientConfig] = Field(..., min_length=1)
    request_types: dict[str, RequestTypeConfig] | None = Field(None, min_length=1)
    cluster: ClusterConfig | None = None
    slo: SLOConfig | None = None
    max_time_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _workloads(self) -> ScenarioConfig:
        if (self.workload is None) == (self.workloads is None):
            raise ValueError("give exactly one of 'workload' (one stream) or 'workloads' (several streams)")
        if self.workloads is not None and self.request_types is None:
            raise ValueError("'workloads' (several streams) needs 'request_types' naming what each stream sends")
        return self

    def workload_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(YAML path, spec)`` of every workload stream."""
        if self.workload is not None:
            return [("workload", self.workload)]
        return [(f"workloads[{i}]", w) for i, w in enumerate(self.workloads or [])]


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (PyYAML keeps the
    last one silently)."""


def _mapping_unique(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice in one mapping (first on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_unique)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a scenario file as safe YAML (no code runs), refusing duplicate keys.

    Raises :class:`ConfigError` naming the file (and line, for syntax errors and duplicate
    keys) for a missing file, a folder, a file that is not UTF-8 text, invalid YAML or a
    top level that is not a mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"scenario file '{p}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"scenario file '{p}' is a folder; give a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); a scenario is a UTF-8 YAML file") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{loc}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a scenario must be a mapping at the top level")
    return data


_INDEX = re.compile(r"\[(\d+)\]")


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied.

    Path parts are mapping keys or list indices (``clients.0.replicas`` or
    ``clients[0].replicas``); the value is parsed as YAML (``8`` is an int, ``[1,2]`` a
    list). Missing mapping keys are created. Raises :class:`ConfigError` naming the override.
    """
    out = copy.deepcopy(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY.PATH=VALUE")
        key, raw = item.split("=", 1)
        parts = [p for p in _INDEX.sub(r".\1", key.strip()).split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item}: empty key path")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: '{where}' is not an index of a list of {len(node)} items")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"--set {key}: '{'.'.join(parts[:i])}' is a value, not a mapping or list")
    return out


def parse_scenario(data: Mapping[str, Any]) -> ScenarioConfig:
    """Validate the core fields of a scenario dict (components are validated later by
    their plugins). Raises :class:`ConfigError` with the field path."""
    return validate_model(ScenarioConfig, data, "")  # type: ignore[return-value]
