"""Multi-stage requests: the coordinator, disaggregated prefill/decode, cached prompt tokens,
request conservation and determinism over random pipelines, outputs and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from hermes_core import ConfigError, Request, Simulator, Stage, hookimpl, load_plugins
from hermes_core.api import _build_client, load_scenario, run
from hermes_core.metrics import MetricsCollector

KV_PER_TOKEN_8B = 2 * 32 * 8 * 128 * 2  # llama-3.1-8b bf16: K and V x layers x KV heads x head_dim x 2 B


def _pd_scenario(prompt: int, output: int, bandwidth_GBps: float = 10.0, latency_us: float = 5.0) -> dict:
    """One request: prefill on device a, decode on device b, one link between them."""
    return {
        "name": "pd-exact",
        "workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 1, "isl": prompt, "osl": output,
                     "request_type": "pd"},
        "cluster": {
            "nodes": [{"name": "a", "kind": "device", "device": {"type": "gpu", "preset": "h100_sxm"}},
                      {"name": "b", "kind": "device", "device": {"type": "gpu", "preset": "h100_sxm"}}],
            "links": [{"between": ["a", "b"], "bandwidth_GBps": bandwidth_GBps, "latency_us": latency_us}],
        },
        "clients": [
            {"name": "pre", "place": "a", "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": "prefill"}},
            {"name": "dec", "place": "b", "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": "decode"}},
        ],
        "request_types": {"pd": ["pre", "dec"]},
    }


def _stage(stage: dict):
    """A built llm_serving stage on one H100 outside any run (to price steps by hand)."""
    sc = load_scenario({"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2},
                        "clients": [{"name": "x", "device": {"type": "gpu", "preset": "h100_sxm"}, "stage": stage}]})
    sim = Simulator()
    client = _build_client(0, sc.config.clients[0], sim, load_plugins(), MetricsCollector(), 0,
                           lambda r: None, sc.base_dir)
    return sim, client.replicas[0].stages[0]


def test_disaggregated_ttft_is_prefill_plus_kv_transfer_plus_first_decode_step():
    P, O = 1000, 3
    res = run(_pd_scenario(P, O))
    (req,) = res.requests
    assert req.completed and req.generated_tokens == O
    pre, dec = res.steps
    assert (pre.step, dec.step) == ("0:pre", "1:dec")
    # prefill: one step over the whole prompt, priced by the prefill stage's own cost model
    _, stage = _stage({"type": "llm_serving", "model": "llama-3.1-8b"})
    pairs = P * (P + 1) // 2
    t_prefill = stage.cost.step(P, 1, pairs, P, P, 0, 0, 1)[0]
    assert pre.ended_s - pre.started_s == pytest.approx(t_prefill, rel=1e-12)
    # KV of the whole prompt over one 10 GB/s link with 5 us latency
    nbytes = KV_PER_TOKEN_8B * P
    assert dec.bytes_in == nbytes
    transfer = 5e-6 + nbytes / 10e9
    assert dec.transfer_s == pytest.approx(transfer, rel=1e-9)
    # decode: its first step computes the last prompt token over P - 1 cached tokens, one decode
    t_first = stage.cost.step(1, 1, 0, 0, 0, 1, P, 0)[0]
    ttft = req.first_token_time - req.arrival_time
    assert ttft == pytest.approx(t_prefill + transfer + t_first, rel=1e-9)
    # each client computed only its share: the prompt there, the last prompt token + O - 1 decodes here
    assert res.summary["clients"]["pre"]["pre/0"]["tokens_computed"] == P
    assert res.summary["clients"]["dec"]["dec/0"]["tokens_computed"] == O
    link = {r["link"]: r for r in res.summary["transfers"]["links"]}
    assert link["a->b"]["bytes"] == pytest.approx(nbytes)
    assert "b->a" not in link


def test_request_with_cached_prompt_tokens_computes_only_the_rest():
    sim, stage = _stage({"type": "llm_serving", "model": "llama-3.1-8b", "max_num_batched_tokens": 8192})
    done: list[Request] = []
    stage.ctx.on_done = done.append
    req = Request(0, 0.0, 1000, 2, cached_tokens=600)
    sim.schedule(0.0, stage.submit, req)
    sim.run()
    assert done == [req] and req.generated_tokens == 2
    # 400 prompt tokens (not 1000), then one decode
    assert stage.tokens_computed == 400 + 1
    c, q = 600, 400
    t_prefill = stage.cost.step(q, 1, q * c + q * (q + 1) // 2, c + q, q, 0, 0, 1)[0]
    assert req.first_token_time == pytest.approx(t_prefill, rel=1e-12)
    # a whole prompt cached still computes its last token (the logits it samples from)
    sim, stage = _stage({"type": "llm_serving", "model": "llama-3.1-8b"})
    stage.ctx.on_done = lambda r: None
    sim.schedule(0.0, stage.submit, Request(1, 0.0, 1000, 1, cached_tokens=1000))
    sim.run()
    assert stage.tokens_computed == 1


def test_two_llm_steps_in_a_pipeline_generate_each_their_own_tokens():
    """[a, b] with both roles 'both': b's prompt is a's prompt plus a's output, and the request's
    output tokens are b's (the old one-client pipeline generated one token too many)."""
    sc = {"name": "two", "workload": {"type": "closed_loop", "concurrency": 2, "num_requests": 4, "isl": 100,
                                      "osl": 10, "request_type": "t"},
          "clients": [{"name": "a", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "b", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["a", "b"]}}
    res = run(sc)
    assert all(r.completed and r.generated_tokens == 10 for r in res.requests)
    assert res.summary["clients"]["a"]["a/0"]["tokens_computed"] == 4 * (100 + 9)
    assert res.summary["clients"]["b"]["b/0"]["tokens_computed"] == 4 * (110 + 9)


# -- conservation and determinism over random pipelines -------------------------------------
ROLES = {"both": "both", "pre": "prefill", "dec": "decode"}
STEP_CLIENTS = sorted(ROLES) + ["cascade"]


def _random_scenario(pipelines, max_time, rate, seed):
    return {
        "name": "prop", "seed": seed,
        "workload": {"type": "synthetic", "rate_rps": rate, "num_requests": 12,
                     "isl": {"dist": "uniform", "low": 16, "high": 3000}, "osl": {"dist": "uniform", "low": 1, "high": 40},
                     "mix": [{"request_type": f"t{i}", "weight": 1} for i in range(len(pipelines))]},
        "clients": [{"name": n, "replicas": 2 if n == "both" else 1,
                     "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": role, "max_model_len": 2048}}
                    for n, role in ROLES.items()]
                   + [{"name": "cascade", "stage": {"type": "route", "rule": "cascade", "small": "both", "large": "dec",
                                                    "escalate_p": 0.5}}],
        "request_types": {f"t{i}": p for i, p in enumerate(pipelines)},
        **({"max_time_s": max_time} if max_time else {}),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines=st.lists(st.lists(st.sampled_from(STEP_CLIENTS), min_size=1, max_size=3), min_size=1, max_size=3),
       max_time=st.sampled_from([None, 0.3, 1.5]), rate=st.sampled_from([5.0, 50.0]), seed=st.integers(0, 3))
