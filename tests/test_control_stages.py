"""The control stages ``route`` and ``reasoning`` and the ``reward_model`` stage.

Most tests put a *probe* behind the control stage: a fake LLM with no queue (every call is
served at once, in parallel) whose first token comes ``PREFILL_S`` per computed prompt token
after the call arrives (``prompt - cached``, at least 1) and each further token
``DECODE_S`` later, and which logs every call it gets. That makes every call's prompt,
cached and output tokens, replica and time computable by hand. The others run the real
``llm_serving`` engine (Llama-3.1-8B on an H100) and check token totals.
"""

from __future__ import annotations

import types
from collections import defaultdict

import pytest
from pydantic import BaseModel, ConfigDict

from hermes_core import ConfigError, Request, Simulator, Stage, hookimpl, load_plugins
from hermes_core.api import _build_client, load_scenario, run
from hermes_core.metrics import MetricsCollector
from hermes_core.workload import make_rng
from hermes_plugins.workloads import LengthDist

PREFILL_S = 1e-3  # per computed prompt token
DECODE_S = 1e-2  # per output token after the first

#: (client, replica, request id, prompt, cached, output, time sent) of every call a probe got
LOG: list[tuple[str, str, int, int, int, int, float]] = []


class _Probe(Stage):
    """A fake LLM with no queue (see the module docstring)."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    @classmethod
    def devices_needed(cls, config):
        return 0

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self._n = 0

    @property
    def outstanding(self):
        return self._n

    def submit(self, req: Request) -> None:
        now = self.ctx.sim.now
        LOG.append((self.ctx.client, self.ctx.name, req.id, req.prompt_tokens, req.cached_tokens,
                    req.output_tokens, now))
        self._n += 1
        req.start_time, req.replica = now, self.ctx.name
        computed = max(req.prompt_tokens - req.cached_tokens, 1)
        self.ctx.sim.schedule(PREFILL_S * computed, self._first, req)

    def _first(self, req: Request) -> None:
        req.first_token_time = self.ctx.sim.now
        req.generated_tokens = 1
        if req.on_first_token is not None:
            req.on_first_token(req)
        self.ctx.sim.schedule(DECODE_S * (req.output_tokens - 1), self._end, req)

    def _end(self, req: Request) -> None:
        req.generated_tokens = req.output_tokens
        req.finish_time = self.ctx.sim.now
        self._n -= 1
        self.ctx.on_done(req)


@hookimpl
def _register_probe(register):
    register("probe", _Probe)


_REGISTRY = None


def _registry():
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_plugins(extra=[("probe-test", types.SimpleNamespace(hermes_register_stages=_register_probe))])
    return _REGISTRY


@pytest.fixture(autouse=True)
def _clear_log():
    LOG.clear()
    yield
    LOG.clear()


def _stage(stage: dict):
    """A built stage on one H100 outside any run (to price steps by hand)."""
    sc = load_scenario({"workload": {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2},
                        "clients": [{"name": "x", "device": {"type": "gpu", "preset": "h100_sxm"}, "stage": stage}]})
    client = _build_client(0, sc.config.clients[0], Simulator(), load_plugins(), MetricsCollector(), 0,
                           lambda r: None, sc.base_dir)
    return client.replicas[0].stages[0]


def _probe(name: str, replicas: int = 1) -> dict:
    return {"name": name, "replicas": replicas, "stage": {"type": "probe"}}


def _calls(client: str | None = None) -> dict[int, list[tuple]]:
    """Logged calls per request id (to ``client``, or to every probe), in the order sent."""
    out: dict[int, list[tuple]] = defaultdict(list)
    for rec in LOG:
        if client is None or rec[0] == client:
            out[rec[2]].append(rec)
    return out


def _workload(n: int, isl, osl=5, **typing) -> dict:
    return {"type": "synthetic", "rate_rps": 20, "num_requests": n, "isl": isl, "osl": osl,
            **(typing or {"request_type": "t"})}


def _run(route_or_reasoning: dict, workload: dict, clients: list[dict], types_: dict | None = None, **kw):
    sc = {"name": "ctl", "seed": kw.pop("seed", 0), "workload": workload,
          "clients": [{"name": "ctl", "stage": route_or_reasoning}, *clients],
          "request_types": types_ or {"t": ["ctl"]}}
    return run(sc, registry=kw.pop("registry", _registry()))


# -- route ------------------------------------------------------------------------------------
def test_prompt_length_rule_sends_each_prompt_to_the_first_threshold_above_it():
    route = {"type": "route", "rule": "prompt_length", "default": "c",
             "thresholds": [{"below": 1000, "client": "a"}, {"below": 2000, "client": "b"}]}
    res = _run(route, _workload(40, {"dist": "uniform", "low": 100, "high": 3000}),
               [_probe("a"), _probe("b"), _probe("c")])
    assert all(r.completed and r.generated_tokens == 5 for r in res.requests)
    calls = _calls()
    got = {}
    for r in res.requests:
        (call,) = calls[r.id]  # one call, with the step's prompt, cached and output tokens
        assert call[3:6] == (r.prompt_tokens, 0, 5)
        got[r.id] = call[0]
        want = "a" if r.prompt_tokens < 1000 else "b" if r.prompt_tokens < 2000 else "c"
        assert call[0] == want, r.prompt_tokens
        assert r.replica == f"{want}/0"  # the replica that served the visible tokens
    assert set(got.values()) == {"a", "b", "c"}  # every branch was taken
    rep = res.summary["clients"]["ctl"]["ctl/0"]
    assert rep["calls"] == {c: sum(1 for v in got.values() if v == c) for c in "abc"}
    assert rep["requests"] == 40 and rep["rule"] == "prompt_length"
    # below is exclusive: a prompt of exactly 1000 tokens goes to b
    LOG.clear()
    res = _run(route, _workload(3, 1000), [_probe("a"), _probe("b"), _probe("c")])
    assert [c[0] for c in LOG] == ["b", "b", "b"]


def test_request_type_rule_sends_each_type_to_its_client_and_others_to_default():
    route = {"type": "route", "rule": "request_type", "by_type": {"chat": "a", "code": "b"}, "default": "c"}
    mix = [{"request_type": t, "weight": 1} for t in ("chat", "code", "other")]
    res = _run(route, _workload(30, 500, mix=mix), [_probe("a"), _probe("b"), _probe("c")],
               {"chat": ["ctl"], "code": ["ctl"], "other": ["ctl"]})
    calls = _calls()
    seen = set()
    for r in res.requests:
        assert r.completed
        (call,) = calls[r.id]
        assert call[0] == {"chat": "a", "code": "b", "other": "c"}[r.request_type]
        seen.add(r.request_type)
    assert seen == {"chat", "code", "other"}


def _cascade(p: float) -> dict:
    return {"type": "route", "rule": "cascade", "small": "small", "large": "large", "escalate_p": p}


def test_cascade_with_p_0_never_escalates_and_shows_the_small_models_tokens():
    res = _run(_cascade(0.0), _workload(10, 1000, osl=10), [_probe("small"), _probe("large")])
    assert [c[0] for c in LOG] == ["small"] * 10
    for r in res.requests:
        # small: 1000 prompt tokens at 1 ms, then 9 tokens at 10 ms
        assert r.first_token_time - r.arrival_time == pytest.approx(1.0)
        assert r.finish_time - r.arrival_time == pytest.approx(1.09)
        assert r.generated_tokens == 10 and r.replica == "small/0"
    assert res.summary["clients"]["ctl"]["ctl/0"]["escalations"] == 0


def test_cascade_with_p_1_always_escalates_with_the_small_models_draft_in_the_prompt():
    res = _run(_cascade(1.0), _workload(10, 1000, osl=10), [_probe("small"), _probe("large")])
    calls = _calls()
    for r in res.requests:
        small, large = calls[r.id]
        assert small[0] == "small" and small[3:6] == (1000, 0, 10)
        # prompt + the small model's 10 tokens, no KV (another model), the request's output
        assert large[0] == "large" and large[3:6] == (1010, 0, 10)
        assert large[6] - r.arrival_time == pytest.approx(1.09)  # sent when small finished
        # visible: the large model's first token (1.09 + 1010 x 1 ms) and end (+ 9 x 10 ms)
        assert r.first_token_time - r.arrival_time == pytest.approx(2.1)
        assert r.finish_time - r.arrival_time == pytest.approx(2.19)
        assert r.generated_tokens == 10 and r.replica == "large/0"
    rep = res.summary["clients"]["ctl"]["ctl/0"]
    assert rep["escalations"] == 10 and rep["calls"] == {"large": 10, "small": 10}
    # steps.csv: the route step and its two nested calls per request
    labels = [s.step for s in res.steps if s.request_id == 0]
    assert labels == ["0:ctl", "0:ctl>small", "0:ctl>large"]


def test_cascade_escalates_the_requests_whose_seeded_draw_is_below_p():
    n, seed = 40, 7
    res = _run(_cascade(0.5), _workload(n, 300, osl=3), [_probe("small"), _probe("large")], seed=seed)
    # one uniform draw per request, in arrival order, from the route replica's generator
    u = make_rng(seed, "client", "ctl", "0", "0").random(n)
    want = {i for i in range(n) if u[i] < 0.5}
    escalated = {i for i, cs in _calls("large").items() if cs}
    assert escalated == want and 0 < len(want) < n
    assert res.summary["clients"]["ctl"]["ctl/0"]["escalations"] == len(want)
    LOG.clear()
    again = _run(_cascade(0.5), _workload(n, 300, osl=3), [_probe("small"), _probe("large")], seed=seed)
    assert again.summary["clients"]["ctl"]["ctl/0"]["escalations"] == len(want)
    assert {i for i, cs in _calls("large").items() if cs} == want


def test_a_dropped_escalation_drops_the_request_naming_the_large_replica():
    sc = {"name": "drop", "workload": _workload(2, 1000, osl=50),
          "clients": [{"name": "ctl", "stage": _cascade(1.0)},
                      {"name": "small", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "large", "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                  "max_model_len": 1060}}],
          "request_types": {"t": ["ctl"]}}
    res = run(sc)
    assert res.summary["requests"]["dropped"] == 2
    for r in res.requests:
        assert r.dropped_reason == ("exceeds_max_model_len: at step 0:ctl on large/0: prompt 1050 + output 50 "
                                    "tokens > max_model_len 1060")


@pytest.mark.parametrize("stage", [
    {"type": "route", "rule": "prompt_length", "thresholds": [{"below": 10, "client": "b"}], "default": "a"},
    {"type": "reasoning", "client": "a", "rounds": 1, "tokens_per_round": 30, "answer_tokens": "none"},
], ids=["route", "reasoning"])
def test_kv_that_arrives_with_the_step_reaches_the_first_call(stage):
    """After a prefill-role step, the control step's call carries the prompt's KV
    (cached_tokens = prompt) and hands it to the call it makes."""
    pre = {"name": "pre", "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": "prefill"}}
    res = _run(stage, _workload(2, 700), [pre, _probe("a"), _probe("b")], {"t": ["pre", "ctl"]})
    assert all(r.completed for r in res.requests)
    assert [c[:1] + c[3:5] for c in LOG] == [("a", 700, 700)] * 2


# -- reasoning -------------------------------------------------------------------------------
REASON = {"type": "reasoning", "client": "pol", "rounds": 3, "tokens_per_round": 50, "best_of": 4,
          "reward_client": "rm", "answer_tokens": 20}


def test_reasoning_calls_prompts_cache_and_times_by_hand():
    # 5 requests over 2 policy replicas: an unpinned later call would land on the other one
    res = _run(REASON, _workload(5, 1000), [_probe("pol", replicas=2), _probe("rm", replicas=2)])
    calls = _calls()
    # (client, prompt, cached, output, sent at s after arrival), derived in the comments
    want = (
        # round 1: sample 1 computes the prompt (first token at 1.000 s, done at 1.490 s); its
        # first token forks 3 samples that compute 1 token (done 1.491); 4 rewards of 1050 tokens
        [("pol", 1000, 0, 50, 0.0)] + [("pol", 1000, 1000, 50, 1.0)] * 3 + [("rm", 1050, 0, 1, 1.491)] * 4
        # round 2 at 2.541 s: context 1050 cached; first token 2.542; samples done 3.032 / 3.033
        + [("pol", 1050, 1050, 50, 2.541)] + [("pol", 1050, 1050, 50, 2.542)] * 3 + [("rm", 1100, 0, 1, 3.033)] * 4
        # round 3 at 4.133 s (3.033 + 1.100)
        + [("pol", 1100, 1100, 50, 4.133)] + [("pol", 1100, 1100, 50, 4.134)] * 3 + [("rm", 1150, 0, 1, 4.625)] * 4
        # the answer at 5.775 s (4.625 + 1.150): 20 tokens from the context 1150, cached
        + [("pol", 1150, 1150, 20, 5.775)]
    )
    replicas = set()
    for r in res.requests:
        got = [(c[0], c[3], c[4], c[5], c[6] - r.arrival_time) for c in calls[r.id]]
        assert [g[:4] for g in got] == [w[:4] for w in want]
        assert [g[4] for g in got] == pytest.approx([w[4] for w in want], abs=1e-9)
        # every policy call of a request on one replica (the KV stays there)
        pol = {c[1] for c in calls[r.id] if c[0] == "pol"}
        assert len(pol) == 1 and r.replica == pol.pop()
        replicas.add(r.replica)
        assert r.first_token_time - r.arrival_time == pytest.approx(1.0)
        assert r.finish_time - r.arrival_time == pytest.approx(5.966)  # 5.776 + 19 x 10 ms
        assert r.generated_tokens == 3 * 50 + 20
    assert replicas == {"pol/0", "pol/1"}  # the router spread requests; rounds stayed pinned
    rep = res.summary["clients"]["ctl"]["ctl/0"]
    assert rep == {"requests": 5, "calls": {"pol": 5 * 13, "rm": 5 * 12}, "dropped": 0, "rounds": 15,
                   "samples": 60, "forked": 45, "thought_tokens": 5 * 600, "chosen_tokens": 5 * 150,
                   "answer_tokens": 5 * 20}


def test_reasoning_continues_from_the_highest_scoring_candidate():
    seed, N, R = 11, 4, 3
    dist = {"dist": "uniform", "low": 10, "high": 90}
    cfg = {**REASON, "rounds": R, "best_of": N, "tokens_per_round": dist}
    res = _run(cfg, _workload(1, 500), [_probe("pol"), _probe("rm")], seed=seed)
    # the stage's draws, in order: N lengths, then (all scored) N scores, per round
    rng = make_rng(seed, "client", "ctl", "0", "0")
    context, chosen = 500, []
    for _ in range(R):
        lengths = LengthDist(**dist).sample(rng, N)
        scores = rng.random(N)
        chosen.append(int(lengths[scores.argmax()]))
        context += chosen[-1]
    assert len(set(chosen)) > 1  # the pick mattered
    pol = [c for c in LOG if c[0] == "pol"]
    assert [c[3] for c in pol[::N]] == [500, 500 + chosen[0], 500 + sum(chosen[:2]), context]  # rounds + answer
    assert res.requests[0].generated_tokens == sum(chosen) + 20


def test_reasoning_without_best_of_or_answer_makes_one_call_per_round():
    cfg = {"type": "reasoning", "client": "pol", "rounds": 2, "tokens_per_round": 30, "answer_tokens": "none"}
    res = _run(cfg, _workload(3, 400), [_probe("pol")])
    for r in res.requests:
        assert [c[3:6] for c in _calls()[r.id]] == [(400, 0, 30), (430, 430, 30)]
        assert r.generated_tokens == 60
        # 0.4 + 0.29, then 0.001 + 0.29
        assert r.finish_time - r.arrival_time == pytest.approx(0.981)


def test_reasoning_on_llm_serving_computes_the_tokens_counted_by_hand():
    P, n = 1000, 4
    sc = {"name": "reason", "workload": {"type": "closed_loop", "concurrency": 2, "num_requests": n, "isl": P,
                                         "osl": 7, "request_type": "t"},
          "clients": [{"name": "ctl", "stage": REASON},
                      {"name": "pol", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "rm", "stage": {"type": "reward_model", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["ctl"]}}
    res = run(sc)
    assert all(r.completed and r.generated_tokens == 3 * 50 + 20 for r in res.requests)
    pol = res.summary["clients"]["pol"]["pol/0"]
    assert pol["preemptions"] == 0
    # per request: round 1 sample 1 computes P + 49 decodes, each fork 1 prompt token + 49;
    # rounds 2 and 3 compute 1 + 49 per sample; the answer 1 + 19 (the last token is never fed)
    assert pol["tokens_computed"] == n * ((P + 49) + 3 * 50 + 2 * 4 * 50 + 20)
    # the reward model computes every candidate's whole prompt: 4 x (P+50 + P+100 + P+150)
    assert res.summary["clients"]["rm"]["rm/0"]["tokens_computed"] == n * 4 * (3 * P + 300)
    for r in res.requests:
        mine = [s for s in res.steps if s.request_id == r.id]
        assert sum(s.client == "pol" and s.depth == 1 for s in mine) == 12 + 1
        assert sum(s.client == "rm" and s.depth == 1 for s in mine) == 12
    rep = res.summary["clients"]["ctl"]["ctl/0"]
    assert rep["thought_tokens"] == n * 3 * 4 * 50 and rep["answer_tokens"] == n * 20


def test_reasoning_drops_the_request_when_a_round_outgrows_the_model():
    cfg = {**REASON, "best_of": 2}
    sc = {"name": "grow", "workload": _workload(2, 1000),
          "clients": [{"name": "ctl", "stage": cfg},
                      {"name": "pol", "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "max_model_len": 1120}},
                      {"name": "rm", "stage": {"type": "reward_model", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["ctl"]}}
    res = run(sc)
    assert res.summary["requests"] == {"total": 2, "completed": 0, "dropped": 2, "unfinished": 0,
                                       "dropped_reasons": {"exceeds_max_model_len": 2}}
    # rounds 1 (1000 + 50) and 2 (1050 + 50) fit in 1120 tokens; round 3 (1100 + 50) does not
    for r in res.requests:
        assert "prompt 1100 + output 50 tokens > max_model_len 1120" in r.dropped_reason
    assert res.summary["clients"]["ctl"]["ctl/0"]["rounds"] == 4


def test_same_scenario_and_seed_give_the_same_results():
    cfg = {**REASON, "tokens_per_round": {"dist": "lognormal", "mean": 40, "sigma": 0.8}, "best_of": 3}
    sc = {"name": "det", "seed": 3,
          "workload": _workload(8, {"dist": "uniform", "low": 200, "high": 900}, osl=8,
                                mix=[{"request_type": "t", "weight": 1}, {"request_type": "c", "weight": 1}]),
          "clients": [{"name": "ctl", "stage": cfg},
                      {"name": "casc", "stage": _cascade(0.5) | {"small": "pol", "large": "big"}},
                      {"name": "pol", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "big", "stage": {"type": "llm_serving", "model": "llama-3.1-8b"}},
                      {"name": "rm", "stage": {"type": "reward_model", "model": "llama-3.1-8b"}}],
          "request_types": {"t": ["ctl"], "c": ["casc"]}}
    a, b = run(sc), run(sc)
    a.summary.pop("wall_time_s"), b.summary.pop("wall_time_s")
    assert a.summary == b.summary
    assert [s.row() for s in a.steps] == [s.row() for s in b.steps]
    assert a.summary["requests"]["completed"] == 8
    # ... and another seed gives other results (so the equality above says something)
    c = run({**sc, "seed": 4})
    assert c.summary["clients"]["ctl"] != a.summary["clients"]["ctl"]
    assert c.summary["clients"]["casc"] != a.summary["clients"]["casc"]


# -- reward_model ------------------------------------------------------------------------------
def test_reward_model_call_costs_one_prefill_and_hands_on_one_score():
    P = 1500

    def one(stage: dict):
        return run({"name": "rm", "workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 3,
                                               "isl": P, "osl": 40},
                    "clients": [{"name": "x", "device": {"type": "gpu", "preset": "h100_sxm"}, "stage": stage}]})

    rm = one({"type": "reward_model", "model": "llama-3.1-8b"})
    pre = one({"type": "llm_serving", "model": "llama-3.1-8b", "role": "prefill"})
    stage = _stage({"type": "llm_serving", "model": "llama-3.1-8b"})
    t_prefill = stage.cost.step(P, 1, P * (P + 1) // 2, P, P, 0, 0, 1)[0]  # one step over the prompt
    for a, b in zip(rm.requests, pre.requests):
        assert a.generated_tokens == 1  # output_tokens forced to 1
        assert a.finish_time - a.arrival_time == pytest.approx(t_prefill, rel=1e-12)
        assert a.finish_time - a.arrival_time == b.finish_time - b.arrival_time
    assert rm.summary["clients"]["x"]["x/0"]["tokens_computed"] == 3 * P
    assert rm.summary["clients"]["x"]["x/0"]["role"] == "reward"
    stage = _stage({"type": "reward_model", "model": "llama-3.1-8b"})
    h = stage.handoff(Request(0, 0.0, P, 1))
    assert (h.context_tokens, h.kv_tokens, h.nbytes) == (P, 0, 4)


# -- bad input ---------------------------------------------------------------------------------
BAD = [
    ({"type": "route", "rule": "cascade", "small": "a", "large": "b"},
     "clients[0].stage.escalate_p: rule 'cascade' needs this field"),
    ({"type": "route", "rule": "cascade", "small": "a", "large": "b", "escalate_p": 1.5},
     "clients[0].stage.escalate_p: Input should be less than or equal to 1"),
    ({"type": "route", "rule": "cascade", "small": "a", "large": "b", "escalate_p": 0.1, "default": "a"},
     "clients[0].stage.default: does not apply to rule 'cascade' (it takes small, large, escalate_p)"),
    ({"type": "route", "rule": "prompt_length", "default": "a",
      "thresholds": [{"below": 100, "client": "a"}, {"below": 100, "client": "b"}]},
     "clients[0].stage.thresholds: 'below' must increase from entry to entry: entry 1 has 100 after 100"),
    ({"type": "route", "rule": "request_type", "by_type": {"t": "ghost"}, "default": "a"},
     "clients[0].stage.by_type.t: unknown client 'ghost'"),
    ({"type": "route", "rule": "nearest"}, "clients[0].stage.rule: Input should be"),
    ({"type": "reasoning", "client": "a", "rounds": 2, "tokens_per_round": 10, "best_of": 2},
     "clients[0].stage.reward_client: best_of 2 needs a reward_client to pick among the samples"),
    ({"type": "reasoning", "client": "a", "rounds": 0, "tokens_per_round": 10},
     "clients[0].stage.rounds: Input should be greater than or equal to 1"),
    ({"type": "reasoning", "client": "a", "rounds": 1, "tokens_per_round": 10, "answer_tokens": "all"},
     "clients[0].stage.answer_tokens"),
    ({"type": "reasoning", "client": "ctl", "rounds": 1, "tokens_per_round": 10},
     "calls between clients form a cycle"),
]


@pytest.mark.parametrize("stage,message", BAD, ids=[m.split(": ", 1)[-1][:40] for _, m in BAD])
def test_bad_control_config_is_one_config_error_naming_the_field(stage, message):
    with pytest.raises(ConfigError) as exc:
        _run(stage, _workload(1, 10), [_probe("a"), _probe("b")])
    assert message in str(exc.value)


def test_reward_model_rejects_a_role_and_control_stages_need_request_types():
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage\.role: reward_model always computes its prompt"):
        run({"workload": _workload(1, 10, client="x"),
             "clients": [{"name": "x", "stage": {"type": "reward_model", "model": "llama-3.1-8b", "role": "decode"}}]})
    with pytest.raises(ConfigError, match=r"clients\[0\]\.stage: this stage calls other clients, which needs"):
        run({"workload": _workload(1, 10, client="r"),
             "clients": [{"name": "r", "stage": _cascade(0.5)}, {"name": "small", "stage": {"type": "probe"}},
                         {"name": "large", "stage": {"type": "probe"}}]}, registry=_registry())


def test_route_targets_name_every_client_in_the_config():
    from hermes_plugins.stages.control import Route, RouteConfig

    cfg = RouteConfig(rule="prompt_length", default="d", thresholds=[{"below": 5, "client": "a"},
                                                                     {"below": 9, "client": "b"}])
    assert Route.targets(cfg) == {"thresholds[0].client": "a", "thresholds[1].client": "b", "default": "d"}
    cfg = RouteConfig(rule="request_type", by_type={"chat": "a"}, default="d")
    assert Route.targets(cfg) == {"by_type.chat": "a", "default": "d"}
    cfg = RouteConfig(rule="cascade", small="s", large="l", escalate_p=0)
    assert Route.targets(cfg) == {"small": "s", "large": "l"}
