"""Plugin loading, the component registry and ``hermes plugins``.

Plugins are found through the ``hermes`` entry-point group (first-party ones too). Each
plugin module implements one or more ``hermes_register_<kind>`` hooks; every component it
registers gets a stable name, the class, and the class's pydantic ``Config`` model.

Environment switches:

* ``HERMES_LOAD_PLUGINS=a,b``: load only these entry points (by entry-point name).
* ``HERMES_DISABLE_PLUGINS=a,b``: skip these entry points.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from . import hookspecs
from .errors import ConfigError, PluginLoadError, UnknownComponentError

#: Component kinds, in registration order; each maps to its ``hermes_register_<kind>`` hook.
KINDS: tuple[str, ...] = (
    "stages",
    "devices",
    "memory_tiers",
    "batching_policies",
    "workloads",
    "routers",
    "models",
    "cluster_nodes",
    "links",
)


def _base_classes() -> dict[str, type | None]:
    from .cluster import LinkType, NodeType
    from .hardware import HardwareNode
    from .memory import MemoryTier
    from .router import Router
    from .scheduler import BatchingPolicy
    from .stage import Stage
    from .workload import Workload

    return {
        "stages": Stage,
        "devices": HardwareNode,
        "memory_tiers": MemoryTier,
        "batching_policies": BatchingPolicy,
        "workloads": Workload,
        "routers": Router,
        "models": None,
        "cluster_nodes": NodeType,
        "links": LinkType,
    }


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: its name, distribution and version."""

    name: str
    distribution: str
    version: str

    def describe(self) -> str:
        return f"'{self.name}' ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Component:
    """One registered component.

    ``obj`` is the class (or, for ``models``, the path of a ``config.json``); ``config_model``
    the pydantic model that validates its scenario section; ``source`` free-form provenance.
    """

    kind: str
    name: str
    obj: Any
    config_model: type[BaseModel] | None
    plugin: PluginInfo
    source: str = ""


class Register:
    """The typed register object handed to ``hermes_register_<kind>`` hooks.

    ``register(name, obj, config_model=None, source="")``; for classes the config model
    defaults to ``obj.Config``. Raises :class:`PluginLoadError` for an invalid name, a
    class of the wrong base, a missing config model or a duplicate name.
    """

    def __init__(self, registry: Registry, kind: str, plugin: PluginInfo):
        self._registry = registry
        self._kind = kind
        self._plugin = plugin

    def __call__(
        self,
        name: str,
        obj: Any,
        config_model: type[BaseModel] | None = None,
        source: str = "",
    ) -> None:
        self._registry._add(self._kind, name, obj, config_model, self._plugin, source)


_SINGULAR = {
    "stages": "stage", "devices": "device", "memory_tiers": "memory tier",
    "batching_policies": "batching policy", "workloads": "workload", "routers": "router",
    "models": "model", "cluster_nodes": "cluster node type", "links": "link type",
}


