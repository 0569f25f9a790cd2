"""Scenario loading, --set overrides and error paths."""

import pytest

from hermes_core import ConfigError, load_scenario, run
from hermes_core.config import apply_overrides

from conftest import serving_scenario


def test_overrides_reach_lists_and_parse_values_as_yaml():
    data = {"clients": [{"name": "a", "stage": {"max_num_seqs": 256}}], "seed": 0}
    out = apply_overrides(data, ["clients.0.stage.max_num_seqs=64", "clients[0].replicas=2", "seed=9",
                                 "slo.ttft_ms=2000", "clients.0.stage.batching={type: static}"])
    assert out["clients"][0]["stage"] == {"max_num_seqs": 64, "batching": {"type": "static"}}
    assert out["clients"][0]["replicas"] == 2 and out["seed"] == 9 and out["slo"] == {"ttft_ms": 2000}
    assert data["clients"][0]["stage"]["max_num_seqs"] == 256  # the input is not modified


@pytest.mark.parametrize("override, message", [
    ("clients.3.replicas=2", "--set clients.3.replicas: 'clients.3' is not an index of a list of 1 items"),
    ("seed.x=1", "--set seed.x: 'seed' is a value, not a mapping or list"),
    ("novalue", "--set novalue: expected KEY.PATH=VALUE"),
])
def test_bad_overrides_name_the_override(override, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides({"clients": [{}], "seed": 0}, [override])
    assert str(err.value) == message


def test_yaml_file_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("workload:\n  type: synthetic\n clients: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: invalid YAML"):
        load_scenario(p)
    with pytest.raises(ConfigError, match="scenario file .* does not exist"):
        load_scenario(tmp_path / "missing.yaml")


@pytest.mark.parametrize("patch, message", [
    ({"seed": "abc"}, "seed: Input should be a valid integer, unable to parse string as an integer (got 'abc')"),
    ({"bogus": 1}, "bogus: unknown field; allowed: clients, cluster, max_time_s, name, request_types, seed, slo, workload, workloads"),
    ({"clients": []}, "clients: List should have at least 1 item after validation, not 0"),
])
def test_core_field_errors_name_the_path(patch, message, tiny_model):
    sc = serving_scenario(tiny_model, {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2})
    sc.update(patch)
    with pytest.raises(ConfigError) as err:
        load_scenario(sc)
    assert str(err.value) == message


@pytest.mark.parametrize("where, value, message", [
    (("stage", "max_num_seqs"), 0, r"clients\[0\]\.stage\.max_num_seqs: Input should be greater than or equal to 1 \(got 0\)"),
    (("stage", "batching"), {"type": "fifo"}, r"clients\[0\]\.stage\.batching\.type: unknown batching policy 'fifo'. Available: 'chunked_prefill' \(hermes-sim\), 'continuous' \(hermes-sim\), 'guaranteed_no_evict' \(hermes-sim\), 'static' \(hermes-sim\). Missing a plugin\? Run `hermes plugins`."),
    (("stage", "precision"), {"weights": "fp7"}, r"clients\[0\]\.stage\.precision\.weights: unknown precision 'fp7'; allowed: fp32, tf32, bf16"),
    (("stage", "parallelism"), {"tp": 3}, r"clients\[0\]\.stage\.parallelism\.tp: 4 attention heads do not split over tp=3"),
    (("stage", "type"), "rag", r"clients\[0\]\.stage\.type: unknown stage 'rag'"),
    (("device",), {"type": "gpu", "preset": "h900"}, r"clients\[0\]\.device: unknown preset 'h900'; allowed: a100_sxm_80gb, b200, h100_sxm, h200_sxm"),
    (("stage", "chunk"), 5, r"clients\[0\]\.stage\.chunk: unknown field; allowed: activation_reserve_GiB, batching"),
])
def test_component_errors_name_the_yaml_path(registry, tiny_model, where, value, message):
    sc = serving_scenario(tiny_model, {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2})
    node = sc["clients"][0]
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    with pytest.raises(ConfigError, match=message):
        run(sc, registry=registry)


def test_workload_errors_name_the_workload_path(registry, tiny_model, tmp_path):
    sc = serving_scenario(tiny_model, {"type": "azure_trace", "path": "missing.csv"})
    with pytest.raises(Exception, match=r"^workload\.path: file '.*missing.csv' does not exist"):
        run(load_scenario(sc, base_dir=tmp_path), registry=registry)


def test_stage_and_stages_are_exclusive(tiny_model):
    sc = serving_scenario(tiny_model, {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2})
    sc["clients"][0]["stages"] = [sc["clients"][0]["stage"]]
    with pytest.raises(ConfigError, match=r"clients\[0\]: give exactly one of 'stage'"):
        load_scenario(sc)
