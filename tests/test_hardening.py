"""Regression tests for the defects found under bad input, overload and interrupts (the
hardening issue, items 1, 2, 3, 5, 6 and 7): each gives a correct result or one error naming
the place."""

from __future__ import annotations

import csv
import json
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from hermes_core import (
    Batch, BatchingPolicy, ConfigError, HardwareNode, PluginError, PluginLoadError, Router, hookimpl, load_plugins,
)
from hermes_core import api, cli
from hermes_core.api import load_scenario, run

ROOT = Path(__file__).resolve().parents[1]
CLOSED_LOOP = ROOT / "examples" / "closed_loop_llama8b_h100.yaml"


# 1. continuous batching with more sequences than tokens per step
def test_max_num_seqs_above_the_token_budget_is_refused_as_vllm_does():
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage: max_num_batched_tokens \(16\) must be >= "
                                          r"max_num_seqs \(256\), as vLLM requires"):
        run(load_scenario(CLOSED_LOOP, ["clients.0.stage.batching.type=continuous",
                                        "clients.0.stage.max_num_batched_tokens=16", "workload.isl=8"]))


def test_continuous_decodes_stay_within_the_token_budget():
    sc = load_scenario(CLOSED_LOOP, ["clients.0.stage.batching.type=continuous", "clients.0.stage.max_num_seqs=16",
                                     "clients.0.stage.max_num_batched_tokens=16", "workload.isl=8",
                                     "workload.osl=4", "workload.num_requests=40"])
    s = run(sc).summary
    assert s["requests"]["completed"] == 40
    assert s["clients"]["llama8b"]["llama8b/0"]["max_batch_size"] <= 16


# 2. requests finished by the engine but not yet streamed when max_time_s stops the run
def test_requests_in_the_front_end_at_the_stop_are_reported_unfinished(tmp_path):
    res = run(load_scenario(CLOSED_LOOP, ["clients.0.stage.frontend_token_us=20000", "max_time_s=30"]))
    res.write(tmp_path)
    s = res.summary
    rows = list(csv.DictReader(open(tmp_path / "requests.csv")))
    assert len(rows) == s["requests"]["total"] == 32
    assert {r["status"] for r in rows} == {"unfinished"}
    assert all(r["finish_s"] == "" for r in rows)
    assert all(r["first_token_s"] == "" or float(r["first_token_s"]) <= 30 for r in rows)


# 3. utilisation of a run cut inside a step
def test_busy_fraction_never_exceeds_one_when_max_time_cuts_a_step():
    s = run(load_scenario(CLOSED_LOOP, ["max_time_s=0.05"])).summary
    (dev,) = s["utilisation"]
    assert 0 < dev["busy_fraction"] <= 1.0 + 1e-12  # float sums of step times
    assert dev["busy_fraction"] == pytest.approx(1.0)  # the engine works from t=0 to the stop


