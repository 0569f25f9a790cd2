"""A third party extends hermes without forking it.

``tests/plugins/hermes_example_plugin`` is a separate distribution (``hermes-example-plugin``)
that registers a device (``example_asic``), a batching policy (``decode_first_fcfs``) and a
control stage (``fan_out``) through the ``hermes`` entry-point group. The first tests pip-install it into a private folder
and run the real ``hermes`` CLI in a child interpreter whose ``PYTHONPATH`` starts with that
folder, so discovery goes through ``importlib.metadata`` exactly as for a user's install.
The rest use the in-process idiom of docs/plugins.md: ``load_plugins(extra=[(name, module)])``.
"""

from __future__ import annotations

import csv

import importlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import hermes_core
from hermes_core import PluginLoadError, api, hookimpl, load_plugins

PLUGIN_DIR = Path(__file__).resolve().parent / "plugins" / "hermes_example_plugin"
PLUGIN_SRC = PLUGIN_DIR / "src"
#: ``ExampleASICConfig.name``'s default: the device name reports show as the device type.
ASIC_NAME = "Example-ASIC-96GB"
#: Llama-3.1-8B's architecture, used when the model catalog lacks ``llama-3.1-8b``.
LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def plugin_version() -> str:
    """The ``version`` in the example plugin's ``pyproject.toml``."""
    text = (PLUGIN_DIR / "pyproject.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


# ---------------------------------------------------------------------------------------
# Installed with pip, used through the CLI in a child interpreter
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """pip-install ``hermes-example-plugin`` into ``<tmp>/site`` and return that folder.

    The source is copied first so the build leaves nothing in the repository. The install
    tries ``--no-build-isolation`` (offline; needs setuptools >= 70.1, or an older setuptools
    plus ``wheel``, in this environment) and falls back to pip's isolated build (which
    fetches setuptools from the package index). Fails with both pip outputs if neither works.
    """
    tmp = tmp_path_factory.mktemp("third_party")
    src = tmp / "hermes_example_plugin"
    shutil.copytree(PLUGIN_DIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
            "--disable-pip-version-check", "--target", str(target)]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    logs = []
    for extra in (["--no-build-isolation"], []):
        shutil.rmtree(target, ignore_errors=True)
        proc = subprocess.run(base + extra + [str(src)], capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode == 0:
            return target
        logs.append(f"$ pip install {' '.join(extra)} ...\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    pytest.fail("could not pip-install tests/plugins/hermes_example_plugin:\n" + "\n".join(logs))


def hermes(site: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m hermes_core.cli ARGS`` with the same interpreter, ``site`` first on
    ``PYTHONPATH`` and no plugin switches unless ``env`` sets them."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("HERMES_LOAD_PLUGINS", "HERMES_DISABLE_PLUGINS")}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    child_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "hermes_core.cli", *args], cwd=cwd, env=child_env,
                          capture_output=True, text=True, timeout=300)


def model_ref(tmp_path: Path) -> str:
    """``llama-3.1-8b`` if the catalog has it, else a ``config.json`` written to ``tmp_path``."""
    if "llama-3.1-8b" in hermes_core.default_registry().names("models"):
        return "llama-3.1-8b"
    path = tmp_path / "llama-3.1-8b" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LLAMA_8B_CONFIG))
    return str(path)


def write_scenario(tmp_path: Path, num_requests: int = 24) -> Path:
    """A small scenario on one ``example_asic`` with the ``decode_first_fcfs`` policy."""
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: example-asic-llama8b
        seed: 7
        workload:
          type: synthetic
          arrival: poisson
          rate_rps: 8
          num_requests: {num_requests}
          isl: {{dist: fixed, value: 300}}
          osl: {{dist: fixed, value: 24}}
        clients:
          - name: llama8b
            device: {{type: example_asic}}
            stage:
              type: llm_serving
              model: {model_ref(tmp_path)}
              max_model_len: 4096
              max_num_seqs: 32
              max_num_batched_tokens: 1024
              batching: {{type: decode_first_fcfs, prefill_chunk: 256}}
        """))
    return path


def test_hermes_plugins_lists_the_installed_plugin(site, tmp_path):
    """`hermes plugins --json` shows the pip-installed plugin: entry-point name, distribution, version and its components."""
    proc = hermes(site, "plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["example"] == {
        "name": "example",
        "distribution": "hermes-example-plugin",
        "version": plugin_version(),
        "components": {"stages": ["fan_out"], "devices": ["example_asic"],
                       "batching_policies": ["decode_first_fcfs"]},
    }
    # First-party plugins come through the same door and are still there.
    assert plugins["gpu"]["components"] == {"devices": ["gpu"]}


def test_scenario_runs_on_the_plugin_components(site, tmp_path):
    """`hermes run` simulates a scenario whose device and policy come only from the plugin; every request completes and utilisation names the ASIC."""
    scenario = write_scenario(tmp_path, num_requests=24)
    proc = hermes(site, "run", str(scenario), "--quiet", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"]["total"] == 24
    assert summary["requests"]["completed"] == 24
    assert summary["requests"]["dropped"] == 0
    assert summary["requests"].get("unfinished", 0) == 0
    assert summary["utilisation"], summary
    assert {d["type"] for d in summary["utilisation"]} == {ASIC_NAME}
    assert all(0 < d["busy_fraction"] <= 1 for d in summary["utilisation"])
    assert (tmp_path / "out" / "requests.csv").is_file()


def test_disabled_plugin_gives_a_helpful_unknown_type_error(site, tmp_path):
    """With HERMES_DISABLE_PLUGINS=example the scenario fails (exit 2) naming the YAML path, what is available and `hermes plugins`."""
    scenario = write_scenario(tmp_path, num_requests=2)
    proc = hermes(site, "run", str(scenario), "--quiet", "-o", "out", cwd=tmp_path,
                  env={"HERMES_DISABLE_PLUGINS": "example"})
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = " ".join(proc.stderr.split())
    assert "clients[0].device.type: unknown device 'example_asic'" in err
    assert "'gpu' (hermes-sim)" in err
    assert "hermes plugins" in err


def test_load_plugins_switch_keeps_only_the_named_plugins(site, tmp_path):
    """HERMES_LOAD_PLUGINS keeps only the named entry points."""
    proc = hermes(site, "plugins", "--json", cwd=tmp_path, env={"HERMES_LOAD_PLUGINS": "example,gpu"})
    assert proc.returncode == 0, proc.stderr
    assert [p["name"] for p in json.loads(proc.stdout)] == ["example", "gpu"]


# ---------------------------------------------------------------------------------------
# In process: "register a plugin for the duration of a test"
# ---------------------------------------------------------------------------------------
@pytest.fixture
def example(monkeypatch):
    """The ``hermes_example_plugin`` module, importable for this test only.

    ``HERMES_DISABLE_PLUGINS=example`` keeps a pip-installed copy (if a developer has one)
    from being loaded a second time through its entry point.
    """
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.setenv("HERMES_DISABLE_PLUGINS", "example")
    monkeypatch.delenv("HERMES_LOAD_PLUGINS", raising=False)
    for name in [m for m in sys.modules if m == "hermes_example_plugin" or m.startswith("hermes_example_plugin.")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("hermes_example_plugin")


def make_plugin(name: str, **hooks) -> types.ModuleType:
    """A throwaway plugin module whose attributes are the given ``@hookimpl`` functions."""
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


def test_in_process_plugin_registers_its_components(example):
    """The in-process idiom: `load_plugins(extra=[(name, module)])` adds the plugin's components to a fresh registry."""
    reg = load_plugins(extra=[("example", example)])
    assert "example_asic" in reg.names("devices") and "gpu" in reg.names("devices")
    assert "decode_first_fcfs" in reg.names("batching_policies")
    comp = reg.get("devices", "example_asic")
    assert comp.obj is example.ExampleASIC and comp.config_model is example.ExampleASICConfig
    assert comp.plugin.name == "example"
    listing = {p["name"]: p for p in reg.plugins()}
    assert listing["example"]["components"] == {
        "stages": ["fan_out"], "devices": ["example_asic"], "batching_policies": ["decode_first_fcfs"]}


def test_in_process_plugin_runs_a_scenario(example, tmp_path):
    """`api.run(..., registry=...)` simulates with a registry that holds an in-process plugin."""
    reg = load_plugins(extra=[("example", example)])
    result = api.run(api.load_scenario(write_scenario(tmp_path, num_requests=12)), registry=reg)
    assert result.summary["requests"]["completed"] == 12
    assert {d["type"] for d in result.summary["utilisation"]} == {ASIC_NAME}


def test_config_is_validated_by_the_plugin_model(example):
    """A component's YAML section is validated by its own model; errors start with the YAML path."""
    reg = load_plugins(extra=[("example", example)])
    _, cfg = reg.validate("devices", {"type": "example_asic", "memory_GiB": 128}, "clients[0].device")
    dev = example.ExampleASIC(cfg)
    assert dev.memory_bytes == 128 * 2**30
    with pytest.raises(hermes_core.ConfigError) as err:
        reg.validate("devices", {"type": "example_asic", "memory_gib": 128}, "clients[0].device")
    assert str(err.value).startswith("clients[0].device.memory_gib: unknown field (did you mean 'memory_GiB'?); allowed: ")
    with pytest.raises(hermes_core.ConfigError, match=r"batching\.prefill_chunk: .*greater than or equal to 1"):
        reg.validate("batching_policies", {"type": "decode_first_fcfs", "prefill_chunk": 0}, "batching")


def test_duplicate_component_names_both_providers(example):
    """Two plugins registering one device name: PluginLoadError naming both."""
    copycat = make_plugin("copycat", hermes_register_devices=lambda register: register("example_asic", example.ExampleASIC))
    with pytest.raises(PluginLoadError) as err:
        load_plugins(extra=[("example", example), ("copycat", copycat)])
    msg = str(err.value)
    assert "devices 'example_asic' is registered twice" in msg
    assert "'copycat'" in msg and "'example'" in msg


def test_duplicate_of_a_first_party_name_names_its_distribution(example):
    """Clashing with a first-party name names hermes-sim and its version too."""
    clash = make_plugin("clash", hermes_register_devices=lambda register: register("gpu", example.ExampleASIC))
    with pytest.raises(PluginLoadError) as err:
        load_plugins(extra=[("clash", clash)])
    assert "devices 'gpu' is registered twice" in str(err.value)
    assert re.search(r"plugin 'gpu' \(hermes-sim \S+\)", str(err.value))
    assert "plugin 'clash' (<in-process> -)" in str(err.value)


def test_hook_that_raises_becomes_a_plugin_load_error():
    """An exception inside a hook becomes `Error loading hermes plugin '<name>' ...: <hook> raised ...`."""
    def hermes_register_devices(register):
        raise RuntimeError("cannot read my datasheet")

    with pytest.raises(PluginLoadError) as err:
        load_plugins(extra=[("broken", make_plugin("broken", hermes_register_devices=hermes_register_devices))])
    assert str(err.value).startswith("Error loading hermes plugin 'broken'")
    assert "hermes_register_devices raised RuntimeError: cannot read my datasheet" in str(err.value)


def test_misspelt_hook_name_is_caught_by_check_pending(example):
    """A misspelt hook (`hermes_register_device`) is refused by check_pending, not silently ignored."""
    typo = make_plugin("typo", hermes_register_device=lambda register: register("x", example.ExampleASIC))
    with pytest.raises(PluginLoadError) as err:
        load_plugins(extra=[("typo", typo)])
    assert "Error loading hermes plugin" in str(err.value)
    assert "typo" in str(err.value) and "hermes_register_device" in str(err.value)


def test_wrong_base_class_is_refused():
    """Registering a class that does not subclass the kind's base class is a PluginLoadError."""
    class NotADevice:
        class Config:
            pass

    bad = make_plugin("bad", hermes_register_devices=lambda register: register("nope", NotADevice))
    with pytest.raises(PluginLoadError, match="not a subclass of hermes_core.HardwareNode"):
        load_plugins(extra=[("bad", bad)])


def test_entry_point_that_fails_to_import(tmp_path, monkeypatch):
    """A distribution whose entry point names a missing module: the error names the plugin,
    its distribution and version. (The dist-info is written by hand: it is what pip writes.)"""
    info = tmp_path / "hermes_broken_plugin-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hermes-broken-plugin\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[hermes]\nbroken = hermes_broken_plugin_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("HERMES_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HERMES_DISABLE_PLUGINS", raising=False)
    with pytest.raises(PluginLoadError) as err:
        load_plugins()
    assert str(err.value).startswith(
        "Error loading hermes plugin 'broken' (hermes-broken-plugin 0.3.0): ModuleNotFoundError: ")
    monkeypatch.setenv("HERMES_DISABLE_PLUGINS", "broken")
    assert "gpu" in load_plugins().names("devices")


# ---------------------------------------------------------------------------------------
# The example components themselves
# ---------------------------------------------------------------------------------------
def hedged_scenario(model: str, num_requests: int, slow: dict | None = None) -> dict:
    """Closed loop, one request at a time, each sent by ``fan_out`` to an A100 (``slow``,
    listed first) and an H100 (``fast``) serving the same model."""
    def llm(name: str, preset: str, **extra) -> dict:
        return {"name": name, "device": {"type": "gpu", "preset": preset},
                "stage": {"type": "llm_serving", "model": model, **extra}}
    return {
        "name": "hedged",
        "workload": {"type": "closed_loop", "concurrency": 1, "num_requests": num_requests, "isl": 1000,
                     "osl": 20, "request_type": "chat"},
        "clients": [{"name": "hedge", "stage": {"type": "fan_out", "clients": ["slow", "fast"]}},
                    llm("slow", "a100", **(slow or {})), llm("fast", "h100")],
        "request_types": {"chat": ["hedge"]},
    }


def test_fan_out_finishes_with_the_first_copy(example, tmp_path):
    """A hedged request (a copy to an A100 and to an H100) completes when the H100's copy
    does, exactly as if the H100 served it alone; the A100's copies run to their end."""
    model, n = model_ref(tmp_path), 6
    reg = load_plugins(extra=[("example", example)])
    hedged = api.run(hedged_scenario(model, n), registry=reg)
    sc = hedged_scenario(model, n)
    plain = api.run({"name": "plain", "workload": {k: v for k, v in sc["workload"].items() if k != "request_type"},
                     "clients": [sc["clients"][2]]}, registry=reg)
    assert hedged.summary["requests"]["completed"] == n
    # closed loop with one request in flight: the H100 is idle whenever a request arrives, so
    # each hedged request's TTFT and E2E are those of the H100 serving it alone
    for h, p in zip(hedged.requests, plain.requests):
        assert h.replica == "fast/0"
        assert h.first_token_time - h.arrival_time == pytest.approx(p.first_token_time - p.arrival_time, rel=1e-9)
        assert h.finish_time - h.arrival_time == pytest.approx(p.finish_time - p.arrival_time, rel=1e-9)
    assert hedged.summary["clients"]["hedge"]["hedge/0"] == {"won": {"slow": 0, "fast": n}, "outstanding": 0}
    # per request: the step and its two copies; the step ends with the fast copy, before the slow one
    for i in range(n):
        step, to_slow, to_fast = (s for s in hedged.steps if s.request_id == i)
        assert (step.step, to_slow.step, to_fast.step) == ("0:hedge", "0:hedge>slow", "0:hedge>fast")
        assert (step.depth, to_slow.depth, to_fast.depth) == (0, 1, 1)
        assert step.ended_s == to_fast.ended_s < to_slow.ended_s
        assert to_slow.status == to_fast.status == "completed"  # no cancellation: the slow copy ends too
    # the slow copies kept the A100 busy: it computed every prompt, as the H100 did
    computed = {c: hedged.summary["clients"][c][f"{c}/0"]["tokens_computed"] for c in ("slow", "fast")}
    assert computed == {"slow": n * (1000 + 19), "fast": n * (1000 + 19)}
    # the stage's per-request value is a requests.csv column
    hedged.write(tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "requests.csv")))
    assert [r["fan_out_winner"] for r in rows] == ["fast"] * n