def test_multi_stage_runs_conserve_requests_and_are_deterministic(pipelines, max_time, rate, seed):
    sc = _random_scenario(pipelines, max_time, rate, seed)
    a, b = run(sc), run(sc)
    total = a.summary["requests"]["total"]
    q = a.summary["requests"]
    # every submitted request is accounted for, once, in the summary and in the requests list
    assert q["completed"] + q["dropped"] + q["unfinished"] == total
    assert len(a.requests) == total and len({id(r) for r in a.requests}) == total
    per_type = a.summary["request_types"]
    assert sum(t["requests"]["total"] for t in per_type.values()) == total
    for r in a.requests:
        if r.dropped_reason:
            assert " at step " in r.dropped_reason  # the reason names the step
        elif not r.completed:
            assert r.annotations and r.annotations["stopped_at"]
    # a request's calls: completed ones in order, at most one still open (the one it stopped at)
    for r in a.requests:
        recs = [s for s in a.steps if s.request_id == r.id and s.depth == 0]
        if r.completed:
            assert [s.status for s in recs] == ["completed"] * len(pipelines[int(r.request_type[1:])])
    # same scenario and seed, same results
    for key in a.summary:
        if key != "wall_time_s":
            assert a.summary[key] == b.summary[key], key
    assert [s.row() for s in a.steps] == [s.row() for s in b.steps]


