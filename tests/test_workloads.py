"""The first-party workloads (``hermes_plugins.workloads``), driven by a real Simulator.

Expected values are hand-computed from the first lines of the shipped Azure conversation
trace (``plugins/hermes_plugins/data/azure_llm_trace_2023_conv.csv``) and of the Mooncake
excerpt in ``tests/data/``.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from hermes_core import ConfigError, Request, Simulator, WorkloadError, load_plugins
from hermes_core.engine import PRIORITY_COMPLETION
from hermes_plugins import workloads as wl
from hermes_plugins.workloads import AzureTrace, ClosedLoop, LengthDist, MooncakeTrace, SyntheticWorkload

DATA = Path(__file__).parent / "data"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def build(cls, base_dir: Path = Path("."), seed: int = 0, **cfg):
    """Construct a workload the way the engine does: ``cls(config, rng=..., base_dir=...)``."""
    return cls(cls.Config(**cfg), rng=np.random.default_rng(seed), base_dir=base_dir)


def replay(workload) -> list[Request]:
    """Run ``workload`` on a fresh Simulator; check it never keeps more than one pending
    event, and that each request is submitted at its arrival time."""
    sim = Simulator()
    out: list[Request] = []

    def submit(req: Request) -> None:
        assert sim.pending <= 1
        assert req.arrival_time == sim.now
        out.append(req)

    workload.start(sim, submit)
    assert sim.pending <= 1
    sim.run()
    assert [r.id for r in out] == list(range(len(out)))
    return out


def azure_error(tmp_path: Path, text: str, **cfg) -> str:
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(WorkloadError) as exc:
        build(AzureTrace, tmp_path, path="t.csv", **cfg)
    return str(exc.value)


def mooncake_error(tmp_path: Path, text: str) -> str:
    (tmp_path / "t.jsonl").write_text(text)
    with pytest.raises(WorkloadError) as exc:
        build(MooncakeTrace, tmp_path, path="t.jsonl")
    return str(exc.value)


# ---------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------
def test_plugin_registers_the_four_workloads():
    reg = load_plugins([("workloads", wl)], entry_points=False)
    assert reg.names("workloads") == ["azure_trace", "closed_loop", "mooncake_trace", "synthetic"]


def test_config_errors_name_the_field_through_the_registry():
    reg = load_plugins([("workloads", wl)], entry_points=False)
    with pytest.raises(ConfigError, match=r"^workload\.time_scale: .*greater than 0"):
        reg.validate("workloads", {"type": "azure_trace", "dataset": "azure_conv_2023", "time_scale": 0}, "workload")
    with pytest.raises(ConfigError, match=r"^workload\.bogus: unknown field; allowed: .*dataset"):
        reg.validate("workloads", {"type": "azure_trace", "dataset": "azure_conv_2023", "bogus": 1}, "workload")
    with pytest.raises(ConfigError, match="exactly one of 'path'"):
        reg.validate("workloads", {"type": "azure_trace"}, "workload")


# ---------------------------------------------------------------------------------------
# azure_trace
# ---------------------------------------------------------------------------------------
def test_azure_first_rows_hand_checked():
    # First data lines of the conversation trace:
    #   18:15:46.6805900,374,44   18:15:50.9951690,396,109   18:15:51.2224670,879,55
    #   18:15:51.3910170,91,16    18:15:52.5732450,91,16
    reqs = replay(build(AzureTrace, dataset="azure_conv_2023", max_requests=5))
    assert [r.arrival_time for r in reqs] == pytest.approx(
        [0.0, 4.3145790, 4.5418770, 4.7104270, 5.8926550], abs=1e-9
    )
    assert [(r.prompt_tokens, r.output_tokens) for r in reqs] == [(374, 44), (396, 109), (879, 55), (91, 16), (91, 16)]
    assert all(r.hash_ids is None for r in reqs)


@pytest.mark.parametrize("dataset, n", [("azure_conv_2023", 19_366), ("azure_code_2023", 8_819)])
def test_azure_full_datasets(dataset, n):
    w = build(AzureTrace, dataset=dataset)
    assert w.expected_requests() == n
    reqs = replay(w)
    assert len(reqs) == n
    times = [r.arrival_time for r in reqs]
    assert times[0] == 0.0 and times == sorted(times)
    assert w.horizon_s() == times[-1]
    assert min(r.output_tokens for r in reqs) >= 1 and min(r.prompt_tokens for r in reqs) >= 1


def test_azure_loads_fast():
    wl._load_azure_cached.cache_clear()
    best = math.inf
    for _ in range(3):
        wl._load_azure_cached.cache_clear()
        t0 = time.perf_counter()
        build(AzureTrace, dataset="azure_conv_2023")
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5


def test_azure_time_scale_halves_gaps():
    base = [r.arrival_time for r in replay(build(AzureTrace, dataset="azure_conv_2023", max_requests=50))]
    fast_wl = build(AzureTrace, dataset="azure_conv_2023", max_requests=50, time_scale=0.5)
    fast = [r.arrival_time for r in replay(fast_wl)]
    assert fast == pytest.approx([t / 2 for t in base], abs=1e-12)
    assert fast[1] == pytest.approx(4.3145790 / 2)


def test_azure_duration_cuts():
    # Arrivals 0, 4.31, 4.54, 4.71, 5.89: only the first four are before 5 s.
    w = build(AzureTrace, dataset="azure_conv_2023", duration_s=5.0)
    assert w.expected_requests() == 4
    assert len(replay(w)) == 4
    # At twice the rate, 5 s of simulation cover 10 s of trace.
    w2 = build(AzureTrace, dataset="azure_conv_2023", duration_s=5.0, time_scale=0.5)
    assert all(r.arrival_time < 5.0 for r in replay(w2))
    assert w2.expected_requests() > 4


def test_azure_start_offset_skips_into_the_trace():
    # Skip 4.4 s of trace: the first replayed row is 18:15:51.2224670 (879, 55), 4.541877 s in.
    reqs = replay(build(AzureTrace, dataset="azure_conv_2023", start_offset_s=4.4, max_requests=2))
    assert reqs[0].id == 0 and (reqs[0].prompt_tokens, reqs[0].output_tokens) == (879, 55)
    assert [r.arrival_time for r in reqs] == pytest.approx([4.541877 - 4.4, 4.710427 - 4.4])


def test_azure_relative_path_and_extra_columns(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.csv").write_text(
        "GeneratedTokens,TIMESTAMP,ContextTokens,Note\n"
        "7,2023-11-16 18:00:00.0000000,10,a\n"
        "\n"
        "8,2023-11-16 18:00:01.2500000,20,b\n"
    )
    reqs = replay(build(AzureTrace, tmp_path, path="sub/t.csv"))
    assert [(r.arrival_time, r.prompt_tokens, r.output_tokens) for r in reqs] == [(0.0, 10, 7), (1.25, 20, 8)]


def test_azure_config_needs_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one of 'path'"):
        AzureTrace.Config()
    with pytest.raises(ValidationError, match="exactly one of 'path'"):
        AzureTrace.Config(path="x.csv", dataset="azure_conv_2023")
    with pytest.raises(ValidationError):
        AzureTrace.Config(dataset="azure_chat_2099")


def test_azure_error_missing_file(tmp_path):
    with pytest.raises(WorkloadError) as exc:
        build(AzureTrace, tmp_path, path="x.csv")
    assert str(exc.value).startswith("azure_trace.path: file 'x.csv' does not exist")


def test_azure_error_missing_column(tmp_path):
    msg = azure_error(tmp_path, "TIMESTAMP,ContextTokens\n2023-11-16 18:00:00.0,5\n")
    assert msg == (
        "t.csv:1: missing column GeneratedTokens; an Azure LLM trace needs columns "
        "TIMESTAMP, ContextTokens, GeneratedTokens (found: TIMESTAMP, ContextTokens)"
    )


def test_azure_error_malformed_token_count(tmp_path):
    msg = azure_error(tmp_path, HEADER + "2023-11-16 18:00:00.0,5,3\n2023-11-16 18:00:01.0,5,abc\n")
    assert msg == "t.csv:3: column GeneratedTokens: expected a non-negative integer, got 'abc'"


@pytest.mark.parametrize("bad", ["-5", "nan", "NaN", "1.5", ""])
def test_azure_error_negative_or_nan_tokens(tmp_path, bad):
    msg = azure_error(tmp_path, HEADER + f"2023-11-16 18:00:00.0,{bad},3\n")
    assert msg == f"t.csv:2: column ContextTokens: expected a non-negative integer, got {bad!r}"


def test_azure_error_zero_output(tmp_path):
    rows = "2023-11-16 18:00:00.0,5,3\n2023-11-16 18:00:01.0,5,3\n2023-11-16 18:00:02.0,5,0\n"
    msg = azure_error(tmp_path, HEADER + rows)
    assert msg.startswith("t.csv:4: column GeneratedTokens: output must be >= 1 token")


def test_azure_error_zero_prompt(tmp_path):
    msg = azure_error(tmp_path, HEADER + "2023-11-16 18:00:00.0,0,3\n")
    assert msg == "t.csv:2: column ContextTokens: prompt must be >= 1 token, got 0"


def test_azure_error_unsorted_rows(tmp_path):
    msg = azure_error(
        tmp_path,
        HEADER + "2023-11-16 18:00:00.0,5,3\n2023-11-16 18:00:02.0,5,3\n2023-11-16 18:00:01.0,5,3\n",
    )
    assert msg.startswith("t.csv:4: column TIMESTAMP: '2023-11-16 18:00:01.0' is earlier than "
                          "'2023-11-16 18:00:02.0' on line 3")
    assert "must be sorted" in msg


@pytest.mark.parametrize("bad", ["yesterday", "", "NaT"])
def test_azure_error_bad_timestamp(tmp_path, bad):
    msg = azure_error(tmp_path, HEADER + "2023-11-16 18:00:00.0,5,3\n" + f"{bad},5,3\n")
    assert msg.startswith("t.csv:3: column TIMESTAMP: expected a date and time like")
    assert msg.endswith(f"got {bad!r}")


def test_azure_error_wrong_field_count(tmp_path):
    msg = azure_error(tmp_path, HEADER + "2023-11-16 18:00:00.0,5\n")
    assert msg.startswith("t.csv:2: expected 3 comma-separated fields")


def test_azure_error_empty_file(tmp_path):
    assert azure_error(tmp_path, "").startswith("t.csv: file is empty")
    assert azure_error(tmp_path, HEADER) == "t.csv: no requests after the header on line 1"


def test_trace_error_not_utf8(tmp_path):
    (tmp_path / "t.csv").write_bytes(HEADER.encode() + b"\xff\xfe,1,2\n")
    with pytest.raises(WorkloadError, match=r"^t\.csv: not a UTF-8 text file"):
        build(AzureTrace, tmp_path, path="t.csv")


def test_azure_error_empty_window():
    with pytest.raises(WorkloadError, match="no requests of azure_llm_trace_2023_conv.csv fall in the window"):
        build(AzureTrace, dataset="azure_conv_2023", start_offset_s=10_000)


# ---------------------------------------------------------------------------------------
# mooncake_trace
# ---------------------------------------------------------------------------------------
@pytest.fixture
def mooncake_file(tmp_path) -> Path:
    shutil.copy(DATA / "mooncake_conversation_head20.jsonl", tmp_path / "mc.jsonl")
    return tmp_path


def test_mooncake_replay(mooncake_file):
    w = build(MooncakeTrace, mooncake_file, path="mc.jsonl")
    assert w.expected_requests() == 20 and w.horizon_s() == 3.0
    reqs = replay(w)
    # 10 lines at timestamp 0 ms, then 10 at 3000 ms.
    assert [r.arrival_time for r in reqs] == [0.0] * 10 + [3.0] * 10
    assert (reqs[0].prompt_tokens, reqs[0].output_tokens) == (6758, 500)
    assert reqs[0].hash_ids == tuple(range(14))
    assert (reqs[10].prompt_tokens, reqs[10].output_tokens) == (13544, 71)
    for r in reqs:  # one block id per 512 prompt tokens; every prompt shares block 0
        assert isinstance(r.hash_ids, tuple)
        assert len(r.hash_ids) == math.ceil(r.prompt_tokens / 512)
        assert r.hash_ids[0] == 0


def test_mooncake_options(mooncake_file):
    reqs = replay(build(MooncakeTrace, mooncake_file, path="mc.jsonl", time_scale=0.5, max_requests=12))
    assert [r.arrival_time for r in reqs] == [0.0] * 10 + [1.5] * 2
    assert len(replay(build(MooncakeTrace, mooncake_file, path="mc.jsonl", duration_s=3.0))) == 10


def test_mooncake_without_hash_ids(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"timestamp": 5, "input_length": 3, "output_length": 2}\n')
    (req,) = replay(build(MooncakeTrace, tmp_path, path="t.jsonl"))
    assert (req.arrival_time, req.prompt_tokens, req.output_tokens, req.hash_ids) == (0.0, 3, 2, None)


GOOD = '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [1]}\n'


def test_mooncake_error_missing_file(tmp_path):
    with pytest.raises(WorkloadError, match=r"^mooncake_trace\.path: file 'no\.jsonl' does not exist"):
        build(MooncakeTrace, tmp_path, path="no.jsonl")


def test_mooncake_error_invalid_json(tmp_path):
    msg = mooncake_error(tmp_path, GOOD + '{"timestamp": 1, "input_length": 10,, "output_length": 2}\n')
    assert msg == "t.jsonl:2: column 37: invalid JSON: Expecting property name enclosed in double quotes"


def test_mooncake_error_missing_key(tmp_path):
    msg = mooncake_error(tmp_path, GOOD + GOOD + '{"timestamp": 1, "input_length": 10}\n')
    assert msg.startswith("t.jsonl:3: missing key 'output_length'")


def test_mooncake_error_not_an_object(tmp_path):
    assert mooncake_error(tmp_path, "[1, 2]\n") == "t.jsonl:1: expected a JSON object, got list"


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"timestamp": 1, "input_length": -3, "output_length": 2}',
         "t.jsonl:2: key 'input_length': expected a non-negative integer, got -3"),
        ('{"timestamp": 1, "input_length": "abc", "output_length": 2}',
         "t.jsonl:2: key 'input_length': expected a non-negative integer, got 'abc'"),
        ('{"timestamp": 1, "input_length": 3, "output_length": NaN}',
         "t.jsonl:2: key 'output_length': expected a non-negative integer, got nan"),
        ('{"timestamp": 1, "input_length": 0, "output_length": 2}',
         "t.jsonl:2: key 'input_length': prompt must be >= 1 token, got 0"),
        ('{"timestamp": 1, "input_length": 3, "output_length": 2, "hash_ids": [1, "x"]}',
         "t.jsonl:2: key 'hash_ids': expected a list of integers, got [1, 'x']"),
        ('{"timestamp": "soon", "input_length": 3, "output_length": 2}',
         "t.jsonl:2: key 'timestamp': expected a finite number of milliseconds, got 'soon'"),
    ],
)
def test_mooncake_error_bad_values(tmp_path, line, expected):
    assert mooncake_error(tmp_path, GOOD + line + "\n") == expected


def test_mooncake_error_zero_output(tmp_path):
    msg = mooncake_error(tmp_path, GOOD + '{"timestamp": 1, "input_length": 3, "output_length": 0}\n')
    assert msg.startswith("t.jsonl:2: key 'output_length': output must be >= 1 token")


def test_mooncake_error_unsorted(tmp_path):
    msg = mooncake_error(tmp_path, GOOD.replace("0", "9", 1) + GOOD)
    assert msg.startswith("t.jsonl:2: key 'timestamp': 0 is earlier than 9 on line 1")


def test_mooncake_error_empty(tmp_path):
    assert mooncake_error(tmp_path, "\n\n").startswith("t.jsonl: file is empty")


# ---------------------------------------------------------------------------------------
# synthetic
# ---------------------------------------------------------------------------------------
def gaps_of(reqs: list[Request]) -> np.ndarray:
    return np.diff([r.arrival_time for r in reqs])


def test_poisson_rate_and_cv():
    reqs = replay(build(SyntheticWorkload, arrival="poisson", rate_rps=8.0, num_requests=20_000, isl=100, osl=10))
    assert len(reqs) == 20_000 and reqs[0].arrival_time == 0.0
    g = gaps_of(reqs)
    # The mean of 20k exponential gaps has a relative standard error of 1/sqrt(20k) = 0.7 %.
    assert 1.0 / g.mean() == pytest.approx(8.0, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(1.0, rel=0.05)
    assert {(r.prompt_tokens, r.output_tokens) for r in reqs} == {(100, 10)}


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_cv(cv):
    reqs = replay(build(SyntheticWorkload, arrival="gamma", rate_rps=5.0, cv=cv, num_requests=20_000, isl=1, osl=1))
    g = gaps_of(reqs)
    assert 1.0 / g.mean() == pytest.approx(5.0, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.1)


def test_synthetic_is_deterministic_per_seed():
    cfg = dict(rate_rps=3.0, num_requests=500, isl={"dist": "uniform", "low": 1, "high": 1000},
               osl={"dist": "lognormal", "mean": 200, "sigma": 1.0})
    key = lambda reqs: [(r.arrival_time, r.prompt_tokens, r.output_tokens) for r in reqs]  # noqa: E731
    a = key(replay(build(SyntheticWorkload, seed=7, **cfg)))
    b = key(replay(build(SyntheticWorkload, seed=7, **cfg)))
    c = key(replay(build(SyntheticWorkload, seed=8, **cfg)))
    assert a == b and a != c


def test_synthetic_streams_are_independent():
    base = dict(rate_rps=3.0, num_requests=300, isl=100)
    a = replay(build(SyntheticWorkload, seed=1, osl=5, **base))
    b = replay(build(SyntheticWorkload, seed=1, osl={"dist": "uniform", "low": 1, "high": 9}, **base))
    assert [r.arrival_time for r in a] == [r.arrival_time for r in b]
    # A longer run extends a shorter one.
    c = replay(build(SyntheticWorkload, seed=1, osl=5, rate_rps=3.0, num_requests=30_000, isl=100))
    assert [r.arrival_time for r in c[:300]] == [r.arrival_time for r in a]


def test_synthetic_duration_and_num_requests():
    w = build(SyntheticWorkload, rate_rps=100.0, duration_s=60.0, isl=1, osl=1)
    reqs = replay(w)
    assert w.expected_requests() == len(reqs) and w.horizon_s() == reqs[-1].arrival_time
    assert all(r.arrival_time < 60.0 for r in reqs)
    assert len(reqs) == pytest.approx(6000, rel=0.05)
    # Both set: whichever comes first.
    assert len(replay(build(SyntheticWorkload, rate_rps=100.0, duration_s=60.0, num_requests=10, isl=1, osl=1))) == 10
    assert len(replay(build(SyntheticWorkload, rate_rps=1.0, duration_s=1e-9, num_requests=10, isl=1, osl=1))) == 1


def test_length_distributions():
    rng = np.random.default_rng(0)
    assert LengthDist(dist="fixed", value=7).sample(rng, 3).tolist() == [7, 7, 7]
    u = LengthDist(dist="uniform", low=3, high=5).sample(rng, 3000)
    assert set(u.tolist()) == {3, 4, 5}
    ln = LengthDist(dist="lognormal", mean=500, sigma=0.8).sample(rng, 50_000)
    assert ln.mean() == pytest.approx(500, rel=0.03) and ln.min() >= 1
    clipped = LengthDist(dist="lognormal", mean=500, sigma=2.0, min=10, max=600).sample(rng, 10_000)
    assert clipped.min() == 10 and clipped.max() == 600


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"dist": "uniform", "low": 5}, "dist 'uniform' needs 'high'"),
        ({"dist": "fixed", "value": 5, "sigma": 1}, "'sigma' does not apply to dist 'fixed' (it takes value)"),
        ({"dist": "uniform", "low": 5, "high": 4}, "low must be <= high"),
        ({"dist": "lognormal", "mean": 5, "sigma": 1, "min": 9, "max": 3}, "min must be <= max"),
        ({"dist": "fixed", "value": 0}, "greater than or equal to 1"),
        ({"dist": "normal", "value": 3}, "'fixed', 'uniform' or 'lognormal'"),
    ],
)
def test_length_dist_errors(spec, message):
    with pytest.raises(ValidationError) as exc:
        LengthDist(**spec)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"arrival": "gamma", "rate_rps": 1, "num_requests": 5}, "arrival 'gamma' needs 'cv'"),
        ({"rate_rps": 1, "cv": 2, "num_requests": 5}, "'cv' applies only to arrival 'gamma'"),
        ({"rate_rps": 1}, "set num_requests, duration_s or both"),
        ({"rate_rps": 0, "num_requests": 5}, "greater than 0"),
        ({"rate_rps": 1, "num_requests": 5, "osl": 2.5}, "expected a token count (int)"),
    ],
)
def test_synthetic_config_errors(cfg, message):
    cfg = {"isl": 1, "osl": 1, **cfg}
    with pytest.raises(ValidationError) as exc:
        SyntheticWorkload.Config(**cfg)
    assert message in str(exc.value)


def test_synthetic_refuses_absurd_sizes():
    with pytest.raises(WorkloadError, match=r"rate_rps \* duration_s \(about 3,600,000,000 requests\) exceeds"):
        build(SyntheticWorkload, rate_rps=1e6, duration_s=3600.0, isl=1, osl=1)
    with pytest.raises(WorkloadError, match=r"^synthetic: num_requests \(20,000,000\) exceeds the limit"):
        build(SyntheticWorkload, rate_rps=1.0, num_requests=20_000_000, isl=1, osl=1)


# ---------------------------------------------------------------------------------------
# closed_loop
# ---------------------------------------------------------------------------------------
class FakeServer:
    """Finishes each request ``delay(req)`` seconds after it arrives and tells the workload."""

    def __init__(self, sim: Simulator, workload, delay):
        self.sim, self.workload, self.delay = sim, workload, delay
        self.sent: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.after_arrivals: dict[float, int] = {}  # time -> in flight after that time's arrivals

    def submit(self, req: Request) -> None:
        assert req.arrival_time == self.sim.now
        self.sent.append(req)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.after_arrivals[self.sim.now] = self.in_flight
        self.sim.schedule(self.delay(req), self.finish, req, priority=PRIORITY_COMPLETION)

    def finish(self, req: Request) -> None:
        req.finish_time = self.sim.now
        self.in_flight -= 1
        self.workload.on_request_done(req)


def run_closed(delay, **cfg) -> tuple[FakeServer, ClosedLoop]:
    w = build(ClosedLoop, **cfg)
    sim = Simulator()
    server = FakeServer(sim, w, delay)
    w.start(sim, server.submit)
    sim.run()
    return server, w


def test_closed_loop_fixed_delay_hand_checked():
    # C = 4, N = 10, every request takes 2 s: 4 at t=0, 4 at t=2, 2 at t=4.
    server, w = run_closed(lambda r: 2.0, concurrency=4, num_requests=10, isl=128, osl=16)
    assert [r.arrival_time for r in server.sent] == [0.0] * 4 + [2.0] * 4 + [4.0] * 2
    assert [r.id for r in server.sent] == list(range(10))
    assert {(r.prompt_tokens, r.output_tokens) for r in server.sent} == {(128, 16)}
    assert server.max_in_flight == 4 and server.in_flight == 0 and w.outstanding == 0
    assert w.expected_requests() == 10


def test_closed_loop_keeps_exactly_c_outstanding():
    # Staggered completions: request i takes 1 + (i % 7) / 10 s.
    c, n = 8, 200
    server, w = run_closed(lambda r: 1.0 + (r.id % 7) / 10, concurrency=c, num_requests=n, isl=1, osl=1)
    assert len(server.sent) == n
    assert server.max_in_flight == c
    # After each instant's arrivals, exactly C are in flight until all N have been sent.
    sent_by = 0
    for t in sorted(server.after_arrivals):
        sent_by += sum(1 for r in server.sent if r.arrival_time == t)
        if sent_by < n:
            assert server.after_arrivals[t] == c, t


def test_closed_loop_defaults_and_lengths():
    server, w = run_closed(lambda r: 0.5, concurrency=3, isl={"dist": "uniform", "low": 10, "high": 12}, osl=4)
    assert len(server.sent) == 30  # default num_requests = 10 * concurrency
    assert {r.prompt_tokens for r in server.sent} <= {10, 11, 12}
    # Concurrency above num_requests: all start at once.
    server, _ = run_closed(lambda r: 0.5, concurrency=16, num_requests=5, isl=1, osl=1)
    assert [r.arrival_time for r in server.sent] == [0.0] * 5


def test_closed_loop_ignores_repeated_notifications():
    w = build(ClosedLoop, concurrency=1, num_requests=3, isl=1, osl=1)
    sim = Simulator()
    sent: list[Request] = []
    w.start(sim, sent.append)
    sim.run()
    assert len(sent) == 1
    w.on_request_done(sent[0])
    w.on_request_done(sent[0])
    sim.run()
    assert len(sent) == 2


def test_closed_loop_config_errors():
    with pytest.raises(ValidationError, match=r"warmup_requests \(10\) must be less than num_requests \(10\)"):
        ClosedLoop.Config(concurrency=1, isl=1, osl=1, warmup_requests=10)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ClosedLoop.Config(concurrency=0, isl=1, osl=1)
    assert ClosedLoop.Config(concurrency=2, isl=1, osl=1, warmup_requests=3).total_requests == 20


def test_closed_loop_dataset_entries_repeat_with_shared_block_ids():
    """``num_prompts``: requests reuse a fixed set of prompts; a repeated entry carries the
    same hash ids (and lengths), distinct entries share none."""
    server, _ = run_closed(lambda r: 1.0, concurrency=4, num_requests=30, num_prompts=10,
                           isl={"dist": "uniform", "low": 600, "high": 1600}, osl=8)
    sent = server.sent
    by_ids: dict = {}
    for r in sent:
        assert r.hash_block_tokens == 512
        assert len(r.hash_ids) == -(-r.prompt_tokens // 512)
        by_ids.setdefault(r.hash_ids, set()).add(r.prompt_tokens)
    assert len(by_ids) == 10 and all(len(v) == 1 for v in by_ids.values())
    firsts = {ids[0] for ids in by_ids}
    assert len(firsts) == 10  # no block shared between entries
    # shuffle: each pass of 10 requests covers every entry once
    for k in range(3):
        assert len({r.hash_ids for r in sent[10 * k: 10 * k + 10]}) == 10
    seq, _ = run_closed(lambda r: 1.0, concurrency=2, num_requests=7, num_prompts=3, isl=10, osl=1,
                        prompt_sampling="sequential")
    order = [r.hash_ids for r in seq.sent]
    assert order[:3] == order[3:6] and order[6] == order[0] and len(set(order[:3])) == 3
    plain, _ = run_closed(lambda r: 1.0, concurrency=2, num_requests=4, isl=10, osl=1)
    assert all(r.hash_ids is None for r in plain.sent)


def test_closed_loop_warmup_drains_before_a_burst():
    """``drain_after_warmup``: 5 warm-up requests at concurrency 2 (one per second), then
    the measured ones start together once the last warm-up request is done."""
    server, _ = run_closed(lambda r: 1.0 + 0.5 * (r.id == 4), concurrency=2, num_requests=9,
                           warmup_requests=5, drain_after_warmup=True, isl=1, osl=1)
    t = {r.id: r.arrival_time for r in server.sent}
    assert [t[i] for i in range(5)] == [0.0, 0.0, 1.0, 1.0, 2.0]
    # request 3 ends at 2.0, request 4 at 3.5: nothing is sent in between
    assert t[5] == t[6] == 3.5 and t[7] == t[8] == 4.5
    assert server.max_in_flight == 2 and len(server.sent) == 9
    # fewer warm-up requests than clients: the first wave is the warm-up alone
    server, _ = run_closed(lambda r: 1.0, concurrency=4, num_requests=6, warmup_requests=1,
                           drain_after_warmup=True, isl=1, osl=1)
    assert [r.arrival_time for r in server.sent] == [0.0, 1.0, 1.0, 1.0, 1.0, 2.0]