def test_fan_out_drops_a_request_only_when_every_copy_is_dropped(example, tmp_path):
    """A copy refused at once (inside ``ctx.call``) leaves the race to the other copy; with
    both refused, the request is dropped with the reason and the step named."""
    model = model_ref(tmp_path)
    reg = load_plugins(extra=[("example", example)])
    res = api.run(hedged_scenario(model, 3, slow={"max_model_len": 512}), registry=reg)
    assert res.summary["requests"]["completed"] == 3
    assert res.summary["clients"]["hedge"]["hedge/0"]["won"] == {"slow": 0, "fast": 3}
    assert [s.status for s in res.steps if s.client == "slow"] == ["dropped"] * 3
    sc = hedged_scenario(model, 3, slow={"max_model_len": 512})
    sc["clients"][2]["stage"]["max_model_len"] = 512
    res = api.run(sc, registry=reg)
    assert res.summary["requests"]["dropped"] == 3
    assert res.summary["clients"]["hedge"]["hedge/0"] == {"won": {"slow": 0, "fast": 0}, "outstanding": 0}
    assert all(r.dropped_reason.startswith("exceeds_max_model_len: at step 0:hedge on fast/0: prompt 1000")
               for r in res.requests)


def test_fan_out_targets_are_checked(example):
    """An unknown client in ``clients`` is a ConfigError naming the YAML path."""
    reg = load_plugins(extra=[("example", example)])
    sc = hedged_scenario("llama-3.1-8b", 1)
    sc["clients"][0]["stage"]["clients"] = ["slow", "fsat"]
    with pytest.raises(hermes_core.ConfigError, match=r"clients\[0\]\.stage\.clients\[1\]: unknown client 'fsat'"):
        api.run(sc, registry=reg)


