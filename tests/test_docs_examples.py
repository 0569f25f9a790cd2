"""The documentation's examples run, and every scenario field is documented.

* Every ``$ hermes run ...`` line in a ```console block of docs/getting-started.md runs (with a
  shorter workload, so each takes a few seconds) and exits 0, or, where the doc shows an
  ``error:`` line, exits 2 with that message. Its summary.json has exactly the keys the doc's
  table lists.
* Every ```python block of docs/getting-started.md runs.
* Every complete scenario in a ```yaml block of docs/scenarios.md runs.
* Every field of the core config models and of every first-party component's config model
  (and the models nested in them) is named in docs/scenarios.md, as are the component names
  and the GPU presets. A new field without documentation fails here.
* The README keeps the two install commands CI relies on.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from hermes_core.config import ClientConfig, ScenarioConfig, SLOConfig
from hermes_core.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GETTING_STARTED = DOCS / "getting-started.md"
SCENARIOS = DOCS / "scenarios.md"
FIRST_PARTY = "hermes-sim"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.S | re.M)


def _blocks(path: Path, lang: str) -> list[str]:
    return [m.group(2) for m in _FENCE.finditer(path.read_text()) if m.group(1) == lang]


def _console_commands(path: Path) -> list[tuple[str, list[str]]]:
    """``(command, output lines)`` for every ``$ `` line of the file's console blocks."""
    out: list[tuple[str, list[str]]] = []
    for body in _blocks(path, "console"):
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
    return out


HERMES_RUNS = [(c, o) for c, o in _console_commands(GETTING_STARTED) if c.startswith("hermes run")]


def _documented_summary_keys() -> set[str]:
    """Keys in the first column of the summary.json table of getting-started.md."""
    text = GETTING_STARTED.read_text()
    table = text[text.index("| key | meaning |"):]
    table = table[: table.index("\n\n")]
    keys: set[str] = set()
    for row in table.splitlines()[2:]:
        keys.update(re.findall(r"`([a-z_0-9]+)`", row.split("|")[1]))
    return keys


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding a copy of examples/, where relative paths in the docs resolve."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def _shorten(args: list[str]) -> list[str]:
    """Overrides that keep a documented command to a few seconds of wall time."""
    scenario = next((a for a in args[2:] if a.endswith(".yaml")), None)
    data = yaml.safe_load((ROOT / scenario).read_text()) if scenario else {"workload": {"type": "azure_trace"}}
    if data["workload"]["type"] == "closed_loop":
        return ["--set", "workload.num_requests=64"]
    if "workload.duration_s=" in " ".join(args):
        return []
    return ["--set", "workload.duration_s=30"]


def test_getting_started_has_hermes_run_examples():
    assert len(HERMES_RUNS) >= 8


@pytest.mark.parametrize("command,shown", HERMES_RUNS, ids=[c for c, _ in HERMES_RUNS])
def test_getting_started_cli_example(command: str, shown: list[str], workdir: Path):
    args = shlex.split(command)
    assert args[:2] == ["hermes", "run"]
    rest = args[2:]
    out_dir = workdir / "out-test"
    if "-o" in rest:
        i = rest.index("-o")
        del rest[i:i + 2]
    cmd = [sys.executable, "-m", "hermes_core.cli", "run", *rest, *_shorten(args), "-q", "-o", str(out_dir)]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    error = next((line for line in shown if line.startswith("error:")), None)
    if error is not None:
        assert proc.returncode == 2, proc.stderr
        assert " ".join(proc.stderr.split()) == " ".join(error.split())
        return
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out_dir / "summary.json").read_text())
    documented = _documented_summary_keys()
    optional = {"goodput", "request_types", "transfers"}
    assert set(summary) <= documented, f"undocumented summary.json keys: {set(summary) - documented}"
    assert documented - optional <= set(summary), f"documented keys missing: {documented - optional - set(summary)}"
    assert set(summary["requests"]) == {"total", "completed", "dropped", "unfinished", "dropped_reasons"}
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(summary[metric]) == {"mean", "std", "p50", "p90", "p95", "p99"}
    assert set(summary["throughput"]) == {"requests_per_s", "input_tokens_per_s", "output_tokens_per_s", "total_tokens_per_s"}
    assert (out_dir / "requests.csv").read_text().startswith("id,replica,status,")


def test_getting_started_python_examples(workdir: Path):
    blocks = _blocks(GETTING_STARTED, "python")
    assert len(blocks) >= 3
    for i, code in enumerate(blocks):
        script = workdir / f"block{i}.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, f"python block {i} of getting-started.md failed:\n{code}\n{proc.stderr}"
        assert proc.stdout.strip()


