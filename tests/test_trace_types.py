"""Typing trace requests by a column: ``request_type_field`` of ``azure_trace`` (a CSV
column) and ``mooncake_trace`` (a JSON key), through to a multi-stage run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hermes_core import ConfigError, Request, Simulator, WorkloadError
from hermes_core.api import run
from hermes_plugins import workloads as wl
from hermes_plugins.workloads import AzureTrace, MooncakeTrace

CSV = ("TIMESTAMP,ContextTokens,GeneratedTokens,kind\n"
       "2023-11-16 18:15:46.000,100,10,rag\n"
       "2023-11-16 18:15:47.000,200,20,chat\n"
       "\n"
       "2023-11-16 18:15:48.500,300,30, rag \n"
       "2023-11-16 18:15:49.000,400,40,chat\n"
       "2023-11-16 18:15:50.000,500,50,chat\n")


def build(cls, base: Path, **cfg):
    return cls(cls.Config(**cfg), rng=np.random.default_rng(0), base_dir=base)


def replay(workload) -> list[Request]:
    sim = Simulator()
    out: list[Request] = []
    workload.start(sim, out.append)
    sim.run()
    return out


def mooncake_lines(*objs: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def test_azure_column_types_each_request(tmp_path: Path):
    (tmp_path / "t.csv").write_text(CSV)
    reqs = replay(build(AzureTrace, tmp_path, path="t.csv", request_type_field="kind"))
    assert [r.request_type for r in reqs] == ["rag", "chat", "rag", "chat", "chat"]
    assert [r.prompt_tokens for r in reqs] == [100, 200, 300, 400, 500]
    # the window keeps each row's own type: rows from 2.5 s on are the 3rd, 4th, 5th
    late = replay(build(AzureTrace, tmp_path, path="t.csv", request_type_field="kind", start_offset_s=2.5,
                        max_requests=2))
    assert [(r.prompt_tokens, r.request_type) for r in late] == [(300, "rag"), (400, "chat")]
    # without the field: untyped, whatever the file holds
    assert {r.request_type for r in replay(build(AzureTrace, tmp_path, path="t.csv"))} == {""}


def test_azure_cache_is_keyed_by_the_column(tmp_path: Path):
    text = CSV.replace(",kind\n", ",kind,tier\n", 1)
    rows = text.splitlines(keepends=True)
    text = rows[0] + "".join(r.rstrip("\n") + (",gold\n" if r.strip() else "\n") for r in rows[1:])
    (tmp_path / "t.csv").write_text(text)
    wl._load_azure_cached.cache_clear()
    assert wl.load_azure_csv(tmp_path / "t.csv")[1].tolist() == [100, 200, 300, 400, 500]
    assert wl.load_azure_request_types(tmp_path / "t.csv", "kind") == ("rag", "chat", "rag", "chat", "chat")
    assert wl.load_azure_request_types(tmp_path / "t.csv", "tier") == ("gold",) * 5
    assert wl._load_azure_cached.cache_info().currsize == 3
    # distinct values are one string object each
    kinds = wl.load_azure_request_types(tmp_path / "t.csv", "kind")
    assert kinds[1] is kinds[3]


def test_azure_missing_column_lists_the_columns(tmp_path: Path):
    (tmp_path / "t.csv").write_text(CSV)
    with pytest.raises(WorkloadError) as exc:
        build(AzureTrace, tmp_path, path="t.csv", request_type_field="type")
    assert str(exc.value) == ("t.csv:1: no column 'type' (request_type_field); "
                              "found: TIMESTAMP, ContextTokens, GeneratedTokens, kind")


def test_azure_empty_type_names_the_line(tmp_path: Path):
    (tmp_path / "t.csv").write_text(CSV.replace("400,40,chat", "400,40,  "))
    with pytest.raises(WorkloadError, match=r"^t\.csv:6: column kind: empty value"):
        build(AzureTrace, tmp_path, path="t.csv", request_type_field="kind")


def test_mooncake_key_types_each_request(tmp_path: Path):
    (tmp_path / "t.jsonl").write_text(mooncake_lines(
        {"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1], "app": "agent"},
        {"timestamp": 500, "input_length": 20, "output_length": 2, "app": "chat"},
        {"timestamp": 1500, "input_length": 30, "output_length": 3, "app": "agent"}))
    reqs = replay(build(MooncakeTrace, tmp_path, path="t.jsonl", request_type_field="app"))
    assert [(r.arrival_time, r.request_type, r.hash_ids) for r in reqs] == [
        (0.0, "agent", (1,)), (0.5, "chat", None), (1.5, "agent", None)]
    late = replay(build(MooncakeTrace, tmp_path, path="t.jsonl", request_type_field="app", start_offset_s=0.4))
    assert [r.request_type for r in late] == ["chat", "agent"]
    assert [r.request_type for r in replay(build(MooncakeTrace, tmp_path, path="t.jsonl"))] == ["", "", ""]


@pytest.mark.parametrize("second, message", [
    ({"timestamp": 1, "input_length": 2, "output_length": 1},
     "t.jsonl:2: missing key 'app' (request_type_field); the line has keys timestamp, input_length, output_length"),
    ({"timestamp": 1, "input_length": 2, "output_length": 1, "app": 3},
     "t.jsonl:2: key 'app': expected a non-empty string (a request type name), got 3"),
    ({"timestamp": 1, "input_length": 2, "output_length": 1, "app": ""},
     "t.jsonl:2: key 'app': expected a non-empty string (a request type name), got ''"),
])
def test_mooncake_bad_type_key(tmp_path: Path, second: dict, message: str):
    (tmp_path / "t.jsonl").write_text(mooncake_lines(
        {"timestamp": 0, "input_length": 1, "output_length": 1, "app": "chat"}, second))
    with pytest.raises(WorkloadError) as exc:
        build(MooncakeTrace, tmp_path, path="t.jsonl", request_type_field="app")
    assert str(exc.value) == message


def test_trace_column_routes_requests_through_their_pipelines(tmp_path: Path):
    """rag rows go retriever -> llm, chat rows straight to the llm; the workload section has
    no typing keys, the column types the requests."""
    (tmp_path / "t.csv").write_text(CSV)
    res = run({
        "name": "typed-trace",
        "workload": {"type": "azure_trace", "path": str(tmp_path / "t.csv"), "request_type_field": "kind"},
        "clients": [
            {"name": "retriever", "device": {"type": "cpu_socket"},
             "stage": {"type": "vector_search", "num_vectors": 1000, "dim": 8, "k": 2, "doc_tokens": 50}},
            {"name": "llm", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
        ],
        "request_types": {"rag": ["retriever", "llm"], "chat": ["llm"]},
    })
    rt = res.summary["request_types"]
    assert rt["rag"]["requests"] == {"total": 2, "completed": 2, "dropped": 0, "unfinished": 0}
    assert rt["chat"]["requests"] == {"total": 3, "completed": 3, "dropped": 0, "unfinished": 0}
    assert [s["step"] for s in rt["rag"]["steps"]] == ["0:retriever", "1:llm"]
    assert [s["step"] for s in rt["chat"]["steps"]] == ["0:llm"]
    # the llm computed every prompt (+ 100 document tokens on rag rows) and every output but the first
    prompts = (100 + 100) + 200 + (300 + 100) + 400 + 500
    decodes = (10 + 20 + 30 + 40 + 50) - 5
    assert res.summary["clients"]["llm"]["llm/0"]["tokens_computed"] == prompts + decodes
    assert res.summary["clients"]["retriever"]["retriever/0"]["queries"] == 2


def _typed_trace_scenario(tmp_path: Path, **workload) -> dict:
    (tmp_path / "t.csv").write_text(CSV)
    return {
        "workload": {"type": "azure_trace", "path": str(tmp_path / "t.csv"), "request_type_field": "kind", **workload},
        "clients": [{"name": "llm", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}],
        "request_types": {"rag": ["llm"], "chat": ["llm"]},
    }


def test_trace_column_values_are_checked_before_the_run(tmp_path: Path):
    sc = _typed_trace_scenario(tmp_path)
    sc["request_types"] = {"chat": ["llm"], "qa": ["llm"]}
    with pytest.raises(ConfigError, match=r"workload\.request_type_field: the trace names request types \['rag'\] "
                                          r"that request_types does not define; defined: \['chat', 'qa'\]"):
        run(sc)


def test_trace_column_and_core_typing_are_not_both_allowed(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"workload\.request_type: the workload types its requests from its trace "
                                          r"\(request_type_field: kind\); give one or the other"):
        run(_typed_trace_scenario(tmp_path, request_type="chat"))