def test_asic_roofline_numbers(example):
    """ExampleASIC's figures (SI units) and its vectorised roofline pricing."""
    dev = example.ExampleASIC(example.ExampleASICConfig())
    assert dev.peak_flops("bf16") == 400e12 and dev.peak_flops("fp8") == 800e12
    assert dev.memory_bytes == 96 * 2**30 and dev.memory_bandwidth == 1.2e12
    assert dev.link_bandwidth == 200e9
    with pytest.raises(ValueError, match="no fp32 matrix unit"):
        dev.peak_flops("fp32")
    m = [0, 1, 4096]
    t = dev.gemm_time(m, 4096, 4096, "bf16")
    assert t.shape == (3,) and t[0] == 0.0
    # m = 1 is memory-bound: the 32 MiB weight read dominates.
    weights = 4096 * 4096 * 2
    assert t[1] == pytest.approx(weights / (1.2e12 * 0.85) + 2e-6, rel=1e-2)
    # m = 4096 is compute-bound.
    assert t[2] == pytest.approx(2 * 4096**3 / (400e12 * 0.7) + 2e-6, rel=1e-6)
    assert dev.gemm_time(m, 4096, 4096, "fp8")[2] < t[2]
    mem = dev.memory_time([0, 1e9])
    assert mem[0] == 0.0 and mem[1] == pytest.approx(1e9 / (1.2e12 * 0.85) + 2e-6)
    att = dev.attention_time([0, 1e12], [0, 1e6], "prefill", "bf16")
    assert att[0] == 0.0 and att[1] == pytest.approx(1e12 / (400e12 * 0.7) + 2e-6)
    with pytest.raises(ValueError, match="phase"):
        dev.attention_time([1.0], [1.0], "verify", "bf16")


