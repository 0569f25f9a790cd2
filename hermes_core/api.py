"""The Python API: load a scenario, run it, read the results.

>>> from hermes_core import api
>>> result = api.run(api.load_scenario("examples/azure_conv_llama70b_tp8_h100.yaml"))  # doctest: +SKIP
>>> result.summary["ttft_ms"]["p99"]  # doctest: +SKIP

The CLI (:mod:`hermes_core.cli`) is a thin layer over these functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ScenarioConfig, apply_overrides, load_yaml, parse_scenario
from .engine import PRIORITY_ARRIVAL, Simulator
from .errors import ConfigError, HermesError
from .metrics import MetricsCollector, request_rows, write_requests_csv
from .plugins import Registry, default_registry
from .router import Router
from .stage import Stage, StageContext
from .topology import Topology
from .workload import Request, Workload, make_rng


@dataclass
class Scenario:
    """A validated scenario: the core config, the raw dict (component sections are
    validated when built) and the folder relative paths are resolved against."""

    config: ScenarioConfig
    raw: dict[str, Any]
    base_dir: Path


def load_scenario(source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (),
                  base_dir: str | Path | None = None) -> Scenario:
    """Load a scenario from a YAML file path or a plain dict, apply ``--set``-style
    ``overrides`` and validate the core fields. Raises :class:`ConfigError`."""
    if isinstance(source, Mapping):
        data = dict(source)
        root = Path(base_dir) if base_dir else Path.cwd()
    else:
        data = load_yaml(source)
        root = Path(base_dir) if base_dir else Path(source).resolve().parent
    data = apply_overrides(data, overrides)
    return Scenario(parse_scenario(data), data, root)


@dataclass
class Result:
    """What a run produced: ``summary`` (the content of ``summary.json``) and ``requests``
    (one :class:`Request` per submitted request, with its timings)."""

    summary: dict[str, Any]
    requests: list[Request] = field(repr=False)

    def request_rows(self) -> list[dict[str, Any]]:
        """Per-request records as dicts (the rows of ``requests.csv``)."""
        return list(request_rows(self.requests))

    def write(self, output_dir: str | Path) -> Path:
        """Write ``summary.json`` and ``requests.csv`` into ``output_dir`` (created)."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        write_requests_csv(out / "requests.csv", self.requests)
        return out


