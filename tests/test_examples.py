"""Every scenario in examples/ runs on a short slice of its workload, and every request is
accounted for. Multi-stage examples also give the per-step breakdown, steps.csv and a
Chrome trace that parses as trace-event JSON."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _short(data: dict) -> list[str]:
    """Overrides that keep an example to a few seconds: a slice of its trace or fewer requests."""
    out = []
    specs = [("workload", data["workload"])] if "workload" in data else [
        (f"workloads.{i}", w) for i, w in enumerate(data["workloads"])]
    for where, w in specs:
        if w["type"] == "closed_loop":
            out += ["--set", f"{where}.num_requests=32"]
        elif w["type"] == "synthetic":
            out += ["--set", f"{where}.num_requests=32"]
        elif w["type"] == "azure_trace":
            out += ["--set", f"{where}.duration_s=20"]
        else:
            out += ["--set", f"{where}.max_requests=12"]
    return out


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    # the four multi-stage examples of the issue on multi-stage requests
    assert {"rag_search_cpu_llm_h100_roce.yaml", "cascade_llama8b_llama70b_azure.yaml",
            "disagg_llama70b_h100_ib_azure.yaml", "reasoning_bestof4_reward.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_and_accounts_for_every_request(path: Path, tmp_path: Path):
    data = yaml.safe_load(path.read_text())
    out = tmp_path / "out"
    trace = tmp_path / "trace.json"
    cmd = [sys.executable, "-m", "hermes_core.cli", "run", str(path), "-q", "-o", str(out),
           "--trace", str(trace), *_short(data)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    q = s["requests"]
    assert q["total"] > 0
    assert q["completed"] + q["dropped"] + q["unfinished"] == q["total"]
    assert q["unfinished"] == 0  # no max_time_s: every request ends
    rows = list(csv.DictReader(open(out / "requests.csv")))
    assert len(rows) == q["total"] + q.get("warmup", {}).get("total", 0)
    assert all(r["status"] == "completed" or r["dropped_reason"] for r in rows)
    events = json.loads(trace.read_text())["traceEvents"]
    assert events and all({"ph", "name", "pid", "tid"} <= set(e) for e in events)
    if "request_types" not in data:
        return
    types = s["request_types"]
    assert set(types) <= set(data["request_types"])
    assert sum(t["requests"]["total"] for t in types.values()) == q["total"]
    for t in types.values():
        assert t["steps"], t
        for step in t["steps"]:
            assert step["completed"] > 0
            for k in ("transfer_ms", "queue_ms", "service_ms"):
                assert step[k]["mean"] is not None and step[k]["mean"] >= 0
    steps = list(csv.DictReader(open(out / "steps.csv")))
    done = {r["id"] for r in rows if r["status"] == "completed"}
    assert {r["request_id"] for r in steps if r["depth"] == "0"} >= done
    assert {e["ph"] for e in events} >= {"b", "e"}