def test_decode_first_fcfs_obeys_limits_and_kv_invariants(example):
    """Drive the policy through a whole workload with a small KV cache (so it must preempt)
    and check every step: limits, decodes before prefills, the prefill cap, block counts."""
    from hermes_core import BlockManager, EngineLimits, Request, SchedulerState, Sequence

    chunk, budget, max_seqs = 48, 64, 8
    policy = example.DecodeFirstFCFS(example.DecodeFirstFCFSConfig(prefill_chunk=chunk))
    state = SchedulerState(BlockManager(40, 16),
                           EngineLimits(max_num_seqs=max_seqs, max_num_batched_tokens=budget, max_model_len=640))
    rng = random.Random(0)
    reqs = [Request(i, 0.0, rng.randint(1, 200), rng.randint(1, 60)) for i in range(60)]
    state.waiting.extend(Sequence(r) for r in reqs)
    for _ in range(100_000):
        if not (state.waiting or state.running):
            break
        batch = policy.schedule(state)
        assert batch is not None, "stalled with work left"
        decoding = [s.is_decoding for s in batch.seqs]
        assert decoding == sorted(decoding, reverse=True), "a prefill was scheduled before a decode"
        assert batch.num_tokens <= budget and len(state.running) <= max_seqs
        assert sum(n for n, d in zip(batch.num_new, decoding) if not d) <= chunk
        assert all(n == 1 for n, d in zip(batch.num_new, decoding) if d)
        assert len({id(s) for s in batch.seqs}) == len(batch.seqs)
        for seq, n in zip(batch.seqs, batch.num_new):
            assert seq in state.running and 0 < n <= seq.remaining_prefill
            assert seq.blocks >= state.kv.blocks_for(seq.num_computed + n)
        assert sum(s.blocks for s in state.running) == state.kv.used
        for seq, n in zip(batch.seqs, batch.num_new):  # apply the step as the engine does
            seq.num_computed += n
            if seq.num_computed == seq.num_tokens:
                seq.req.generated_tokens += 1
                if seq.req.generated_tokens == seq.req.output_tokens:
                    state.kv.release(seq)
                    state.running.remove(seq)
                else:
                    seq.num_tokens += 1
    assert not state.waiting and not state.running
    assert all(r.generated_tokens == r.output_tokens for r in reqs)
    assert state.kv.used == 0 and state.preemptions > 0