class Registry:
    """All components, by kind and name. Frozen once plugins are loaded.

    Lookups are plain dict accesses: nothing here runs per simulated event.
    """

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._plugins: dict[str, PluginInfo] = {}
        self._frozen = False

    # -- building ---------------------------------------------------------------------
    def _add(self, kind, name, obj, config_model, plugin: PluginInfo, source: str) -> None:
        if self._frozen:
            raise PluginLoadError(f"plugin {plugin.describe()} registered {kind} '{name}' after loading ended")
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise PluginLoadError(
                f"plugin {plugin.describe()} registered {kind} with invalid name {name!r}: "
                "use letters, digits, '_', '-' and '.'"
            )
        base = _base_classes()[kind]
        if base is not None:
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PluginLoadError(
                    f"plugin {plugin.describe()} registered {kind} '{name}' as {obj!r}, "
                    f"which is not a subclass of hermes_core.{base.__name__}"
                )
            if inspect.isabstract(obj):
                missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
                raise PluginLoadError(
                    f"plugin {plugin.describe()} registered {kind} '{name}' as {obj.__name__}, which does not "
                    f"implement the abstract methods of hermes_core.{base.__name__}: {missing}"
                )
            config_model = config_model or getattr(obj, "Config", None)
            if not (isinstance(config_model, type) and issubclass(config_model, BaseModel)):
                raise PluginLoadError(
                    f"plugin {plugin.describe()} registered {kind} '{name}' without a pydantic "
                    "Config model (set a nested `class Config(BaseModel)` or pass config_model=)"
                )
        existing = self._components[kind].get(name)
        if existing is not None:
            raise PluginLoadError(
                f"{kind} '{name}' is registered twice: by plugin {existing.plugin.describe()} "
                f"and by plugin {plugin.describe()}; disable one with HERMES_DISABLE_PLUGINS"
            )
        self._components[kind][name] = Component(kind, name, obj, config_model, plugin, source)
        self._plugins.setdefault(plugin.name, plugin)

    def _drop_plugin(self, plugin: str) -> None:
        """Forget every component that ``plugin`` registered (it failed while loading)."""
        for kind in self._components:
            self._components[kind] = {n: c for n, c in self._components[kind].items() if c.plugin.name != plugin}
        self._plugins.pop(plugin, None)

    def register_commands(self, cli: Any) -> None:
        """Call every plugin's ``hermes_register_commands(cli)`` hook (the CLI does this
        once). Raises :class:`PluginLoadError` naming the plugin whose hook failed."""
        pm = getattr(self, "_pm", None)
        if pm is None:
            return
        for impl in sorted(pm.hook.hermes_register_commands.get_hookimpls(), key=lambda i: i.plugin_name):
            info = self._plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "unknown", "unknown")
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                raise PluginLoadError(
                    f"Error loading hermes plugin {info.describe()}: hermes_register_commands raised "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def freeze(self) -> None:
        """Refuse further registrations."""
        self._frozen = True

    # -- lookups ----------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Sorted names of the registered components of ``kind``."""
        return sorted(self._components[kind])

    def get(self, kind: str, name: str, *, where: str = "type") -> Component:
        """The component ``name`` of ``kind``.

        Raises :class:`UnknownComponentError` naming ``where`` (the YAML path) and listing the
        available names with their providers.
        """
        try:
            return self._components[kind][name]
        except KeyError:
            avail = ", ".join(
                f"'{n}' ({c.plugin.distribution})" for n, c in sorted(self._components[kind].items())
            ) or "none"
            close = _close(str(name), list(self._components[kind]))
            hint = f" Did you mean '{close}'?" if close else ""
            raise UnknownComponentError(
                f"{where}: unknown {_SINGULAR[kind]} '{name}'.{hint} Available: {avail}. "
                "Missing a plugin? Run `hermes plugins`."
            ) from None

    def validate(self, kind: str, spec: Mapping[str, Any], where: str) -> tuple[Component, BaseModel]:
        """Pick the component named by ``spec['type']`` and validate the rest of ``spec``.

        Returns ``(component, config)``. Raises :class:`ConfigError` whose message starts with
        the field path (``where`` + the pydantic location).
        """
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'type' field, got {type(spec).__name__}")
        if "type" not in spec:
            raise ConfigError(
                f"{where}.type: missing; allowed: {', '.join(self.names(kind)) or 'none registered'}"
            )
        comp = self.get(kind, str(spec["type"]), where=f"{where}.type")
        fields = {k: v for k, v in spec.items() if k != "type"}
        return comp, validate_model(comp.config_model, fields, where)

    def build(self, kind: str, spec: Mapping[str, Any], where: str, **context: Any) -> Any:
        """Validate ``spec`` and construct the component: ``cls(config, **context)``."""
        comp, cfg = self.validate(kind, spec, where)
        return comp.obj(cfg, **context)

    def plugins(self) -> list[dict[str, Any]]:
        """One dict per plugin: name, distribution, version and components per kind."""
        out = []
        for p in sorted(self._plugins.values(), key=lambda p: p.name):
            comps = {
                kind: sorted(n for n, c in self._components[kind].items() if c.plugin.name == p.name)
                for kind in KINDS
            }
            out.append(
                {
                    "name": p.name,
                    "distribution": p.distribution,
                    "version": p.version,
                    "components": {k: v for k, v in comps.items() if v},
                }
            )
        return out


def validate_model(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    """Validate ``data`` with ``model``; turn the first pydantic error into a
    :class:`ConfigError` whose message starts with the full field path."""
    bad = _non_finite(data, where)
    if bad is not None:
        raise ConfigError(f"{bad[0]}: must be a finite number (got {bad[1]!r})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, model)) from None


def _non_finite(data: Any, where: str) -> tuple[str, float] | None:
    """``(path, value)`` of the first infinite or NaN float in ``data`` (YAML ``.inf``,
    ``.nan``), or None: no hermes field takes one."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (where or "scenario", data)
    if isinstance(data, Mapping):
        for k, v in data.items():
            hit = _non_finite(v, f"{where}.{k}" if where else str(k))
            if hit is not None:
                return hit
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            hit = _non_finite(v, f"{where}[{i}]")
            if hit is not None:
                return hit
    return None


def _close(word: str, names: list[str]) -> str | None:
    """The one name a typo most likely meant (case-insensitive, difflib ratio >= 0.75:
    ``max_num_seq`` -> ``max_num_seqs``, ``memory_gib`` -> ``memory_GiB``, but not ``tpu`` ->
    ``gpu``), or None."""
    lower = {n.lower(): n for n in names}
    hit = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.75)
    return lower[hit[0]] if hit else None


def format_validation_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """Render pydantic errors as ``path: message (got value)`` lines; an unknown field lists
    the allowed ones when ``model`` is given and the field is at its top level."""
    lines = []
    for err in exc.errors():
        path = where
        if not path and not err["loc"]:
            path = "scenario"
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            close = (_close(str(err["loc"][-1]), list(model.model_fields))
                     if model is not None and len(err["loc"]) == 1 else None)
            if close:
                msg += f" (did you mean '{close}'?)"
            if model is not None and len(err["loc"]) == 1:
                msg += ("; allowed: " + ", ".join(sorted(model.model_fields)) if model.model_fields
                        else "; this component takes no fields")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        got = err.get("input")
        quiet = err["type"] in ("missing", "extra_forbidden") or isinstance(got, (dict, list))
        suffix = "" if quiet else f" (got {got!r})"
        lines.append(f"{path}: {msg}{suffix}")
    # one line, as the CLI promises: the first problem, and how many more there are
    more = len(lines) - 1
    return lines[0] + (f" (and {more} more problem{'s' if more > 1 else ''} in this section)" if more else "")


def _csv_env(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


def _hook_kinds() -> dict[str, str]:
    return {kind: f"hermes_register_{kind}" for kind in KINDS}


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group="hermes")
    # Load order never decides results: sort by name (components are sorted too).
    return sorted(eps, key=lambda ep: (ep.name, ep.value))


def load_plugins(extra: Iterable[tuple[str, object]] = (), *, entry_points: bool = True,
                 broken: list[tuple[PluginInfo, str]] | None = None) -> Registry:
    """Load plugins and return a frozen :class:`Registry`.

    ``extra`` adds in-process plugins as ``(name, module_or_object)`` pairs (tests and
    notebooks; pass the result to :func:`hermes_core.api.run` as ``registry=``); one that is
    also installed is loaded once. Entry points are filtered by
    ``HERMES_LOAD_PLUGINS`` / ``HERMES_DISABLE_PLUGINS``.

    Raises :class:`PluginLoadError` as ``Error loading hermes plugin 'x' (dist ver): ...``,
    with how to disable it. With ``broken`` (a list), a plugin that fails is left out instead
    (none of its components registered) and ``(info, error)`` is appended: ``hermes
    plugins`` lists every plugin that way, even when one is broken.
    """
    pm = pluggy.PluginManager("hermes")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    only = _csv_env("HERMES_LOAD_PLUGINS")
    disabled = _csv_env("HERMES_DISABLE_PLUGINS") or set()

    def fail(info: PluginInfo, what: str, exc: BaseException | None = None) -> None:
        if broken is None:
            raise PluginLoadError(f"Error loading hermes plugin {info.describe()}: {what}" + _disable_hint(info)) from exc
        broken.append((info, what))

    if entry_points:
        for ep in _entry_points():
            if ep.name in disabled or (only is not None and ep.name not in only):
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "unknown", dist.version if dist else "unknown")
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
                fail(info, f"{type(exc).__name__}: {exc}", exc)
                continue
            if pm.is_registered(obj):
                continue
            try:
                pm.register(obj, name=ep.name)
            except (pluggy.PluginValidationError, ValueError) as exc:
                fail(info, str(exc))
                continue
            infos[ep.name] = info
    for name, obj in extra:
        if pm.is_registered(obj):  # also installed: the entry point already brought it in
            continue
        info = PluginInfo(name, "<in-process>", "-")
        try:
            pm.register(obj, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            fail(info, str(exc))
            continue
        infos[name] = info
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or str(exc.plugin)
            info = infos.pop(name, None) or PluginInfo(name, "unknown", "unknown")
            fail(info, str(exc))
            pm.unregister(exc.plugin)

    registry = Registry()
    failed: set[str] = set()
    for kind, hook_name in _hook_kinds().items():
        hook = getattr(pm.hook, hook_name)
        for impl in sorted(hook.get_hookimpls(), key=lambda i: i.plugin_name):
            if impl.plugin_name in failed:
                continue
            info = infos[impl.plugin_name]
            try:
                impl.function(register=Register(registry, kind, info))
            except Exception as exc:  # noqa: BLE001
                if broken is None and isinstance(exc, PluginLoadError):
                    raise PluginLoadError(str(exc) + _disable_hint(info)) from None
                what = str(exc) if isinstance(exc, PluginLoadError) else f"{hook_name} raised {type(exc).__name__}: {exc}"
                fail(info, what, exc)
                failed.add(impl.plugin_name)
                registry._drop_plugin(impl.plugin_name)
    for info in infos.values():
        if info.name not in failed:
            registry._plugins.setdefault(info.name, info)
    registry.freeze()
    registry._pm = pm
    return registry


def _disable_hint(info: PluginInfo) -> str:
    if info.distribution == "<in-process>":
        return ""
    return (f" (to run without it: HERMES_DISABLE_PLUGINS={info.name}; `hermes plugins` lists every plugin "
            "and what is wrong with it)")


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_plugins()
    return _DEFAULT


def plugins_json(registry: Registry) -> str:
    """``hermes plugins --json`` output."""
    return json.dumps(registry.plugins(), indent=2)


def model_path(registry: Registry, name_or_path: str, where: str, base_dir: Path | None = None) -> Path:
    """Resolve a model name from the catalog (its short name, or the Hugging Face repo id it
    was copied from, e.g. ``meta-llama/Llama-3.1-70B-Instruct``), or a path to a ``config.json`` (or its folder),
    relative to ``base_dir`` (default: the current directory). Raises
    :class:`UnknownComponentError` listing the catalog, or :class:`ConfigError` for a
    missing file."""
    p = Path(name_or_path).expanduser()
    if base_dir is not None and not p.is_absolute() and (base_dir / p).exists():
        p = base_dir / p
    if p.is_dir():
        p = p / "config.json"
    if p.suffix == ".json" or p.exists():
        if not p.is_file():
            raise ConfigError(f"{where}: model config file '{p}' does not exist")
        return p
    key = name_or_path.lower()
    for n in registry.names("models"):
        comp = registry.get("models", n)
        if n.lower() == key or (comp.source and comp.source.lower() == key):  # a Hugging Face repo id
            return Path(comp.obj)
    return Path(registry.get("models", name_or_path, where=where).obj)