# 5. policies that break the engine's limits or its KV accounting
class _Greedy(BatchingPolicy):
    """Schedules every waiting prompt whole, ignoring the token budget (a broken policy)."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    chunks_prefill = True

    def schedule(self, state):
        batch = Batch()
        while state.waiting:
            seq = state.waiting.popleft()
            state.kv.try_allocate(seq, seq.remaining_prefill)
            state.running.append(seq)
            batch.add(seq, seq.remaining_prefill)
        for seq in state.running:
            if seq not in batch.seqs:
                state.kv.try_allocate(seq, 1)
                batch.add(seq, 1)
        return batch if batch.seqs else None


class _NoKV(_Greedy):
    """Runs one sequence at a time within the budget but never reserves KV blocks."""

    def schedule(self, state):
        batch = Batch()
        if state.waiting and not state.running:
            state.running.append(state.waiting.popleft())
        for seq in state.running[:1]:
            batch.add(seq, min(seq.remaining_prefill, state.limits.max_num_batched_tokens))
        return batch if batch.seqs else None


class _Abstract(HardwareNode):
    """A device that forgot its pricing methods."""

    class Config(BaseModel):
        pass


class _OutOfRange(Router):
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def choose(self, request, outstanding):
        return len(outstanding)


@hookimpl
def _policies(register):
    register("greedy", _Greedy)
    register("no_kv", _NoKV)


@hookimpl
def _routers(register):
    register("out_of_range", _OutOfRange)


REG = load_plugins(extra=[("broken-policies", types.SimpleNamespace(hermes_register_batching_policies=_policies,
                                                                   hermes_register_routers=_routers))])


def _scenario(**stage):
    return {"workload": {"type": "closed_loop", "concurrency": 4, "num_requests": 8, "isl": 3000, "osl": 4},
            "clients": [{"name": "m", "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                "max_num_batched_tokens": 4096, **stage}}]}


def test_a_batch_over_the_token_budget_names_the_policy_and_its_plugin():
    with pytest.raises(PluginError, match=r"clients\[0\]\.stage\.batching: policy 'greedy' \(plugin 'broken-policies' "
                                          r"\(<in-process> -\)\) returned a batch of 12000 tokens and 4 sequences, over "
                                          r"max_num_batched_tokens=4096"):
        run(_scenario(batching={"type": "greedy"}), registry=REG)


def test_a_policy_that_reserves_no_kv_is_caught():
    with pytest.raises(PluginError, match=r"policy 'no_kv' .* scheduled request 0 to 3000 computed tokens holding "
                                          r"0 KV blocks of 16 tokens \(it reserved too few\)"):
        run(_scenario(batching={"type": "no_kv"}), registry=REG)


# 6. abstract plugin classes and routers out of range
def test_a_class_missing_abstract_methods_is_refused_at_registration():
    @hookimpl
    def devices(register):
        register("half_done", _Abstract)

    with pytest.raises(PluginLoadError, match=r"plugin 'half' \(<in-process> -\) registered devices 'half_done' as "
                                              r"_Abstract, which does not implement the abstract methods of "
                                              r"hermes_core.HardwareNode: attention_time, gemm_time, memory_time, "
                                              r"peak_flops"):
        load_plugins(extra=[("half", types.SimpleNamespace(hermes_register_devices=devices))])


def test_a_router_picking_no_replica_names_the_router():
    sc = _scenario()
    sc["clients"][0].update(replicas=2, router={"type": "out_of_range"})
    with pytest.raises(PluginError, match=r"clients\[0\]\.router: router 'out_of_range' \(plugin 'broken-policies' "
                                          r"\(<in-process> -\)\) returned replica 2 for request 0; client 'm' has "
                                          r"replicas 0..1"):
        run(sc, registry=REG)


# 7. interrupts: no truncated outputs, exit status 130
def test_an_interrupted_write_leaves_no_partial_files(tmp_path, monkeypatch):
    res = run(load_scenario(CLOSED_LOOP, ["workload.num_requests=8"]))
    res.write(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_requests_csv", boom)
    res2 = run(load_scenario(CLOSED_LOOP, ["workload.num_requests=4"]))
    with pytest.raises(KeyboardInterrupt):
        res2.write(tmp_path)
    # the earlier run's files are untouched and no temporary file is left
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert json.loads((tmp_path / "summary.json").read_text())["requests"]["total"] == 8


def test_ctrl_c_exits_130(monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    result = CliRunner().invoke(cli.main, ["run", str(CLOSED_LOOP), "-q", "-o", str(tmp_path / "o")])
    assert result.exit_code == 130
    assert not (tmp_path / "o" / "summary.json").exists()  # the folder is checked first, nothing written


# 4. Azure trace stamps that are numbers, and UTC offsets
@pytest.mark.parametrize("stamp", ["12", "1700000000", "3.5"])
def test_azure_stamps_that_are_numbers_are_refused_with_file_and_line(tmp_path, stamp):
    from hermes_core import WorkloadError
    from hermes_plugins.workloads import load_azure_csv

    p = tmp_path / "t.csv"
    p.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,10,2\n{stamp},10,2\n")
    with pytest.raises(WorkloadError, match=rf"t.csv:3: column TIMESTAMP: '{stamp}' is not a date"):
        load_azure_csv(p)


def test_azure_stamps_with_a_zero_utc_offset_read_as_utc(tmp_path, recwarn):
    from hermes_plugins.workloads import load_azure_csv

    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46+00:00,10,2\n"
                 "2023-11-16 18:15:48.5+00:00,10,2\n2023-11-16T18:15:49Z,10,2\n")
    times, _, _ = load_azure_csv(p)
    assert times.tolist() == [0.0, 2.5, 3.0]
    assert not [w for w in recwarn if "timezone" in str(w.message)]


# Tracebacks that are now one clear error
def _cli(args, cwd=None):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "hermes_core.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "error: seed: must be an integer >= 0 (got -1)"),
    (["--set", "clients.0.stage.step_overhead_us=.inf"], "error: clients[0].stage.step_overhead_us: must be a finite number (got inf)"),
    (["--set", "clients.0.device.memory_GiB=.nan"], "error: clients[0].device.memory_GiB: must be a finite number (got nan)"),
    (["--set", "clients.0.replicas=1000000"], "error: clients[0].replicas: Input should be less than or equal to 10000"),
    (["--set", "clients.0.num_devices=1000000"], "error: clients[0].num_devices: Input should be less than or equal to 4096"),
    (["--set", "clients.0.stage.max_num_batched_tokens=1000000000"],
     "error: clients[0].stage.max_num_batched_tokens: Input should be less than or equal to 1048576"),
    (["--set", "clients.0.router={type: round_robin, bogus: 1}"],
     "error: clients[0].router.bogus: unknown field; this component takes no fields"),
])
def test_bad_numbers_give_one_error_line(args, message, tmp_path):
    proc = _cli(["run", *args, "-q", "-o", str(tmp_path / "o")])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert " ".join(proc.stderr.split()).startswith(message)


def test_scenario_files_that_are_not_yaml_text(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: x\n\xff\xfe\x00garbage")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nseed: 1\nname: b\n")
    for path, message in [(binary, "bin.yaml: not UTF-8 text (byte 8)"), (latin, "latin.yaml: not UTF-8 text (byte 9)"),
                          (tmp_path, "is a folder; give a YAML file"),
                          (dup, "dup.yaml:3: invalid YAML: key 'name' appears twice in one mapping (first on line 1)")]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_scenario(path)


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_run(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _cli(["run", str(CLOSED_LOOP), "-q", "-o", str(blocker / "out")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: --output-dir: cannot create folder '{blocker / 'out'}'" in " ".join(proc.stderr.split())


def test_summary_json_never_holds_infinity(tmp_path):
    res = run(load_scenario(CLOSED_LOOP, ["workload.num_requests=4"]))
    res.summary["synthetic_inf"] = {"a": float("inf"), "b": [float("nan"), 1.0]}
    res.write(tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())  # strict JSON parses
    assert data["synthetic_inf"] == {"a": None, "b": [None, 1.0]}


# A broken plugin does not break `hermes plugins`
class _FakeEntryPoint:
    """An installed plugin whose module fails to import."""

    name = "shiny"
    value = "shiny_plugin"
    dist = types.SimpleNamespace(name="hermes-shiny", version="0.3")

    def load(self):
        raise ImportError("No module named 'shiny_dependency'")


def test_hermes_plugins_lists_a_broken_plugin_and_the_rest(monkeypatch):
    from hermes_core import plugins

    real = plugins._entry_points
    monkeypatch.setattr(plugins, "_entry_points", lambda: [*real(), _FakeEntryPoint()])
    result = CliRunner().invoke(cli.main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = {p["name"]: p for p in json.loads(result.stdout)}
    assert data["shiny"]["error"] == "ImportError: No module named 'shiny_dependency'"
    assert "llm_serving" in data["stages"]["components"]["stages"]
    # every other command names the plugin and how to run without it
    with pytest.raises(PluginLoadError, match=r"Error loading hermes plugin 'shiny' \(hermes-shiny 0.3\): ImportError: "
                                              r"No module named 'shiny_dependency' \(to run without it: "
                                              r"HERMES_DISABLE_PLUGINS=shiny;"):
        load_plugins()


def test_a_plugin_whose_hook_fails_is_left_out_whole():
    @hookimpl
    def stages(register):
        from hermes_plugins.stages import LLMServing
        register("half_registered", LLMServing)
        raise RuntimeError("datasheet missing")

    broken: list = []
    reg = load_plugins(extra=[("flaky", types.SimpleNamespace(hermes_register_stages=stages))], broken=broken)
    assert [(info.name, err) for info, err in broken] == [
        ("flaky", "hermes_register_stages raised RuntimeError: datasheet missing")]
    assert "half_registered" not in reg.names("stages") and "llm_serving" in reg.names("stages")
    assert "flaky" not in {p["name"] for p in reg.plugins()}


def test_the_output_folder_holds_what_reproduces_the_run(tmp_path):
    import yaml
    res = run(load_scenario(CLOSED_LOOP, ["workload.num_requests=6", "clients.0.stage.max_num_seqs=8"]), seed=3)
    res.write(tmp_path)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["seed"] == 3 and meta["hermes_version"]
    assert {"name": "stages", "distribution": "hermes-sim", "version": meta["hermes_version"]} in meta["plugins"]
    again = run(load_scenario(tmp_path / "scenario.yaml"))
    assert yaml.safe_load((tmp_path / "scenario.yaml").read_text())["clients"][0]["stage"]["max_num_seqs"] == 8
    for key in res.summary:
        if key != "wall_time_s":
            assert again.summary[key] == res.summary[key], key


@pytest.mark.parametrize("override, message", [
    ("clients.0.stage.max_num_seq=4", "clients[0].stage.max_num_seq: unknown field (did you mean 'max_num_seqs'?); allowed:"),
    ("clients.0.stage.batching.type=chunked_prefil",
     "clients[0].stage.batching.type: unknown batching policy 'chunked_prefil'. Did you mean 'chunked_prefill'?"),
    ("clients.0.device.type=tpu", "clients[0].device.type: unknown device 'tpu'. Available:"),  # no far-fetched guess
])
def test_typos_get_a_did_you_mean(override, message):
    with pytest.raises(ConfigError) as err:
        run(load_scenario(CLOSED_LOOP, [override]))
    assert str(err.value).startswith(message)


def test_print_config_prints_the_validated_scenario_and_runs_nothing(tmp_path):
    import yaml
    result = CliRunner().invoke(cli.main, ["run", str(CLOSED_LOOP), "--print-config", "--set", "clients.0.replicas=2",
                                           "--seed", "5", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["clients"][0]["replicas"] == 2 and printed["seed"] == 5
    assert printed["workload"] == yaml.safe_load(CLOSED_LOOP.read_text())["workload"]
    assert not (tmp_path / "o").exists()
    bad = CliRunner().invoke(cli.main, ["run", str(CLOSED_LOOP), "--print-config", "--set", "clients.0.stage.tp=3"])
    assert bad.exit_code == 2 and "clients[0].stage.tp: unknown field" in bad.output


@pytest.mark.parametrize("key, value", [("hidden_size", "big"), ("num_attention_heads", 0), ("num_hidden_layers", -2),
                                        ("vocab_size", 1.5), ("num_key_value_heads", True)])
def test_a_model_config_with_a_bad_dimension_names_file_and_key(tmp_path, key, value):
    from hermes_core import ModelSpec
    cfg = json.loads((ROOT / "plugins/hermes_plugins/models/catalog/llama-3.1-8b.json").read_text())
    cfg[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=rf"{path}: '{key}' in config.json must be a positive integer, got {value!r}"):
        ModelSpec.from_file(path)


@pytest.mark.parametrize("workload, message", [
    ("{type: synthetic, arrival: gamma, cv: 1.0e-300, rate_rps: 1, num_requests: 5, isl: 100, osl: 10}",
     "workload.cv: Input should be greater than or equal to 0.001"),
    ("{type: synthetic, rate_rps: 1.0e-308, num_requests: 5, isl: 100, osl: 10}",
     "workload.rate_rps: must be at least 1e-6 requests/s"),
    ("{type: synthetic, rate_rps: 1, num_requests: 5, isl: {dist: lognormal, mean: 1.0e+300, sigma: 1}, osl: 10}",
     "workload.isl.mean: Input should be less than or equal to 10000000"),
    ("{type: closed_loop, concurrency: 1, isl: 100000000000, osl: 1}",
     "workload.isl.value: Input should be less than or equal to 10000000"),
])
def test_degenerate_workload_numbers_are_refused(workload, message):
    with pytest.raises(ConfigError) as err:
        run(load_scenario(CLOSED_LOOP, [f"workload={workload}"]))
    assert str(err.value).startswith(message)


def test_request_annotations_become_requests_csv_columns(tmp_path):
    from hermes_core import Request
    from hermes_core.metrics import REQUEST_COLUMNS, write_requests_csv

    a = Request(1, 0.0, 10, 2, annotations={"cache_hit": True, "status": "x"})
    b = Request(0, 0.0, 10, 2, annotations={"retrieval_s": 0.25})
    c = Request(2, 0.0, 10, 2)
    write_requests_csv(tmp_path / "r.csv", [a, b, c])
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert list(rows[0]) == [*REQUEST_COLUMNS, "cache_hit", "retrieval_s", "annotation.status"]
    assert [(r["id"], r["cache_hit"], r["retrieval_s"], r["annotation.status"]) for r in rows] == [
        ("0", "", "0.25", ""), ("1", "True", "", "x"), ("2", "", "", "")]


def test_plugins_components_lists_fields_defaults_presets_and_models():
    result = CliRunner().invoke(cli.main, ["plugins", "--components", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    fields = {f["name"]: f["default"] for f in data["stages"]["llm_serving"]["fields"]}
    assert fields["model"] == "required" and fields["max_num_seqs"] == 256 and fields["role"] == "both"
    assert {"h100_sxm", "h200_sxm"} <= set(data["devices"]["gpu"]["presets"])
    assert data["devices"]["cpu_socket"]["presets"] == ["xeon_6980p", "xeon_8480p"]
    assert data["models"]["llama-3.1-70b"]["source"]
    assert data["links"]["ib_ndr"]["source"].startswith("bandwidth: InfiniBand NDR")
    assert {f["name"] for f in data["cluster_nodes"]["hgx_h100"]["fields"]} == {"gpu", "nics"}


def test_a_plugin_adds_a_gpu_preset_and_keeps_the_fitted_model():
    import importlib.util
    import sys as _sys

    import numpy as np

    from hermes_plugins.devices import GPU, GPUConfig

    spec = importlib.util.spec_from_file_location("gpu_preset_example", ROOT / "tests/plugins/gpu_preset_example.py")
    mod = importlib.util.module_from_spec(spec)
    _sys.modules["gpu_preset_example"] = mod
    spec.loader.exec_module(mod)
    reg = load_plugins(extra=[("gpu-preset-example", mod)])
    comp, cfg = reg.validate("devices", {"type": "example_gpu"}, "clients[0].device")
    mi300x = comp.obj(cfg)
    assert (mi300x.name, mi300x.memory_bandwidth, mi300x.peak_flops("bf16")) == ("MI300X", 5300e9, 1307.4e12)
    assert mi300x.usd_per_hour == 2.5
    # the same model as the built-in GPU given the same figures: the fitted efficiencies apply
    twin = GPU(GPUConfig(preset="h100_sxm", peak_tflops=dict(mod.MI300X.peak_tflops), memory_bandwidth_GBps=5300,
                         num_sms=304))
    m = np.array([1, 64, 4096])
    assert np.allclose(mi300x.gemm_time(m, 8192, 8192, "bf16"), twin.gemm_time(m, 8192, 8192, "bf16"))
    with pytest.raises(ConfigError, match=r"unknown preset 'mi325x'; allowed: a100_sxm_80gb, b200, h100_sxm, "
                                          r"h200_sxm, mi300x"):
        reg.validate("devices", {"type": "example_gpu", "preset": "mi325x"}, "clients[0].device")
    s = run({"workload": {"type": "closed_loop", "concurrency": 2, "num_requests": 4, "isl": 512, "osl": 8},
             "clients": [{"name": "m", "device": {"type": "example_gpu"},
                          "stage": {"type": "llm_serving", "model": "llama-3.1-70b", "parallelism": {"tp": 2}}}]},
            registry=reg).summary
    assert s["requests"]["completed"] == 4 and s["utilisation"][0]["type"] == "MI300X"


def test_a_hugging_face_repo_id_names_a_catalog_model():
    s = run(load_scenario(CLOSED_LOOP, ["clients.0.stage.model=meta-llama/Llama-3.1-8B", "workload.num_requests=4"])).summary
    assert s["clients"]["llama8b"]["llama8b/0"]["model"] == "llama-3.1-8b"


def test_several_bad_fields_are_one_line():
    with pytest.raises(ConfigError) as err:
        run(load_scenario(CLOSED_LOOP, ["clients.0.stage.max_num_seqs=0", "clients.0.stage.block_size=0"]))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("clients[0].stage.max_num_seqs: Input should be greater than or equal to 1 (got 0) "
                          "(and 1 more problem in this section)")


# Request conservation and capacity over random valid single-client scenarios
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

POLICIES = [{"type": "chunked_prefill"}, {"type": "continuous"}, {"type": "static", "max_batch_size": 8},
            {"type": "guaranteed_no_evict"}]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=st.sampled_from(POLICIES), frontend=st.sampled_from([0.0, 50.0, 5000.0]),
       max_time=st.sampled_from([None, 0.2, 2.0]), seqs=st.sampled_from([4, 64]),
       budget=st.sampled_from([512, 4096]), closed=st.booleans(), seed=st.integers(0, 5),
       prefix=st.booleans())
def test_random_single_client_runs_conserve_requests_and_respect_capacity(policy, frontend, max_time, seqs, budget,
                                                                          closed, seed, prefix):
    wl = ({"type": "closed_loop", "concurrency": 6, "num_requests": 18,
           "isl": {"dist": "uniform", "low": 8, "high": 3000}, "osl": {"dist": "uniform", "low": 1, "high": 60}}
          if closed else
          {"type": "synthetic", "rate_rps": 40, "num_requests": 18,
           "isl": {"dist": "uniform", "low": 8, "high": 3000}, "osl": {"dist": "uniform", "low": 1, "high": 60}})
    sc = {"seed": seed, "workload": wl,
          "clients": [{"name": "m", "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "max_num_seqs": seqs,
                                              "max_num_batched_tokens": budget, "batching": policy,
                                              "frontend_token_us": frontend, "prefix_caching": prefix,
                                              "max_model_len": 2048, "gpu_memory_utilization": 0.3}}],
          **({"max_time_s": max_time} if max_time else {})}
    a = run(sc)
    s = a.summary
    q = s["requests"]
    assert q["completed"] + q["dropped"] + q["unfinished"] == q["total"] == len(a.requests)
    if max_time is None:
        assert q["unfinished"] == 0
    rep = s["clients"]["m"]["m/0"]
    assert rep["kv_peak_blocks_used"] <= rep["kv_blocks"]
    assert rep["max_batch_size"] <= seqs
    for d in s["utilisation"]:
        assert 0 <= d["busy_fraction"] <= 1 + 1e-9
    for r in a.requests:
        assert r.generated_tokens <= r.output_tokens
        if r.completed:
            assert r.generated_tokens == r.output_tokens and r.first_token_time <= r.finish_time
    b = run(sc).summary
    assert {k: v for k, v in s.items() if k != "wall_time_s"} == {k: v for k, v in b.items() if k != "wall_time_s"}


def test_trace_token_counts_beyond_any_context_name_file_and_line(tmp_path):
    from hermes_core import WorkloadError
    from hermes_plugins.workloads import load_azure_csv, load_mooncake_jsonl

    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,99999999999999999999999,2\n")
    with pytest.raises(WorkloadError, match=r"t.csv:2: column ContextTokens: 99999999999999999999999 tokens is more "
                                            r"than 10,000,000"):
        load_azure_csv(p)
    j = tmp_path / "t.jsonl"
    j.write_text('{"timestamp": 0, "input_length": 10, "output_length": 99999999999999999999, "hash_ids": [1]}\n')
    with pytest.raises(WorkloadError, match=r"t.jsonl:1: key 'output_length': 99999999999999999999 tokens is more"):
        load_mooncake_jsonl(j)


def test_azure_dates_outside_the_readable_years_name_the_line(tmp_path):
    from hermes_core import WorkloadError
    from hermes_plugins.workloads import load_azure_csv

    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n9999-11-16 18:15:46,10,2\n")
    with pytest.raises(WorkloadError, match=r"t.csv:2: column TIMESTAMP: '9999-11-16 18:15:46' is outside the years"):
        load_azure_csv(p)


@pytest.mark.parametrize("override, message", [
    ("clients.0.device.peak_tflops={bf16: 0}", "clients[0].device: peak_tflops: bf16 must be a finite number > 0 TFLOP/s"),
    ("workload.isl=1e20", "workload.isl: expected a token count (int)"),
])
def test_degenerate_device_and_length_values(override, message):
    with pytest.raises(ConfigError) as err:
        run(load_scenario(CLOSED_LOOP, [override]))
    assert str(err.value).startswith(message)