# -- outputs --------------------------------------------------------------------------------
def test_outputs_of_a_multi_stage_run(tmp_path):
    out = tmp_path / "out"
    res = run(_pd_scenario(2000, 4), trace=True)
    res.write(out)
    rows = list(csv.DictReader(open(out / "steps.csv")))
    assert [r["step"] for r in rows] == ["0:pre", "1:dec"]
    assert float(rows[1]["bytes_in"]) == KV_PER_TOKEN_8B * 2000
    req_rows = list(csv.DictReader(open(out / "requests.csv")))
    assert req_rows[0]["request_type"] == "pd" and req_rows[0]["status"] == "completed"
    s = json.loads((out / "summary.json").read_text())
    steps = s["request_types"]["pd"]["steps"]
    assert [x["step"] for x in steps] == ["0:pre", "1:dec"]
    assert steps[1]["transfer_ms"]["mean"] == pytest.approx((5e-6 + KV_PER_TOKEN_8B * 2000 / 10e9) * 1e3)
    # the Chrome trace: valid JSON in the trace-event format
    path = res.write_trace(tmp_path / "trace.json")
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert events
    for e in events:
        assert {"ph", "name", "pid", "tid"} <= set(e)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
        if e["ph"] in ("b", "e", "s", "f"):
            assert "id" in e and "cat" in e
    phases = {e["ph"] for e in events}
    assert {"M", "X", "b", "e", "s", "f"} <= phases
    # async begin/end pairs match
    begins = sorted((e["cat"], e["id"]) for e in events if e["ph"] == "b")
    ends = sorted((e["cat"], e["id"]) for e in events if e["ph"] == "e")
    assert begins == ends
    # one flow follows the request from the prefill client to the decode client
    s_ev = [e for e in events if e["ph"] == "s"]
    f_ev = [e for e in events if e["ph"] == "f"]
    assert len(s_ev) == len(f_ev) == 1 and s_ev[0]["pid"] != f_ev[0]["pid"]


def test_max_time_leaves_unfinished_requests_with_the_step_they_stopped_at():
    sc = _pd_scenario(4000, 2000)
    sc["max_time_s"] = 1.0
    res = run(sc)
    (req,) = res.requests
    assert not req.completed and not req.dropped_reason
    assert req.annotations["stopped_at"] == "1:dec" and req.annotations["stopped_on"] == "dec/0"
    assert res.summary["requests"]["unfinished"] == 1


def test_a_dropped_call_drops_the_request_naming_the_step():
    sc = _pd_scenario(1000, 10)
    sc["clients"][1]["stage"]["max_model_len"] = 512
    res = run(sc)
    (req,) = res.requests
    assert req.dropped_reason.startswith("exceeds_max_model_len: at step 1:dec on dec/0:")
    assert res.summary["requests"]["dropped_reasons"] == {"exceeds_max_model_len": 1}