def test_scenarios_yaml_examples_run(workdir: Path):
    scenarios = [b for b in _blocks(SCENARIOS, "yaml") if "clients" in (yaml.safe_load(b) or {})]
    assert scenarios
    for i, text in enumerate(scenarios):
        path = workdir / f"scenario{i}.yaml"
        path.write_text(text)
        proc = subprocess.run([sys.executable, "-m", "hermes_core.cli", "run", str(path), "-q", "-o",
                               str(workdir / f"out{i}")], cwd=workdir, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr


def test_documented_summary_keys_are_described_in_metrics():
    metrics = (DOCS / "metrics.md").read_text()
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "benchmark_duration_s", "requests_per_s",
                "input_tokens_per_s", "output_tokens_per_s", "requests_meeting_slo", "busy_fraction",
                "kv_blocks", "kv_peak_blocks_used", "kv_peak_usage", "tokens_computed", "max_batch_size",
                "usd_per_hour", "usd", "usd_per_million_output_tokens", "usd_per_million_input_tokens",
                "output_tokens_per_usd", "tokens_per_usd", "goodput_requests_per_usd", "average_power_W",
                "energy_J", "joules_per_output_token", "joules_per_token"):
        assert f"`{key}`" in metrics or key in metrics, key


# -- every config field is documented ---------------------------------------------------------
def _nested_models(annotation) -> list[type[BaseModel]]:
    """BaseModel classes inside a field annotation (``X``, ``X | None``, ``list[X]`` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found += _nested_models(arg)
    return found


def _with_nested(models: list[type[BaseModel]]) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    todo = list(models)
    while todo:
        m = todo.pop(0)
        if m in out:
            continue
        out.append(m)
        for f in m.model_fields.values():
            todo += _nested_models(f.annotation)
    return out


def _config_models() -> list[tuple[str, type[BaseModel]]]:
    from hermes_plugins.devices import Efficiency

    reg = default_registry()
    roots: list[tuple[str, type[BaseModel]]] = [
        ("ScenarioConfig", ScenarioConfig), ("ClientConfig", ClientConfig), ("SLOConfig", SLOConfig),
        ("gpu Efficiency", Efficiency),
    ]
    for kind in ("stages", "devices", "batching_policies", "workloads", "routers", "memory_tiers", "cluster_nodes",
                 "links"):
        for name in reg.names(kind):
            comp = reg.get(kind, name)
            if comp.plugin.distribution == FIRST_PARTY and comp.config_model is not None:
                roots.append((f"{kind}:{name}", comp.config_model))
    out: list[tuple[str, type[BaseModel]]] = []
    for label, model in roots:
        for m in _with_nested([model]):
            if all(m is not seen for _, seen in out):
                out.append((label if m is model else f"{label} > {m.__name__}", m))
    return out


CONFIG_FIELDS = [
    (label, model.__name__, field) for label, model in _config_models() for field in model.model_fields
]


@pytest.mark.parametrize("label,model,field", CONFIG_FIELDS, ids=[f"{l}.{f}" for l, _, f in CONFIG_FIELDS])
def test_config_field_documented(label: str, model: str, field: str):
    text = SCENARIOS.read_text()
    assert f"`{field}`" in text, f"{model}.{field} ({label}) is not documented in docs/scenarios.md"


def test_config_models_cover_the_documented_kinds():
    names = {m for _, m, _ in CONFIG_FIELDS}
    for model in ("ScenarioConfig", "ClientConfig", "SLOConfig", "LLMServingConfig", "Precision", "Parallelism",
                  "GPUConfig", "Efficiency", "LengthDist", "ChunkedPrefillConfig", "ContinuousConfig",
                  "StaticConfig"):
        assert model in names, model


def test_first_party_components_and_presets_documented():
    from hermes_plugins.devices import ALIASES, PRESETS

    text = SCENARIOS.read_text()
    reg = default_registry()
    for kind in ("stages", "devices", "batching_policies", "workloads", "routers", "memory_tiers", "models",
                 "cluster_nodes", "links"):
        for name in reg.names(kind):
            if reg.get(kind, name).plugin.distribution == FIRST_PARTY:
                assert f"`{name}`" in text, f"{kind} '{name}' is not documented in docs/scenarios.md"
    for name in [*PRESETS, *ALIASES]:
        assert f"`{name}`" in text, f"GPU preset '{name}' is not documented in docs/scenarios.md"


def test_readme_install_commands():
    readme = (ROOT / "README.md").read_text()
    assert "pip install . && hermes run" in readme
    assert 'pip install ".[test]" && python -m pytest -q' in readme
