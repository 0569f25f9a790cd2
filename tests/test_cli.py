"""The ``hermes`` command line, run as a user runs it (a child process)."""

import csv
import json
import subprocess
import sys

import pytest

HERMES = [sys.executable, "-m", "hermes_core.cli"]


def hermes(*args, cwd=None):
    return subprocess.run(HERMES + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_default_scenario_writes_summary_and_requests(tmp_path):
    out = tmp_path / "out"
    p = hermes("run", "--set", "workload.duration_s=30", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert "TTFT" in p.stdout and "requests completed" in p.stdout
    s = json.loads((out / "summary.json").read_text())
    for key in ("requests", "simulated_time_s", "wall_time_s", "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms",
                "throughput", "preemptions", "utilisation"):
        assert key in s
    for key in ("total", "completed", "dropped", "dropped_reasons"):
        assert key in s["requests"]
    for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(s[m]) == {"mean", "std", "p50", "p90", "p95", "p99"}
        assert s[m]["p50"] <= s[m]["p90"] <= s[m]["p95"] <= s[m]["p99"]
    assert set(s["throughput"]) == {"requests_per_s", "input_tokens_per_s", "output_tokens_per_s", "total_tokens_per_s"}
    assert len(s["utilisation"]) == 8 and all(0 < d["busy_fraction"] <= 1 for d in s["utilisation"])
    with open(out / "requests.csv") as fh:
        rows = list(csv.DictReader(fh))
    # the first 30 s of the Azure conversation trace hold 4 + ... requests; all complete
    assert len(rows) == s["requests"]["total"] == s["requests"]["completed"] > 50
    assert rows[0]["arrival_s"] == "0.0" and rows[0]["prompt_tokens"] == "374" and rows[0]["output_tokens"] == "44"


def test_same_seed_gives_identical_outputs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert hermes("run", "--set", "workload.duration_s=20", "-q", "--seed", "3", "-o", str(d)).returncode == 0
    assert (a / "requests.csv").read_text() == (b / "requests.csv").read_text()
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    sa.pop("wall_time_s"), sb.pop("wall_time_s")
    assert sa == sb and sa["seed"] == 3


@pytest.mark.parametrize("args, message", [
    (["run", "--set", "clients.0.device.type=tpu"],
     "error: clients[0].device.type: unknown device 'tpu'. Available: 'cpu_socket' (hermes-sim), 'gpu' (hermes-sim), 'gpu_profiled' (hermes-sim)."),
    (["run", "--set", "clients.0.stage.max_num_seqs=many"],
     "error: clients[0].stage.max_num_seqs: Input should be a valid integer"),
    (["run", "--set", "workload.dataset=null", "--set", "workload.path=nope.csv"],
     "error: workload.path: file"),
    (["run", "--set", "clients.0.stage.parallelism.tp=1"],
     "error: clients[0].stage: llama-3.1-70b with bf16 weights needs"),
    (["run", "missing.yaml"], "error: scenario file 'missing.yaml' does not exist"),
])
def test_bad_input_gives_one_error_line_and_no_traceback(tmp_path, args, message):
    p = hermes(*args, "-o", str(tmp_path / "o"), cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith(message), p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_malformed_trace_row_names_file_line_and_column(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n"
                     "2023-11-16 18:15:47.0000000,-3,44\n")
    p = hermes("run", "--set", "workload.dataset=null", "--set", f"workload.path={trace}", "-o", str(tmp_path / "o"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "t.csv:3" in p.stderr and "ContextTokens" in p.stderr


def test_plugins_json_lists_first_party_components():
    p = hermes("plugins", "--json")
    assert p.returncode == 0
    data = {d["name"]: d for d in json.loads(p.stdout)}
    assert data["batching"]["components"]["batching_policies"] == ["chunked_prefill", "continuous", "guaranteed_no_evict", "static"]
    assert data["gpu"]["distribution"] == "hermes-sim" and data["gpu"]["version"]
    assert "llama-3.1-70b" in data["models"]["components"]["models"]
    assert {"azure_trace", "mooncake_trace", "synthetic", "closed_loop"} <= set(data["workloads"]["components"]["workloads"])