# -- bad input ------------------------------------------------------------------------------
class _Bounce(Stage):
    """A test control stage that forwards each request to ``target``."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target: str

    @classmethod
    def devices_needed(cls, config):
        return 0

    @classmethod
    def targets(cls, config):
        return {"target": config.target}

    @property
    def outstanding(self):
        return 0

    def submit(self, request):
        sub = self.ctx.new_call(request, prompt_tokens=request.prompt_tokens, output_tokens=request.output_tokens)
        self.ctx.call(self.config.target, sub, lambda c: self._done(request, c))

    def _done(self, request, c):
        request.first_token_time, request.finish_time = c.first_token_time, c.finish_time
        request.generated_tokens = c.generated_tokens
        request.dropped_reason = c.dropped_reason
        self.ctx.on_done(request)


@hookimpl
def _register_bounce(register):
    register("bounce", _Bounce)


_BOUNCE_REGISTRY = None


def _bounce_registry():
    global _BOUNCE_REGISTRY
    if _BOUNCE_REGISTRY is None:
        plugin = types.SimpleNamespace(hermes_register_stages=_register_bounce)
        _BOUNCE_REGISTRY = load_plugins(extra=[("bounce-test", plugin)])
    return _BOUNCE_REGISTRY


def test_a_control_stage_reaches_another_client_through_the_door():
    sc = {"workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 3, "isl": 64, "osl": 5,
                       "request_type": "t"},
          "clients": [{"name": "front", "stage": {"type": "bounce", "target": "llm"}},
                      {"name": "llm", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["front"]}}
    res = run(sc, registry=_bounce_registry())
    assert all(r.completed and r.generated_tokens == 5 for r in res.requests)
    assert [s.step for s in res.steps[:2]] == ["0:front", "0:front>llm"]
    assert [s.depth for s in res.steps[:2]] == [0, 1]


BAD = [
    ({"request_types": {"t": ["nope"]}}, "request_types.t.steps[0].client: unknown client 'nope'"),
    ({"request_types": {"t": ["llm"], "u": ["llm"]}}, "request_types.u: no workload sends this request type"),
    ({"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2, "request_type": "zz"}},
     "workload.request_type: unknown request type 'zz'"),
    ({"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2,
                   "mix": [{"request_type": "t", "weight": 1}, {"request_type": "q", "weight": 1}]}},
     "workload.mix[1].request_type: unknown request type 'q'"),
    ({"clients": [{"name": "llm", "stage": {"type": "bounce", "target": "b2"}},
                  {"name": "b2", "stage": {"type": "bounce", "target": "llm"}}]},
     "calls between clients form a cycle"),
    ({"clients": [{"name": "llm", "stage": {"type": "bounce", "target": "ghost"}}]},
     "clients[0].stage.target: unknown client 'ghost'"),
    ({"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2, "client": "llm", "request_type": "t"}},
     "workload.client: with request_types"),
    ({"request_types": {"t": ["llm"], "u": ["llm"]}, "workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2}},
     "workload: several request types are defined (['t', 'u']); say which this workload sends"),
    ({"request_types": None, "workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2, "request_type": "t"}},
     "workload: request_type, mix and request_type_rules need a 'request_types' section"),
]


@pytest.mark.parametrize("patch, message", BAD)
def test_bad_multi_stage_input_names_the_yaml_path(patch, message):
    sc = {"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2, "request_type": "t"},
          "clients": [{"name": "llm", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["llm"]}}
    sc.update({k: v for k, v in patch.items()})
    if sc.get("request_types") is None:
        sc.pop("request_types")
    with pytest.raises(ConfigError) as err:
        run(sc, registry=_bounce_registry())
    assert message in str(err.value)


def test_no_path_between_consecutive_steps_is_refused():
    sc = _pd_scenario(100, 2)
    sc["cluster"]["links"] = []
    with pytest.raises(ConfigError, match=r"request_types\.pd\.steps\[1\]: no path in the cluster from 'pre/0' \(a\) to 'dec/0' \(b\)"):
        run(sc)


def test_bad_multi_stage_input_exits_2_without_traceback(tmp_path):
    import yaml
    sc = _pd_scenario(100, 2)
    sc["clients"][1]["place"] = "nowhere"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(sc))
    proc = subprocess.run([sys.executable, "-m", "hermes_core.cli", "run", str(p), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "clients[1].place: no cluster node or group 'nowhere'" in proc.stderr


def test_requests_are_typed_by_rules_and_an_unmatched_one_is_dropped_with_its_reason():
    sc = {"workload": {"type": "synthetic", "rate_rps": 20, "num_requests": 30,
                       "isl": {"dist": "uniform", "low": 10, "high": 3000}, "osl": 4,
                       "request_type_rules": [{"request_type": "short", "prompt_tokens_below": 1000},
                                              {"request_type": "long", "prompt_tokens_at_least": 1000,
                                               "prompt_tokens_below": 2500}]},
          "clients": [{"name": "small", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "big", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}],
          "request_types": {"short": ["small"], "long": ["big"]}}
    res = run(sc)
    assert res.summary["requests"]["total"] == 30
    for r in res.requests:
        if r.prompt_tokens < 1000:
            assert r.request_type == "short" and r.completed and r.replica == "small/0"
        elif r.prompt_tokens < 2500:
            assert r.request_type == "long" and r.completed and r.replica == "big/0"
        else:
            assert r.dropped_reason == (f"no_matching_rule: prompt {r.prompt_tokens}, output 4 tokens match none "
                                        "of the workload's request_type_rules")
    n_unmatched = sum(r.prompt_tokens >= 2500 for r in res.requests)
    assert n_unmatched > 0
    assert res.summary["requests"]["dropped_reasons"] == {"no_matching_rule": n_unmatched}


def test_placement_matches_the_device_preset():
    sc = _pd_scenario(100, 2)
    sc["cluster"]["nodes"][1]["device"] = {"type": "gpu", "preset": "a100_sxm_80gb"}
    sc["clients"][1]["device"] = {"type": "gpu", "preset": "h100_sxm"}
    with pytest.raises(ConfigError, match=r"clients\[1\]\.device: .*matches no device of \['b'\]"):
        run(sc)
    # unset, the client takes the node's own device
    del sc["clients"][1]["device"]
    res = run(sc)
    assert res.summary["clients"]["dec"]["dec/0"]["device"]["name"].startswith("A100")


@hookimpl
def _register_two_then_one(register):
    register("two_then_one", _TwoThenOne)


class _TwoThenOne(Stage):
    """Test control stage: calls ``a`` and ``b`` at once, then ``c`` with 1 MB from ``a``'s
    result (``source=``), although ``b`` ends last."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    @classmethod
    def devices_needed(cls, config):
        return 0

    @classmethod
    def targets(cls, config):
        return {"a": "a", "b": "b", "c": "c"}

    @property
    def outstanding(self):
        return 0

    def submit(self, request):
        done = {}

        def back(name, c):
            done[name] = c
            if len(done) == 2:
                last = self.ctx.new_call(request, prompt_tokens=10, output_tokens=2)
                self.ctx.call("c", last, lambda c3: self._end(request, c3), nbytes=1e6, source=done["a"])

        for name, out in (("a", 2), ("b", 40)):
            self.ctx.call(name, self.ctx.new_call(request, prompt_tokens=10, output_tokens=out),
                          lambda c, name=name: back(name, c), nbytes=0)

    def _end(self, request, c):
        request.first_token_time, request.finish_time, request.generated_tokens = (
            c.first_token_time, c.finish_time, c.generated_tokens)
        self.ctx.on_done(request)