class Replica:
    """One data-parallel copy of a client: a pipeline of stages on its own devices. A
    request enters the first stage; each stage hands it to the next when done with it; a
    dropped request leaves the pipeline at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[Stage] = []
        self.on_done: Callable[[Request], None] = lambda req: None

    def submit(self, req: Request) -> None:
        self.stages[0].submit(req)

    def forward(self, index: int) -> Callable[[Request], None]:
        """The ``on_done`` callback of stage ``index``."""
        def done(req: Request) -> None:
            if req.dropped_reason or index + 1 == len(self.stages):
                self.on_done(req)
            else:
                self.stages[index + 1].submit(req)
        return done


class Client:
    """Replicas of one stage pipeline behind a router. Counts outstanding requests per
    replica (submitted, not yet out of the last stage)."""

    def __init__(self, name: str, replicas: list[Replica], router: Router):
        self.name = name
        self.replicas = replicas
        self.router = router
        self._outstanding = [0] * len(replicas)
        self._of: dict[int, int] = {}

    @property
    def stages(self) -> list[Stage]:
        """Every stage of every replica."""
        return [s for r in self.replicas for s in r.stages]

    def submit(self, req: Request) -> None:
        i = self.router.choose(req, self._outstanding) if len(self.replicas) > 1 else 0
        self._outstanding[i] += 1
        self._of[req.id] = i
        self.replicas[i].submit(req)

    def finished(self, req: Request) -> None:
        self._outstanding[self._of.pop(req.id)] -= 1


def _build_client(idx: int, cc, sim: Simulator, registry: Registry, metrics: MetricsCollector,
                  seed: int, on_done: Callable[[Request], None], base_dir: Path) -> Client:
    where = f"clients[{idx}]"
    specs = [(f"{where}.stage", cc.stage)] if cc.stage is not None else [
        (f"{where}.stages[{j}]", spec) for j, spec in enumerate(cc.stages or [])
    ]
    validated = [(w, *registry.validate("stages", spec, w)) for w, spec in specs]
    needed = max(int(comp.obj.devices_needed(cfg)) for _, comp, cfg in validated)
    n_dev = cc.num_devices or needed
    if n_dev < needed:
        raise ConfigError(f"{where}.num_devices: the stages need {needed} devices, got {n_dev}")
    dev_comp, dev_cfg = registry.validate("devices", cc.device, f"{where}.device")
    router = registry.build("routers", cc.router, f"{where}.router")
    replicas = []
    for r in range(cc.replicas):
        rname = f"{cc.name}/{r}"
        replica = Replica(rname)
        replica.on_done = on_done
        devices = [dev_comp.obj(dev_cfg) for _ in range(n_dev)]
        names = [f"{rname}/dev{j}" for j in range(n_dev)]
        bw = devices[0].link_bandwidth
        lat = devices[0].link_latency
        if cc.interconnect is not None:
            if cc.interconnect.bandwidth_GBps is not None:
                bw = cc.interconnect.bandwidth_GBps * 1e9
            if cc.interconnect.latency_us is not None:
                lat = cc.interconnect.latency_us * 1e-6
        topo = Topology.single_switch(names, bw, lat, switch=f"{rname}/switch")
        for j, (w, comp, cfg) in enumerate(validated):
            sname = rname if len(validated) == 1 else f"{rname}/{comp.name}{j}"
            ctx = StageContext(
                sim=sim, name=sname, devices=devices, device_names=names, topology=topo,
                registry=registry, rng=make_rng(seed, "client", cc.name, str(r), str(j)),
                on_done=replica.forward(j), metrics=metrics, where=w, base_dir=base_dir,
            )
            replica.stages.append(comp.obj(cfg, ctx))
        replicas.append(replica)
    return Client(cc.name, replicas, router)


def run(scenario: Scenario | str | Path | Mapping[str, Any], *, seed: int | None = None,
        registry: Registry | None = None, progress: Callable[[float, int, int], None] | None = None) -> Result:
    """Simulate ``scenario`` and return a :class:`Result`.

    ``seed`` overrides the scenario's seed. ``progress(sim_time_s, requests_done,
    requests_expected)`` is called every few thousand events. Same scenario and seed give
    identical results (except ``wall_time_s``). Raises :class:`~hermes_core.HermesError`
    subclasses for bad input.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    cfg = scenario.config
    seed = cfg.seed if seed is None else seed
    registry = registry or default_registry()
    t0 = time.perf_counter()
    sim = Simulator()
    metrics = MetricsCollector()

    wl_spec = dict(cfg.workload)
    target = wl_spec.pop("client", None)
    names = [c.name for c in cfg.clients]
    if len(set(names)) != len(names):
        raise ConfigError(f"clients: client names must be unique (got {names})")
    if target is None:
        if len(cfg.clients) > 1:
            raise ConfigError(f"workload.client: several clients are defined; name one of {names}")
        target = names[0]
    if target not in names:
        raise ConfigError(f"workload.client: unknown client '{target}'; defined: {names}")
    wl_comp, wl_cfg = registry.validate("workloads", wl_spec, "workload")
    try:
        workload: Workload = wl_comp.obj(wl_cfg, rng=make_rng(seed, "workload"), base_dir=scenario.base_dir)
    except HermesError as exc:  # name the YAML path: "azure_trace.path: ..." -> "workload.path: ..."
        msg = str(exc)
        prefix = f"{wl_comp.name}."
        if msg.startswith(prefix):
            raise type(exc)("workload." + msg[len(prefix):]) from None
        raise

    submitted = 0
    warmup_submitted = 0
    clients: dict[str, Client] = {}

    def on_done(req: Request) -> None:
        metrics.request_done(req)
        clients[target].finished(req)
        workload.on_request_done(req)

    for i, cc in enumerate(cfg.clients):
        clients[cc.name] = _build_client(i, cc, sim, registry, metrics, seed, on_done, scenario.base_dir)

    def submit(req: Request) -> None:
        nonlocal submitted, warmup_submitted
        submitted += 1
        warmup_submitted += req.warmup
        clients[target].submit(req)

    workload.start(sim, submit)
    expected = workload.expected_requests() or 0
    cb = None
    if progress is not None:
        cb = lambda now: progress(now, len(metrics.requests), expected)  # noqa: E731
    sim_end = sim.run(until=cfg.max_time_s or float("inf"), progress=cb)
    if progress is not None:
        progress(sim_end, len(metrics.requests), expected)
    wall = time.perf_counter() - t0

    summary: dict[str, Any] = {"scenario": cfg.name, "seed": seed}
    summary.update(metrics.summary(submitted, cfg.slo.as_dict() if cfg.slo else None, warmup_submitted))
    summary["simulated_time_s"] = sim_end
    summary["wall_time_s"] = wall
    summary["events"] = sim.events_processed
    summary["clients"] = {
        c.name: {s.ctx.name: s.report() for s in c.stages} for c in clients.values()
    }
    summary["utilisation"] = [
        dev for per_stage in summary["clients"].values() for rep in per_stage.values()
        for dev in rep.get("devices", [])
    ]
    reqs = list(metrics.requests)
    seen = {r.id for r in reqs}
    for c in clients.values():
        for s in c.stages:
            for r in getattr(s, "unfinished", lambda: [])():
                if r.id not in seen:
                    reqs.append(r)
    return Result(summary, reqs)
