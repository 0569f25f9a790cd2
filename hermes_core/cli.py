"""The ``hermes`` command line: a thin layer over :mod:`hermes_core.api`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import api
from .errors import HermesError
from .plugins import default_registry


def _fail(exc: Exception) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(2)


class _Group(click.Group):
    """Adds plugin commands (``hermes_register_commands``) on first use and turns
    :class:`HermesError` into one error line and exit status 2."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if not _Group._plugins_added:
            _Group._plugins_added = True
            try:
                default_registry().register_commands(self)
            except HermesError as exc:
                _fail(exc)

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        if name not in self.commands:
            self._add_plugin_commands()
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HermesError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            # outputs are written to temporary files and renamed, so none is left truncated
            Console(stderr=True).print("[bold red]interrupted[/]", highlight=False)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="hermes-sim")
def main() -> None:
    """hermes: simulate LLM serving on heterogeneous hardware."""


def _check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` (for outputs) now, before a long simulation, or raise
    :class:`ConfigError` naming the option."""
    from .errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create folder '{folder}': {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{option}: folder '{folder}' is not writable")


def default_scenario_path() -> Path:
    """The embedded default scenario (Llama-3.1-70B TP8 on 8xH100, chunked prefill, first
    minutes of the Azure 2023 conversation trace)."""
    from importlib import resources

    return Path(str(resources.files("hermes_plugins") / "scenarios" / "default.yaml"))


def _fmt(v) -> str:
    """One decimal, or three significant digits below 1 (sub-millisecond transfers)."""
    if v is None:
        return "-"
    return f"{v:.3g}" if 0 < abs(v) < 1 else f"{v:,.1f}"


def _bytes(n: float) -> str:
    """Bytes in SI units (kB = 10^3 B, MB = 10^6 B, GB = 10^9 B)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def _cost_line(c: dict) -> str:
    """``cost: $25.60/h, 169,691 output tokens per $, 0.882 J per token (5.49 kW)``; a figure
    that is unknown says why."""
    price = (f"${c['usd_per_hour']:,.2f}/h" if c["usd_per_hour"] is not None
             else f"price unknown for {len(c['missing'])} device(s)")
    parts = [price]
    per_usd = c["output_tokens_per_usd"]
    if per_usd is not None:
        parts.append(f"{per_usd / 1e6:.2f} M output tokens per $" if per_usd >= 1e6
                     else f"{per_usd:,.0f} output tokens per $")
    if c["average_power_W"] is None:
        parts.append(f"power unknown for {len(c['missing_power'])} device(s)")
    elif c["joules_per_token"] is not None:
        parts.append(f"{c['joules_per_token']:.3g} J per token ({c['average_power_W'] / 1e3:,.2f} kW)")
    return "cost: " + ", ".join(parts)


def print_summary(console: Console, s: dict) -> None:
    """Render the human-readable summary table."""
    r = s["requests"]
    console.print(
        f"[bold]{s['scenario']}[/]: {r['completed']:,} of {r['total']:,} requests completed, "
        f"{r['dropped']:,} dropped, {r.get('unfinished', 0):,} unfinished; "
        f"{s['simulated_time_s']:,.1f} s simulated in {s['wall_time_s']:.2f} s wall"
    )
    if r["dropped_reasons"]:
        console.print("dropped: " + ", ".join(f"{k} ({v})" for k, v in r["dropped_reasons"].items()))
    t = Table(title="latency (ms)")
    t.add_column("metric")
    for c in ("mean", "p50", "p90", "p95", "p99"):
        t.add_column(c, justify="right")
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        d = s[name]
        t.add_row(name.removesuffix("_ms").upper(), *[_fmt(d[c]) for c in ("mean", "p50", "p90", "p95", "p99")])
    console.print(t)
    th = s["throughput"]
    console.print(
        f"throughput: {th['requests_per_s']:.2f} req/s, {th['input_tokens_per_s']:,.0f} input tok/s, "
        f"{th['output_tokens_per_s']:,.0f} output tok/s; preemptions: {s['preemptions']}"
    )
    if "goodput" in s:
        console.print(f"goodput: {s['goodput']['requests_per_s']:.2f} req/s within {s['goodput']['slo']}")
    if "cost" in s:
        console.print(_cost_line(s["cost"]))
    types = s.get("request_types")
    if types:
        rt = Table(title="request types (ms)")
        for c in ("type", "requests", "done", "TTFT p50", "TTFT p99", "E2E p50", "E2E p99"):
            rt.add_column(c, justify="left" if c == "type" else "right")
        st = Table(title="steps (ms, mean over completed calls)")
        for c in ("type", "step", "calls", "transfer", "queue", "service", "service p99"):
            st.add_column(c, justify="left" if c in ("type", "step") else "right")
        for name, t in types.items():
            q = t["requests"]
            rt.add_row(name, f"{q['total']:,}", f"{q['completed']:,}", _fmt(t["ttft_ms"]["p50"]),
                       _fmt(t["ttft_ms"]["p99"]), _fmt(t["e2e_ms"]["p50"]), _fmt(t["e2e_ms"]["p99"]))
            for step in t["steps"]:
                st.add_row(name, step["step"], f"{step['calls']:,}", _fmt(step["transfer_ms"]["mean"]),
                           _fmt(step["queue_ms"]["mean"]), _fmt(step["service_ms"]["mean"]),
                           _fmt(step["service_ms"]["p99"]))
        console.print(rt)
        console.print(st)
    tr = s.get("transfers")
    if tr:
        if tr.get("modelled"):
            busiest = tr["links"][0] if tr["links"] else None
            line = f"transfers: {tr['transfers']:,} over the cluster, {_bytes(tr['bytes'])} in {tr['flows']:,} flows"
            if busiest:
                line += f"; busiest link {busiest['link']} {busiest['utilisation'] * 100:.1f} % utilised"
            console.print(line)
        if tr.get("note"):
            n = tr.get("moves_not_modelled", 0)
            console.print(f"transfers: {tr['note']}" + (f" ({n:,} such moves)" if n else ""))
    groups: dict[tuple, list[str]] = {}
    for d in s.get("utilisation", []):
        key = (d.get("replica") or d["device"].rsplit("/", 1)[0], d["type"], d["busy_fraction"], d["mfu"], d["mbu"])
        groups.setdefault(key, []).append(d["device"])
    for (replica, typ, busy, mfu, mbu), devs in groups.items():
        console.print(
            f"{replica}: {len(devs)} x {typ}, each busy {busy * 100:.1f} %, MFU {mfu * 100:.1f} %, MBU {mbu * 100:.1f} %"
        )


@main.command("run")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a scenario field, e.g. --set clients.0.replicas=2 (repeatable).")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False), default="hermes-out",
              show_default=True, help="Where summary.json and requests.csv are written.")
@click.option("--seed", type=int, default=None, help="Override the scenario seed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), default=None,
              help="Also write a Chrome trace-event JSON file (open it in ui.perfetto.dev).")
@click.option("--print-config", is_flag=True,
              help="Print the scenario as it would run (every --set applied, validated) as YAML, and exit.")
def run_cmd(scenario, overrides, output_dir, seed, quiet, trace_file, print_config) -> None:
    """Simulate SCENARIO (a YAML file; the embedded default when omitted)."""
    path = Path(scenario) if scenario else default_scenario_path()
    # the embedded default lives in the package: resolve --set paths against the cwd
    sc = api.load_scenario(path, overrides, base_dir=None if scenario else Path.cwd())
    if print_config:
        import yaml

        api.check_scenario(sc)
        raw = {**sc.raw, **({"seed": seed} if seed is not None else {})}
        click.echo(yaml.safe_dump(raw, sort_keys=False), nl=False)
        return
    _check_writable(Path(output_dir), "--output-dir")
    if trace_file is not None:
        _check_writable(Path(trace_file).parent, "--trace")
    console = Console(stderr=True)
    if quiet:
        result = api.run(sc, seed=seed, trace=trace_file is not None)
    else:
        # The bar starts with the first progress report, after the scenario is built, so
        # that a configuration error prints alone.
        bar = Progress(TextColumn("[bold]simulating"), BarColumn(), TextColumn("{task.fields[label]}"),
                       TimeElapsedColumn(), console=console, transient=True)
        task = None

        def progress(now: float, done: int, expected: int) -> None:
            nonlocal task
            if task is None:
                bar.start()
                task = bar.add_task("run", total=None, label="")
            of = f"/{expected:,}" if expected else ""
            bar.update(task, completed=done, total=expected or None,
                       label=f"{done:,}{of} requests done, t={now:,.1f} s simulated")

        try:
            result = api.run(sc, seed=seed, progress=progress, trace=trace_file is not None)
        finally:
            if task is not None:
                bar.stop()
    out = result.write(output_dir)
    written = [out / "summary.json", out / "requests.csv"] + ([out / "steps.csv"] if "request_types" in result.summary else [])
    if trace_file is not None:
        written.append(result.write_trace(trace_file))
    if not quiet:
        print_summary(Console(), result.summary)
        Console().print("wrote " + ", ".join(str(p) for p in written[:-1]) + f" and {written[-1]}")


def component_fields(config_model) -> list[dict]:
    """``[{name, type, default}]`` of a component's config model (``default`` is
    ``"required"`` for a field without one)."""
    from pydantic_core import PydanticUndefined

    out = []
    for name, f in (config_model.model_fields if config_model is not None else {}).items():
        if f.default is not PydanticUndefined:
            default = f.default
        elif f.default_factory is not None:
            default = f.default_factory()
        else:
            default = "required"
        typ = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        out.append({"name": name, "type": typ, "default": default})
    return out


def _presets(obj) -> list[str]:
    """Preset names of a device class: the ``PRESETS`` mapping of its module, if any."""
    mod = sys.modules.get(getattr(obj, "__module__", ""), None)
    presets = getattr(mod, "PRESETS", None)
    return sorted(presets) if isinstance(presets, dict) else []


def _components_cmd(as_json: bool) -> None:
    from .plugins import KINDS

    reg = default_registry()
    data: dict = {}
    for kind in KINDS:
        for name in reg.names(kind):
            c = reg.get(kind, name)
            entry = {"plugin": c.plugin.name, "distribution": c.plugin.distribution, "source": c.source}
            if kind == "models":
                entry["path"] = str(c.obj)
            else:
                entry["fields"] = component_fields(c.config_model)
                if kind == "devices" and _presets(c.obj):
                    entry["presets"] = _presets(c.obj)
            data.setdefault(kind, {})[name] = entry
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console()
    for kind, comps in data.items():
        t = Table(title=kind)
        for col in ("name", "distribution", "source" if kind == "models" else "fields (default)"):
            t.add_column(col, overflow="fold")
        for name, e in comps.items():
            if kind == "models":
                t.add_row(name, e["distribution"], e["source"])
                continue
            fields = ", ".join(f"{f['name']} (required)" if f["default"] == "required" else f"{f['name']}={f['default']!r}"
                               for f in e["fields"]) or "none"
            if e.get("presets"):
                fields = f"presets: {', '.join(e['presets'])}; " + fields
            t.add_row(name, e["distribution"], fields)
        console.print(t)


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--components", is_flag=True,
              help="List every component (stages, devices with their presets, policies, workloads, routers, "
                   "cluster node and link types, models) with its config fields and defaults, or its source.")
def plugins_cmd(as_json: bool, components: bool) -> None:
    """List installed plugins and the components each registers (a plugin that fails to
    load is listed with its error; the others still load)."""
    from .plugins import load_plugins

    if components:
        _components_cmd(as_json)
        return

    broken: list = []
    reg = load_plugins(broken=broken)
    data = reg.plugins()
    for info, error in broken:
        data.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "components": {}, "error": error})
    data.sort(key=lambda p: p["name"])
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    t = Table(title="hermes plugins")
    for c in ("plugin", "distribution", "version", "components"):
        t.add_column(c)
    for p in data:
        comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in p["components"].items())
        if "error" in p:
            comps = f"[bold red]failed to load[/]: {p['error']}"
        t.add_row(p["name"], p["distribution"], p["version"], comps)
    Console().print(t)
    if broken:
        names = ",".join(info.name for info, _ in broken)
        Console(stderr=True).print(f"{len(broken)} plugin(s) failed to load; every other command refuses to run "
                                   f"until fixed or disabled: HERMES_DISABLE_PLUGINS={names}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    main()