def test_a_call_moves_data_from_the_call_named_as_its_source():
    plugin = types.SimpleNamespace(hermes_register_stages=_register_two_then_one)
    reg = load_plugins(extra=[("two-then-one", plugin)])
    dev = {"type": "gpu", "preset": "h100_sxm"}
    sc = {"workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 2, "isl": 10, "osl": 2,
                       "request_type": "t"},
          "cluster": {"nodes": [{"name": n, "kind": "device", "device": dev} for n in ("na", "nb", "nc")]
                      + [{"name": "sw", "kind": "switch"}],
                      "links": [{"between": [n, "sw"], "bandwidth_GBps": 10, "latency_us": 1} for n in ("na", "nb", "nc")]},
          "clients": [{"name": "ctl", "stage": {"type": "two_then_one"}}]
                     + [{"name": x, "place": f"n{x}", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}}
                        for x in ("a", "b", "c")],
          "request_types": {"t": ["ctl"]}}
    res = run(sc, registry=reg)
    assert all(r.completed for r in res.requests)
    links = {r["link"]: r["bytes"] for r in res.summary["transfers"]["links"]}
    assert links == pytest.approx({"na->sw": 2e6, "sw->nc": 2e6})  # from a, not from b, which ended last
    to_c = [s for s in res.steps if s.client == "c"]
    assert all(s.bytes_in == 1e6 and s.transfer_s == pytest.approx(2e-6 + 1e6 / 10e9) for s in to_c)
