"""``hermes validate serving``: measured closed-loop serving points (aiconfigurator's
silicon sample) against hermes, and the model pieces that validation rests on."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hermes_core import ConfigError, api
from hermes_plugins.validation import serving as S

DATA = Path(__file__).parent / "data" / "aiconfigurator_silicon" / "silicon_sample_h200.csv"
ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _validate_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``hermes validate serving --format aiconfigurator-silicon ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "hermes_core.cli", "validate", "serving", "--format", "aiconfigurator-silicon",
         *args],
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def sample_result():
    points = S.read_points(DATA)
    return points, S.validate_points(points, jobs=1)


def test_sample_supported_rows_are_simulated(sample_result):
    points, (rows, unsupported) = sample_result
    assert len(rows) == len(points) == 10
    simulated = [r for r in rows if r["status"] == "simulated"]
    assert sorted(r["model"] for r in simulated) == sorted([
        "Llama-3.1-70B", "Llama-3.1-70B", "Qwen3-235B-A22B-FP8", "Qwen3-235B-A22B-FP8",
        "Llama-3.1-8B-Instruct-FP8", "gpt-oss-120b", "DeepSeek-V3"])
    for r in simulated:
        for m in ("ttft", "tpot"):
            assert r[f"{m}_predicted"] > 0 and math.isfinite(r[f"{m}_predicted"])
            assert r[f"{m}_ape"] == pytest.approx(abs(r[f"{m}_predicted"] / r[f"{m}_measured"] - 1) * 100)


def test_sample_unsupported_rows_are_reported_with_reasons(sample_result):
    _, (rows, unsupported) = sample_result
    reasons = {r["id"]: r["reason"] for r in rows if r["status"] != "simulated"}
    assert len(unsupported) == len(reasons) == 3
    assert {rid for rid, _ in unsupported} == set(reasons)
    text = "\n".join(reasons.values())
    assert "disaggregated serving (mode=disagg)" in text
    # DeepSeek-R1 with multi-head latent attention is modelled; its attention DP is not
    assert "attention data parallelism (attention_dp_size=8) is not modelled" in text
    assert "inconsistent parallelism: tp_size x attention_dp_size = 1 GPUs for attention but moe_tp_size x moe_ep_size = 2" in text
    # expert parallelism inside the TP group is simulated (moe_tp 1 x moe_ep 2 = tp 2)
    ep = next(r for r in rows if r["id"].endswith("2000x500_c16_tp2_epnone_16"))
    assert ep["status"] == "simulated"


def test_cli_on_sample_prints_tables_and_writes_csv(tmp_path):
    out = tmp_path / "serving.csv"
    proc = _validate_cli(str(DATA), "--output", str(out), "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "TTFT (mean per point): predicted vs measured" in proc.stdout
    assert "TPOT (mean per point): predicted vs measured" in proc.stdout
    assert "rows not simulated: 3 of 10" in proc.stdout
    assert "overall" in proc.stdout and "Llama-3.1-70B" in proc.stdout
    rows = _rows(out)
    assert len(rows) == 10
    assert sum(r["status"] == "simulated" for r in rows) == 7
    assert all(r["reason"] for r in rows if r["status"] != "simulated")
    assert {"ttft_predicted", "ttft_measured", "ttft_ape", "tpot_predicted", "tpot_measured", "tpot_ape"} <= set(rows[0])


def test_filter_keeps_matching_rows_and_names_unknown_columns(tmp_path):
    points = S.read_points(DATA)
    flt = S.parse_filters(DATA, ["backend=vllm", "tp_size=4"], points[0].raw)
    kept = [p for p in points if S._matches(p, flt)]  # "4" matches the file's "4.0" and "4"
    assert {p.backend for p in kept} == {"vllm"} and {p.tp for p in kept} == {4}
    with pytest.raises(ConfigError, match=r"has no column 'gpu'"):
        S.parse_filters(DATA, ["gpu=h200"], points[0].raw)
    with pytest.raises(ConfigError, match="expected COLUMN=VALUE"):
        S.parse_filters(DATA, ["backend"], points[0].raw)


def test_handmade_file_with_unseen_points_runs(tmp_path):
    """Rows of the same format that appear nowhere in the data (other ISL/OSL/concurrency,
    another catalog model). The "measured" numbers are made up: the test checks that the
    points run and are compared, not the error."""
    header = list(_rows(DATA)[0])
    base = dict.fromkeys(header, "")
    base.update(system="h200_sxm", mode="agg", precision="fp8", pp_size="1", attention_dp_size="1",
                moe_tp_size="1", moe_ep_size="1")
    rows = [
        {**base, "id": "handmade_llama8b_vllm_512x64_c5", "backend": "vllm", "backend_version": "0.11.0",
         "model_path": "meta-llama/Llama-3.1-8B-Instruct", "isl": "512", "osl": "64", "gemm_quant_mode": "fp8",
         "moe_quant_mode": "fp8", "batch_size": "5", "tp_size": "1", "silicon_ttft_ms": "40", "silicon_tpot_ms": "6"},
        {**base, "id": "handmade_qwen3_32b_trtllm_3000x200_c3", "backend": "trtllm", "precision": "bfloat16",
         "model_path": "Qwen/Qwen3-32B", "isl": "3000", "osl": "200", "gemm_quant_mode": "bfloat16",
         "moe_quant_mode": "bfloat16", "batch_size": "3", "tp_size": "2", "moe_tp_size": "2",
         "silicon_ttft_ms": "150", "silicon_tpot_ms": "12"},
        {**base, "id": "handmade_llama70b_attention_dp", "backend": "sglang", "model_path": "meta-llama/Llama-3.1-70B",
         "isl": "2048", "osl": "256", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "batch_size": "16",
         "tp_size": "4", "attention_dp_size": "2", "silicon_ttft_ms": "200", "silicon_tpot_ms": "15"},
    ]
    path = _write(tmp_path / "handmade.csv", rows, header)
    out = tmp_path / "out.csv"
    proc = _validate_cli(str(path), "-o", str(out), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: r for r in _rows(out)}
    assert got["handmade_llama8b_vllm_512x64_c5"]["status"] == "simulated"
    assert got["handmade_qwen3_32b_trtllm_3000x200_c3"]["status"] == "simulated"
    assert float(got["handmade_qwen3_32b_trtllm_3000x200_c3"]["ttft_predicted"]) > 0
    assert "attention data parallelism (attention_dp_size=2)" in got["handmade_llama70b_attention_dp"]["reason"]


def test_missing_column_names_file_and_column(tmp_path):
    rows = _rows(DATA)
    header = [c for c in rows[0] if c != "silicon_tpot_ms"]
    path = _write(tmp_path / "no_tpot.csv", rows, header)
    with pytest.raises(ConfigError) as exc:
        S.read_points(path)
    assert str(exc.value).startswith(f"{path}: column 'silicon_tpot_ms' is missing")
    proc = _validate_cli(str(path), "-o", str(tmp_path / "x.csv"), timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "no_tpot.csv" in proc.stderr and "silicon_tpot_ms" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_format_file_is_one_clear_error(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,44\n")
    with pytest.raises(ConfigError, match=r"trace\.csv: column 'id' is missing \(format aiconfigurator-silicon"):
        S.read_points(path)
    binary = tmp_path / "x.parquet"
    binary.write_bytes(b"PAR1\x15\x04\x15\x10\xff\xfe\x00\x88")
    with pytest.raises(ConfigError, match=r"x\.parquet: "):
        S.read_points(binary)
    with pytest.raises(ConfigError, match=r"missing\.csv: no such file"):
        S.read_points(tmp_path / "missing.csv")


def test_bad_cell_names_file_line_and_column_and_keeps_the_other_rows(tmp_path):
    rows = _rows(DATA)
    rows[2]["isl"] = "long"
    path = _write(tmp_path / "bad.csv", rows)
    points = S.read_points(path)  # the file is read: one row is not usable, the others are
    assert len(points) == len(rows)
    assert S.unsupported_reason(points[2]) == f"{path}:4: column 'isl': not a number ('long')"
    assert points[1].cell_error is None


def test_moe_columns_at_zero_on_a_dense_row_are_not_an_error(tmp_path):
    """aiconfigurator's own silicon file writes moe_ep_size 0 on dense-model rows."""
    rows = _rows(DATA)
    dense = next(i for i, r in enumerate(rows) if "Llama" in r["model_path"])
    rows[dense]["moe_ep_size"] = "0"
    rows[dense]["moe_tp_size"] = "0"
    points = S.read_points(_write(tmp_path / "zeros.csv", rows))
    assert points[dense].cell_error is None and points[dense].moe_ep is None
    assert S.unsupported_reason(points[dense]) == S.unsupported_reason(S.read_points(DATA)[dense])


def test_scenario_mapping_follows_the_documented_assumptions():
    points = {p.id: p for p in S.read_points(DATA)}
    trt = points["2026_04_06_llama_3_1_70b_h200_sxm_trtllm_fp8_agg_1024x1024_c4_tp8_ep1_917"]
    sc, plan = S.scenario_for(trt, protocol="aiperf")
    st = sc["clients"][0]["stage"]
    # aiperf as aiconfigurator runs it: 2C warm-up drained before 20C measured requests,
    # prompts drawn (shuffled) from its 100 default dataset entries
    assert sc["workload"] == {"type": "closed_loop", "concurrency": 4, "isl": 1024, "osl": 1024,
                              "num_requests": 88, "warmup_requests": 8, "drain_after_warmup": True}
    assert (plan.warmup, plan.measured_rounds, plan.num_requests) == (8, 20, 88)
    assert st["prefix_caching"] is False
    # --prompt-reuse: aiperf's 100 default dataset entries, each engine's default caching
    reuse, _ = S.scenario_for(trt, prompt_reuse=True, protocol="aiperf")
    assert reuse["workload"]["num_prompts"] == 100 and reuse["workload"]["prompt_sampling"] == "shuffle"
    assert reuse["clients"][0]["stage"]["prefix_caching"] is False  # TensorRT-LLM: no block reuse
    assert sc["clients"][0]["device"] == {"type": "gpu", "preset": "h200_sxm"}
    assert st["model"] == "llama-3.1-70b" and st["parallelism"] == {"tp": 8, "pp": 1}
    assert st["precision"] == {"weights": "fp8", "activations": "bf16", "kv_cache": "fp8"}
    assert st["max_num_batched_tokens"] == 1536  # 4 + 1024 + 500 = 1528, rounded up to 32
    assert st["overlap_host"] is True
    # TensorRT-LLM sizes its KV cache from the memory left after weights and activations
    assert st["kv_cache_free_memory_fraction"] == 0.9
    sc, _ = S.scenario_for(trt, limits="defaults", kv="bf16", protocol="aiperf")
    st = sc["clients"][0]["stage"]
    assert st["max_num_batched_tokens"] == 8192 and st["precision"]["kv_cache"] == "bf16"
    vllm = next(p for p in points.values() if p.backend == "vllm")
    assert S.scenario_for(vllm, protocol="aiperf")[0]["clients"][0]["stage"]["prefix_caching"] is False
    assert "kv_cache_free_memory_fraction" not in S.scenario_for(vllm, protocol="aiperf")[0]["clients"][0]["stage"]
    assert S.scenario_for(vllm, prompt_reuse=True, protocol="aiperf")[0]["clients"][0]["stage"]["prefix_caching"] is True
    # InferenceMAX's client sends distinct random prompts: --prompt-reuse leaves its rows alone
    assert S.scenario_for(vllm, prompt_reuse=True)[0]["clients"][0]["stage"]["prefix_caching"] is False
    # long points run 3 measured rounds; the burst round keeps its weight of 1/20
    long = S.plan_for(128, 8192)
    assert (long.warmup, long.measured_rounds, long.num_requests) == (256, 3, 640)
    assert long.burst_weight == pytest.approx(1 / 20)
    assert S.plan_for(128, 8192, rounds=20).num_requests == 22 * 128
    assert S.plan_for(4, 1024).measured_rounds == 20


def _vllm_point(source: str, isl: int = 1024, c: int = 4) -> S.Point:
    return S.Point(line=2, raw={"silicon_data_source": source}, id="x", backend="vllm",
                   model_path="meta-llama/Llama-3.1-70B", system="h200_sxm", mode="agg", isl=isl,
                   osl=64, gemm_quant_mode="fp8", batch_size=c, tp=8, pp=1, attention_dp=None,
                   moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)


@pytest.mark.parametrize("source, budget", [
    # measured before aiconfigurator's generator passed vLLM a budget: identified C + isl + 500
    ("source_file=2026-04-06.csv; model=Llama-3.1-70B; measured=2025-10-29T00:00:00.000Z", 4 + 1024 + 500),
    # from 2026-01-08 on, and undated rows: the generator's rule C + isl + 1500
    ("source_file=x.csv; measured=2026-01-08T00:00:00.000Z", 4 + 1024 + 1500),
    ("source_file=/gap-analysis/data/h200_sxm/vllm/0.12.0/m.csv; silicon_concurrency=4", 4 + 1024 + 1500),
    ("", 4 + 1024 + 1500),
    # the stock vllm/vllm-openai image: vLLM's own default on an H200
    ("db-dump/2026-04-27; measured=2026-03-01T00:00:00.000Z; vllm/vllm-openai:v0.16.0", 8192),
])
def test_vllm_budget_follows_the_rows_provenance(source, budget):
    """Under the aiperf protocol (aiconfigurator's deployments)."""
    p = _vllm_point(source)
    assert S.scenario_for(p, protocol="aiperf")[0]["clients"][0]["stage"]["max_num_batched_tokens"] == budget
    assert S.scenario_for(p, limits="defaults", protocol="aiperf")[0]["clients"][0]["stage"]["max_num_batched_tokens"] == 8192


def test_measured_date_reads_the_data_source_field():
    assert S.measured_date(_vllm_point("a; measured=2025-10-29T00:00:00.000Z; b")) == S.datetime.date(2025, 10, 29)
    assert S.measured_date(_vllm_point("a; measured=2026-13-40")) is None
    assert S.measured_date(_vllm_point("no date here")) is None


def _one_request(model: str = "llama-3.1-8b", **stage) -> tuple[float, float]:
    """TTFT and TPOT (s) of one request (16 prompt, 6 output tokens) of catalog ``model``
    (default Llama-3.1-8B) on an H200 with ``stage`` settings."""
    sc = {"name": "t", "workload": {"type": "closed_loop", "concurrency": 1, "isl": 16, "osl": 6,
                                    "num_requests": 1},
          "clients": [{"name": "c", "device": {"type": "gpu", "preset": "h200_sxm"},
                       "stage": {"type": "llm_serving", "model": model, "max_model_len": 64, **stage}}]}
    r = api.run(sc).requests[0]
    return r.first_token_time - r.arrival_time, (r.finish_time - r.first_token_time) / (r.generated_tokens - 1)


def test_overlapped_host_time_is_max_not_sum():
    """``overlap_host``: a step lasts max(device, host); without it device + host."""
    def tpot(**stage):
        return _one_request(**stage)[1]

    device = tpot()
    assert device < 0.02
    assert tpot(step_overhead_us=50_000, overlap_host=True) == pytest.approx(0.05)
    assert tpot(step_overhead_us=50_000) == pytest.approx(0.05 + device)
    assert tpot(seq_overhead_us=50_000, overlap_host=True) == pytest.approx(0.05)  # one sequence
    assert tpot(step_overhead_us=1, overlap_host=True) == pytest.approx(device)


def test_eager_prefill_steps_wait_for_the_host_to_launch_every_operator():
    """``eager_op_us``: a step with a prefill chunk runs without CUDA graphs, so it lasts at
    least ``eager_op_us x`` the forward pass's operators (Llama-3.1-8B: 32 layers x 9 + the
    embedding, final add + norm and LM head = 291); decode-only steps are unaffected."""
    ttft, tpot = _one_request()
    assert ttft < 0.02
    eager_ttft, eager_tpot = _one_request(eager_op_us=1000)
    assert eager_ttft == pytest.approx(291 * 1e-3)
    assert eager_tpot == pytest.approx(tpot)


def test_eager_moe_layers_add_host_time_to_prefill_steps():
    """``eager_moe_layer_us``: every MoE layer adds that host time to a step holding a
    prefill chunk (gpt-oss-120b: 36 layers, all MoE: 1 ms each adds 36 ms to the TTFT of a
    lone request, whose prefill is one step); decode-only steps and dense models are
    unaffected."""
    ttft, tpot = _one_request("gpt-oss-120b")
    eager_ttft, eager_tpot = _one_request("gpt-oss-120b", eager_moe_layer_us=1000)
    assert eager_ttft - ttft == pytest.approx(36e-3)
    assert eager_tpot == pytest.approx(tpot)
    assert _one_request(eager_moe_layer_us=1000) == pytest.approx(_one_request())


def test_scheduling_ahead_takes_a_late_arrival_one_step_later(tmp_path):
    """A scheduler that schedules ahead (``schedule_ahead``, by default ``overlap_host``)
    decides step k+1 while step k runs: a request arriving during step k first runs in step
    k+2. With ``overlap_host`` steps last exactly 50 ms (host time over a shorter device step). A arrives at 0 and runs steps [0, 50), [50, 100), ...
    B arrives at 75 ms, during step 2: step 3 [100, 150) was already decided, so B's prefill
    is step 4 [150, 200) and its TTFT 125 ms; without overlap it joins step 3 (TTFT
    75 ms + its share of the longer step). A request reaching an idle engine starts at once."""
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 16, "output_length": 10, "hash_ids": [1]}\n'
                     '{"timestamp": 75, "input_length": 16, "output_length": 3, "hash_ids": [2]}\n'
                     '{"timestamp": 1000, "input_length": 16, "output_length": 3, "hash_ids": [3]}\n')

    def run(**stage):
        sc = {"name": "t", "workload": {"type": "mooncake_trace", "path": str(trace)},
              "clients": [{"name": "c", "device": {"type": "gpu", "preset": "h200_sxm"},
                           "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "max_model_len": 64,
                                     "step_overhead_us": 50_000, **stage}}]}
        reqs = sorted(api.run(sc).requests, key=lambda r: r.arrival_time)
        return [r.first_token_time - r.arrival_time for r in reqs]

    a, b, idle = run(overlap_host=True)
    assert a == pytest.approx(0.05)
    assert b == pytest.approx(0.125)
    assert idle == pytest.approx(0.05)
    _, b_sync, _ = run()
    step = b_sync - 0.025  # B joins step 3, which starts 25 ms after it arrives
    assert 0.05 < step < 0.07
    # schedule_ahead apart from overlap_host: host time still added, B one step later
    _, b_ahead, _ = run(schedule_ahead=True)
    assert 0.05 < b_ahead - b_sync < 0.07
    assert run(overlap_host=True, schedule_ahead=False)[1] == pytest.approx(0.075)
    # SGLang's overlap scheduler schedules ahead; its host time adds to the GPU's
    sg = S.scenario_for(dataclasses.replace(_vllm_point(GAP), backend="sglang"))[0]["clients"][0]["stage"]
    assert sg["schedule_ahead"] is True and sg["overlap_host"] is False
    assert "schedule_ahead" not in S.scenario_for(_vllm_point(GAP))[0]["clients"][0]["stage"]


def _closed_loop(concurrency, num_requests, osl, **stage):
    sc = {"name": "t", "workload": {"type": "closed_loop", "concurrency": concurrency, "isl": 16, "osl": osl,
                                    "num_requests": num_requests},
          "clients": [{"name": "c", "device": {"type": "gpu", "preset": "h200_sxm"},
                       "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "max_model_len": 64, **stage}}]}
    return api.run(sc)


def test_frontend_streams_tokens_after_the_engine():
    """``frontend_token_us``: one FIFO server per replica streams each step's tokens. With one
    request and a front-end faster than the engine, every token arrives ``c`` after its step
    (TTFT and E2E + c, ITL unchanged); slower than the engine, the tokens leave one per ``c``
    after the first (TPOT = c) and the client's next request waits for the last one."""
    base = _closed_loop(1, 1, 6).requests[0]
    step = (base.finish_time - base.first_token_time) / 5
    fast = _closed_loop(1, 1, 6, frontend_token_us=0.5 * step * 1e6).requests[0]
    assert fast.first_token_time == pytest.approx(base.first_token_time + 0.5 * step)
    assert fast.finish_time == pytest.approx(base.finish_time + 0.5 * step)
    c = 10 * step
    slow = _closed_loop(1, 1, 6, frontend_token_us=c * 1e6).requests[0]
    assert slow.first_token_time == pytest.approx(base.first_token_time + c)
    assert slow.finish_time == pytest.approx(slow.first_token_time + 5 * c)
    assert slow.max_itl == pytest.approx(c)
    # closed loop: the second request is sent when the first one's last token reaches the client
    two = _closed_loop(1, 2, 6, frontend_token_us=c * 1e6).requests
    assert two[1].arrival_time == pytest.approx(two[0].finish_time)


def test_frontend_is_shared_first_in_first_out():
    """Two requests decoding together hand the front-end two tokens per step: with the
    front-end the bottleneck, each client receives a token every 2c (TPOT 2c), and the
    default 0 leaves the engine's own times."""
    base = _closed_loop(2, 2, 6).requests
    step = (base[0].finish_time - base[0].first_token_time) / 5
    c = 10 * step
    reqs = _closed_loop(2, 2, 6, frontend_token_us=c * 1e6).requests
    for r in reqs:
        assert (r.finish_time - r.first_token_time) / 5 == pytest.approx(2 * c, rel=0.05)
    assert _closed_loop(2, 2, 6, frontend_token_us=0).requests[0].finish_time == base[0].finish_time


def test_sglang_rows_stream_through_a_front_end():
    sg = S.Point(line=2, raw={"silicon_data_source": GAP}, id="x", backend="sglang",
                 model_path="meta-llama/Llama-3.1-8B-Instruct", system="h200_sxm", mode="agg", isl=1000, osl=500,
                 gemm_quant_mode="fp8_block", batch_size=512, tp=8, pp=1, attention_dp=None, moe_tp=None,
                 moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)
    stage = S.scenario_for(sg)[0]["clients"][0]["stage"]
    assert stage["frontend_token_us"] == S.FRONTEND_TOKEN_US["sglang"] == 50.0
    assert stage["seq_overhead_us"] == 20.0
    assert stage["eager_moe_layer_us"] == S.EAGER_MOE_LAYER_US["sglang"] > 0  # charged to MoE layers only
    assert S.scenario_for(_vllm_point(GAP))[0]["clients"][0]["stage"]["frontend_token_us"] == 0.0


def test_host_time_follows_the_engine_build():
    """TensorRT-LLM rows take :data:`HOST_TIME`'s step (identified on the 1.1.0rc2.post2 image
    of the Llama-3.1-70B rows) unless their model ran another build: gpt-oss-120b's
    ``gpt-oss-dev`` image has its own (:data:`HOST_TIME_BY_MODEL`)."""
    def trt(model):
        return S.Point(line=2, raw={"silicon_data_source": "source_file=2025-11-02.csv"}, id="x",
                       backend="trtllm", model_path=model, system="h200_sxm", mode="agg", isl=1024,
                       osl=1024, gemm_quant_mode="fp8", batch_size=4, tp=8, pp=1, attention_dp=None,
                       moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)

    def host(model):
        st = S.scenario_for(trt(model))[0]["clients"][0]["stage"]
        return st["step_overhead_us"], st["seq_overhead_us"], st["overlap_host"]

    assert host("meta-llama/Llama-3.1-70B") == S.HOST_TIME["trtllm"] == (5900.0, 115.0, True)
    assert host("openai/gpt-oss-120b") == S.HOST_TIME_BY_MODEL[("trtllm", "openai/gpt-oss-120b")]
    assert host("openai/gpt-oss-120b")[0] < S.HOST_TIME["trtllm"][0]


def test_shared_experts_stream_shortens_the_steps_it_covers(tmp_path):
    """``shared_experts_stream_tokens``: MoE layers whose shared experts run beside the
    routed ones shorten every step of at most that many tokens; with
    ``shared_experts_stream_in_prefill: false`` only the decode-only steps, so a lone
    request's TTFT (its prefill step) stays and its TPOT falls."""
    import json

    from conftest import TINY_MODEL

    cfg = {**TINY_MODEL, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
           "shared_expert_intermediate_size": 128}
    path = tmp_path / "tiny-shared" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    ttft, tpot = _one_request(str(path))
    both = _one_request(str(path), shared_experts_stream_tokens=64)
    decode_only = _one_request(str(path), shared_experts_stream_tokens=64, shared_experts_stream_in_prefill=False)
    assert both[0] < ttft and both[1] < tpot
    assert decode_only[0] == pytest.approx(ttft)
    assert decode_only[1] == pytest.approx(both[1])
    # a step larger than the threshold (the 16-token prefill) runs them in turn
    assert _one_request(str(path), shared_experts_stream_tokens=8)[0] == pytest.approx(ttft)


def test_validation_runs_shared_experts_as_each_engine_does():
    """vLLM rows: the shared-experts stream up to 256 tokens in any step; SGLang and
    TensorRT-LLM rows: every decode step (fused expert, or two streams under CUDA graphs)."""
    def stage(backend, model):
        p = S.Point(line=2, raw={"silicon_data_source": "source_file=2025-11-02.csv"}, id="x",
                    backend=backend, model_path=model, system="h200_sxm", mode="agg", isl=1024,
                    osl=1024, gemm_quant_mode="fp8", batch_size=64, tp=8, pp=1, attention_dp=None,
                    moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)
        st = S.scenario_for(p)[0]["clients"][0]["stage"]
        return st["shared_experts_stream_tokens"], st["shared_experts_stream_in_prefill"], st["max_num_seqs"]

    assert stage("vllm", "moonshotai/Kimi-K2.5")[:2] == (256, True)
    for backend in ("sglang", "trtllm"):
        tokens, in_prefill, seqs = stage(backend, "deepseek-ai/DeepSeek-R1")
        assert not in_prefill and tokens >= seqs >= 64


def test_moe_experts_are_one_grouped_gemm():
    """A decode step of one token on Qwen3-235B-A22B reads its ``top_k`` experts' weights
    in one grouped kernel per projection: about ``top_k`` experts' bytes at the GEMM's
    memory rate plus one launch each, not ``top_k`` launches."""
    from hermes_core import ModelSpec, Topology
    from hermes_plugins.devices import GPU, GPUConfig
    from hermes_plugins.models import catalog_path
    from hermes_plugins.stages.step_cost import StepCostModel

    m = ModelSpec.from_file(catalog_path("qwen3-235b-a22b"))
    # the plain grouped GEMM: no fused-MoE efficiency or per-layer routing time
    dev = GPU(GPUConfig(preset="h200_sxm", efficiency={"moe_compute": 1.0, "moe_launch_us": 0.0}))
    names = ["d0", "d1"]
    cost = StepCostModel(m, dev, 2, 1, "fp8", "bf16", "fp8", Topology.single_switch(names, 1e11, 1e-6),
                         names, 64, 8)
    op = next(o for o in m.layer_operators(2, moe=True) if o.kind == "moe")
    t, _, nbytes = cost._moe(op, [1], "fp8", 2)
    weights = op.top_k * 3 * op.n * op.k  # fp8: one byte each
    stream = weights / (dev.memory_bandwidth * dev.eff.gemm_memory)
    assert nbytes[0] >= weights
    assert stream < t[0] < stream + 3 * dev.eff.launch_us * 1e-6 + 2e-6


def test_moe_efficiency_factors():
    """``moe_launch_us`` adds exactly its time to every MoE layer; ``moe_compute`` divides
    the compute-bound expert GEMMs' time (a large prefill) but leaves a one-token decode,
    which streams the expert weights, nearly unchanged."""
    from hermes_plugins.devices import GPU, GPUConfig
    from hermes_plugins.stages.step_cost import moe_layer_time

    def t(tokens, **eff):
        dev = GPU(GPUConfig(preset="h200_sxm", efficiency={"moe_compute": 1.0, "moe_launch_us": 0.0, **eff}))
        return moe_layer_time(dev, np.array([tokens]), 4096, 768, 128, 8, "fp8")[0]

    assert t(64, moe_launch_us=25.0) - t(64) == pytest.approx(25e-6)
    assert t(0, moe_launch_us=25.0) == 0.0
    assert 1.7 < t(16384, moe_compute=0.5) / t(16384) <= 2.0  # the activation kernel is not scaled
    assert t(1, moe_compute=0.5) / t(1) < 1.1


def test_grouped_gemm_pads_each_expert_to_the_kernel_token_block():
    """Fused-MoE kernels pad each expert's tokens to a block chosen per batch: ``m`` rows
    compute ``clip(2^ceil(log2 m), moe_block_m_min, tile_m)`` rows. With the block at least
    16 and ``tile_m`` 64: m = 3 -> 16 rows, m = 20 -> 32, m = 40 -> 64 (the tile), m = 100
    -> two 64-row tiles; ``moe_block_m_min = 0`` pads to ``tile_m``. MXFP4 experts use
    ``moe_block_m_min_mxfp4`` when it is set."""
    from hermes_plugins.devices import GPU, GPUConfig

    # a slow compute rate (moe_compute 0.02) keeps even 16 padded rows compute-bound
    base = {"moe_compute": 0.02, "moe_compute_mxfp4": None, "moe_launch_us": 0.0, "tile_m": 64, "tile_n": 128, "gemm_roofline_sharpness": 0.0,
            "gemm_occupancy_exponent": 0.0, "gemm_k_overhead": 0.0, "launch_us": 0.0}
    n, k = 128 * 4096, 4096  # time = 2 M n k / rate at every m below

    def grouped(m, **e):
        return GPU(GPUConfig(preset="h200_sxm", efficiency={**base, "moe_block_m_min": 16, **e})).grouped_gemm_time(
            np.array([float(m)]), n, k, "bf16")[0]

    dev = GPU(GPUConfig(preset="h200_sxm", efficiency=base))
    rate = dev.peak_flops("bf16") * dev.eff.gemm_compute * 0.02
    for m, rows in ((3, 16), (20, 32), (40, 64), (100, 128)):
        assert grouped(m) == pytest.approx(2 * rows * n * k / rate, rel=1e-9), m
    assert grouped(3, moe_block_m_min=0) == pytest.approx(2 * 64 * n * k / rate, rel=1e-9)
    mx = GPU(GPUConfig(preset="h200_sxm", efficiency={**base, "moe_block_m_min": 16, "moe_block_m_min_mxfp4": 32}))
    assert mx.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4")[0] == pytest.approx(
        2 * 32 * n * k / (mx.peak_flops("mxfp4") * mx.eff.gemm_compute * 0.02), rel=1e-9)
    assert mx.grouped_gemm_time(np.array([3.0]), n, k, "bf16")[0] == pytest.approx(grouped(3), rel=1e-12)


def test_vllm_async_scheduling_overlaps_host_time_from_its_default_release():
    """vLLM rows overlap host time with the GPU (async scheduling, on by default since the
    first 2026 release) when their version, image tag or measured date says so; 0.12 and
    the undated 2025 rows run synchronously. TensorRT-LLM always overlaps, SGLang never."""
    def point(backend, version="", source=""):
        return S.Point(line=2, raw={"backend_version": version, "silicon_data_source": source}, id="x", backend=backend,
                       model_path="m", system="h200_sxm", mode="agg", isl=1, osl=1, gemm_quant_mode="fp8",
                       batch_size=1, tp=1, pp=1, attention_dp=None, moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)

    assert S.overlaps_host(point("vllm", "0.18.0")) and S.overlaps_host(point("vllm", "0.14.1"))
    assert not S.overlaps_host(point("vllm", "0.12.0")) and not S.overlaps_host(point("vllm", "0.13.0"))
    assert S.overlaps_host(point("vllm", source="x; image=vllm/vllm-openai:v0.16.0"))
    assert not S.overlaps_host(point("vllm", source="model=x; measured=2025-11-02T00:00:00.000Z; wip=False"))
    assert S.overlaps_host(point("vllm", source="model=x; measured=2026-03-27T00:00:00.000Z"))
    assert not S.overlaps_host(point("vllm"))
    assert S.overlaps_host(point("trtllm")) and not S.overlaps_host(point("sglang", "0.5.9"))
    rows = [p for p in S.read_points(DATA) if p.backend == "vllm"]
    assert {p.raw["backend_version"]: S.overlaps_host(p) for p in rows} == {"0.12.0": False, "0.18.0": True, "": False}


MOE_TABLES = Path(__file__).resolve().parents[1] / "plugins" / "hermes_plugins" / "data" / "aiconfigurator_h200"


def test_device_tables_price_a_backend_on_measured_moe_layers(tmp_path):
    """--device-tables sglang=... runs SGLang's rows on gpu_profiled with SGLang's measured
    fused-MoE layers (block-FP8 rows for the FP8 Qwen3 checkpoint); other backends stay on
    the analytic model."""
    tables = S.parse_device_tables([f"sglang={MOE_TABLES / 'sglang_0.5.6.post2'}"])
    assert tables == (("sglang", str((MOE_TABLES / "sglang_0.5.6.post2").resolve())),)
    points = S.read_points(DATA)
    qwen = next(p for p in points if p.backend == "sglang" and "Qwen3" in p.model_path)
    other = next(p for p in points if p.backend != "sglang" and S.unsupported_reason(p) is None)
    sc, _ = S.scenario_for(qwen, tables=dict(tables))
    assert sc["clients"][0]["device"] == {"type": "gpu_profiled", "preset": "h200_sxm",
                                          "tables": tables[0][1], "moe_dtype": "fp8_block"}
    assert S.scenario_for(other, tables=dict(tables))[0]["clients"][0]["device"]["type"] == "gpu"
    row = S.validate_point(qwen, S.Options(tables=tables))
    plain = S.validate_point(qwen)
    assert row["status"] == "simulated"
    assert row["tpot_predicted"] != pytest.approx(plain["tpot_predicted"], rel=1e-3)
    assert row["tpot_ape"] < 20  # measured 15.0 ms
    assert row["device"] == "gpu_profiled" and plain["device"] == "gpu" and plain["measured_operators"] == ""
    parts = dict(x.split(" ") for x in row["measured_operators"].split("; "))
    meas, total = map(int, parts["moe"].split("/"))
    assert meas == total > 0  # every MoE layer of the run is inside the table
    assert parts["gemm"].startswith("0/")  # no GEMM table given: all modelled
    engine = api.run(sc).summary["clients"]["engine"]["engine/0"]
    sources = engine["device"]["pricing_sources"]
    assert sources["moe"]["measured"] > 0 and sources["gemm"]["measured"] == 0  # MoE tables only


@pytest.mark.parametrize("spec, msg", [
    ("sglang", "expected BACKEND=PATH"),
    ("tgi=x", "unknown backend 'tgi'; allowed: vllm, sglang, trtllm"),
    ("vllm=/no/such/dir", "no such file or directory"),
])
def test_device_tables_bad_spec_is_one_clear_error(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        S.parse_device_tables([spec])


def test_cli_device_tables_says_which_rows_used_them(tmp_path):
    out = tmp_path / "serving.csv"
    proc = _validate_cli(str(DATA), "--output", str(out), "--jobs", "1", "--filter", "backend=sglang",
                         "--filter", "model_path=Qwen/Qwen3-235B-A22B-FP8",
                         "--device-tables", f"sglang={MOE_TABLES / 'sglang_0.5.6.post2'}")
    assert proc.returncode == 0, proc.stderr
    assert "sglang: 1 points on gpu_profiled" in " ".join(proc.stdout.split())
    (row,) = [r for r in _rows(out) if r["status"] == "simulated"]
    assert row["device"] == "gpu_profiled" and "moe " in row["measured_operators"]


def test_gpt_oss_rows_take_the_checkpoint_precision():
    """gpt-oss-120b rows say ``nvfp4``; the checkpoint is MXFP4 experts with BF16 elsewhere,
    which is what the scenario runs (experts' precision from the catalog entry). Its
    expert-parallel rows stay unsupported, with the reason."""
    points = S.read_points(DATA)
    oss = next(p for p in points if "gpt-oss" in p.model_path)
    assert oss.gemm_quant_mode == "nvfp4" and S.unsupported_reason(oss) is None
    assert S.weight_precision(oss) == "bf16"
    sc, _ = S.scenario_for(oss)
    assert sc["clients"][0]["stage"]["precision"]["weights"] == "bf16"
    res = api.run(S.scenario_for(oss, rounds=1)[0])
    # TP4: (114.66e9 expert weights * 4.25/8 B + 0.968e9 other layer weights * 2 B +
    # 2 * 0.579e9 embedding and LM head * 2 B) / 4 = 15.17 GiB, not the 54 GiB of BF16 experts
    rep = res.summary["clients"]["engine"]["engine/0"]
    assert rep["weights_GiB_per_device"] == pytest.approx(15.17, abs=0.01)
    assert res.summary["requests"]["completed"] == res.summary["requests"]["total"] > 0
    ep = dataclasses.replace(oss, moe_tp=1, moe_ep=4)
    assert S.unsupported_reason(ep) is None
    assert S.scenario_for(ep)[0]["clients"][0]["stage"]["parallelism"] == {"tp": 4, "pp": 1, "ep": 4}
    assert "ep" not in S.scenario_for(oss)[0]["clients"][0]["stage"]["parallelism"]


def test_mxfp4_experts_use_their_fitted_compute_factor():
    from hermes_plugins.devices import GPU, GPUConfig, fitted_efficiency
    from hermes_plugins.stages.step_cost import moe_layer_time

    eff = fitted_efficiency()
    assert eff.moe_compute_mxfp4 is not None and eff.moe_compute_mxfp4 != eff.moe_compute

    def t(dtype, **e):
        dev = GPU(GPUConfig(preset="h200_sxm", efficiency={"moe_compute": 0.5, "moe_launch_us": 0.0, **e}))
        return moe_layer_time(dev, np.array([16384]), 2880, 2880, 128, 4, dtype)[0]

    # a compute-bound prefill: the MXFP4 factor replaces moe_compute for mxfp4 experts only
    assert t("mxfp4", moe_compute_mxfp4=0.25) / t("mxfp4", moe_compute_mxfp4=0.5) > 1.7
    assert t("bf16", moe_compute_mxfp4=0.25) == t("bf16")
    # unset, mxfp4 experts use moe_compute
    assert t("mxfp4", moe_compute_mxfp4=None) == t("mxfp4", moe_compute_mxfp4=0.5)
    # on an H200 they compute at the BF16 rate: a compute-bound prefill takes about as long
    assert t("mxfp4", moe_compute_mxfp4=None) == pytest.approx(t("bf16"), rel=0.05)


def test_rows_spanning_nodes_are_listed_not_simulated():
    points = S.read_points(DATA)
    oss = next(p for p in points if "gpt-oss" in p.model_path)
    wide = dataclasses.replace(oss, tp=16, moe_tp=4, moe_ep=4)
    assert S.unsupported_reason(wide) == (
        "tp_size x pp_size = 16 GPUs span several h200_sxm nodes (8 per NVLink domain); "
        "the inter-node network is not modelled")
    assert S.unsupported_reason(dataclasses.replace(oss, tp=8, moe_tp=1, moe_ep=8)) is None


def _trt_point(source: str, model: str = "meta-llama/Llama-3.1-70B", isl: int = 1024, osl: int = 1024,
               tp: int = 2, c: int = 4) -> S.Point:
    return S.Point(line=2, raw={"silicon_data_source": source}, id="x", backend="trtllm", model_path=model,
                   system="h200_sxm", mode="agg", isl=isl, osl=osl, gemm_quant_mode="fp8", batch_size=c, tp=tp,
                   pp=1, attention_dp=None, moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)


IMAX_2025 = "source_file=2026-04-06.csv; model=Llama-3.1-70B; measured=2025-10-29T00:00:00.000Z; wip=False"
GAP = "source_file=/Users/x/aic-auto-gap-analysis/data/h200_sxm/vllm/0.12.0/m.csv; silicon_concurrency=4"


def test_inferencemax_mtp_runs_are_reported_not_simulated():
    """DeepSeek-R1 on TensorRT-LLM's 2026-01-14 run (its measurement time and image) ran
    InferenceX's MTP configuration (speculative decoding, which hermes does not model):
    reported with the reason; the same settings on another date, another run of that day,
    or from another source, are simulated."""
    mtp = ("source_file=2026-03-25.csv; model=DeepSeek-R1; measured=2026-01-14T22:26:21Z; wip=False; "
           "image=nvcr.io#nvidia/tensorrt-llm/release:1.1.0rc2.post2")
    plain = "source_file=2026-04-06.csv; model=DeepSeek-R1; measured=2025-11-02T00:00:00.000Z; wip=False"
    # the rule keys on the run (measurement time and image), not on the day: another run
    # of the same day is simulated
    same_day = ("source_file=2026-03-25.csv; model=DeepSeek-R1; measured=2026-01-14T09:00:00Z; wip=False; "
                "image=nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1")
    def r1(src):
        p = _trt_point(src, model="deepseek-ai/DeepSeek-R1", tp=8)
        p.moe_ep = 8
        return p
    assert S.unsupported_reason(r1(mtp)) == (
        "speculative decoding (MTP, InferenceX dsr1-fp8-h200-trt-mtp) is not modelled")
    assert S.unsupported_reason(r1(plain)) is None
    assert S.unsupported_reason(r1(same_day)) is None
    assert S.unsupported_reason(r1(GAP)) is None


def test_gap_analysis_rows_that_repeat_an_inferencemax_row_are_inferencemax_runs(tmp_path):
    """aiconfigurator's Kimi-K2.5 gap analysis repeats InferenceMAX's points: its rows
    (values from the H200 file) equal an InferenceMAX row's settings and measurements, so
    by-source simulates them with InferenceMAX's client, on the original's date; a
    gap-analysis row whose measurements differ stays an aiperf run."""
    header = list(_rows(DATA)[0])
    base = dict.fromkeys(header, "")
    base.update(backend="vllm", backend_version="0.16.0", model_path="moonshotai/Kimi-K2.5", system="h200_sxm",
                precision="int4", mode="agg", isl="1024", osl="1024", gemm_quant_mode="int4_wo",
                moe_quant_mode="int4_wo", batch_size="4", tp_size="8", pp_size="1", attention_dp_size="1",
                moe_tp_size="8", moe_ep_size="1", silicon_ttft_ms="148.6120", silicon_tpot_ms="10.4312")
    imax = "source_file=2026-04-06.csv; model=Kimi-K2.5; measured=2026-03-27T00:00:00.000Z; wip=False"
    gap = "source_file=kimi-k2.5-gap-analysis.csv; silicon_concurrency=4; aic_database_mode=SILICON"
    rows = [{**base, "id": "imax", "silicon_data_source": imax},
            {**base, "id": "copy", "silicon_data_source": gap, "silicon_ttft_ms": "148.61", "silicon_tpot_ms": "10.43"},
            {**base, "id": "other", "silicon_data_source": gap, "silicon_ttft_ms": "150.2", "silicon_tpot_ms": "10.43"},
            {**base, "id": "c8", "silicon_data_source": gap, "batch_size": "8", "silicon_ttft_ms": "148.61",
             "silicon_tpot_ms": "10.43"}]
    pts = {p.id: p for p in S.read_points(_write(tmp_path / "kimi.csv", rows, header))}
    assert pts["copy"].copy_of is pts["imax"]
    assert pts["other"].copy_of is None and pts["c8"].copy_of is None and pts["imax"].copy_of is None
    assert [S.benchmark_of(pts[i]) for i in ("imax", "copy", "other", "c8")] == [
        "inferencemax", "inferencemax", "aiperf", "aiperf"]
    assert S.benchmark_of(pts["copy"], "aiperf") == "aiperf"
    assert S.measured_date(pts["copy"]) == S.datetime.date(2026, 3, 27) and S.measured_date(pts["other"]) is None
    # the copy runs as its original: InferenceMAX's client with 2C warm-up requests (from 2026-01-13)
    assert S.scenario_for(pts["copy"])[0]["workload"] == S.scenario_for(pts["imax"])[0]["workload"]
    assert S.scenario_for(pts["copy"])[1].warmup == 8


def test_by_source_protocol_takes_inferencemax_rows_as_inferencemax_ran_them():
    """--protocol by-source: InferenceMAX rows get its client (10C prompts, lengths uniform
    in [0.8 L, L], no warm-up before 2026-01-13, 2C after) and its scripts' engine settings;
    aiconfigurator's gap-analysis rows and rows without a source stay on aiperf."""
    trt = _trt_point(IMAX_2025)
    assert S.benchmark_of(trt, "aiperf") == "aiperf"
    assert S.benchmark_of(trt, "by-source") == S.benchmark_of(trt) == "inferencemax"  # the default
    assert S.benchmark_of(_vllm_point(GAP), "by-source") == "aiperf"
    assert S.benchmark_of(_vllm_point(""), "by-source") == "aiperf"
    sc, plan = S.scenario_for(trt, protocol="by-source")
    assert sc["workload"] == {"type": "closed_loop", "concurrency": 4, "num_requests": 40, "warmup_requests": 0,
                              "drain_after_warmup": True, "isl": {"dist": "uniform", "low": 819, "high": 1024},
                              "osl": {"dist": "uniform", "low": 819, "high": 1024}}
    assert (plan.warmup, plan.measured_rounds, plan.burst_weight) == (0, 10, pytest.approx(0.1))
    st = sc["clients"][0]["stage"]
    # 70b_fp8_h200_trt_slurm.sh: max_num_tokens 16384, fp8 KV, batch waiting for 1k/1k below TP 8
    assert st["max_num_batched_tokens"] == 16384 and st["precision"]["kv_cache"] == "fp8"
    assert st["batching"] == {"type": "guaranteed_no_evict", "enable_chunked_prefill": False,
                              "batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.9}
    assert st["max_num_seqs"] == 4 and st["prefix_caching"] is False
    tp8 = S.scenario_for(_trt_point(IMAX_2025, tp=8), protocol="by-source")[0]["clients"][0]["stage"]
    assert "batch_wait_timeout_iters" not in tp8["batching"]
    # gpt-oss: max_num_tokens 20000, free_gpu_memory_fraction 0.85; 2C warm-ups from 2026-01-13
    oss = _trt_point("source_file=2026-03-25.csv; measured=2026-01-28T06:18:44Z; image=x",
                     model="openai/gpt-oss-120b", isl=8192, osl=1024, tp=1, c=8)
    sc, plan = S.scenario_for(oss, protocol="by-source")
    st = sc["clients"][0]["stage"]
    assert (st["max_num_batched_tokens"], st["kv_cache_free_memory_fraction"]) == (20000, 0.85)
    assert (plan.warmup, plan.num_requests) == (16, 96) and sc["workload"]["isl"]["low"] == 6553
    # vLLM (70b_fp8_h200_slurm.sh): 8192-token budget, fp8 KV, --max-num-seqs C
    st = S.scenario_for(_vllm_point(IMAX_2025), protocol="by-source")[0]["clients"][0]["stage"]
    assert (st["max_num_batched_tokens"], st["precision"]["kv_cache"], st["max_num_seqs"]) == (8192, "fp8", 4)
    # a long InferenceMAX point runs 3 of its 10 rounds, the burst weighted 1/10
    long = S.inferencemax_plan(_trt_point(IMAX_2025, isl=1024, osl=8192, c=128))
    assert (long.warmup, long.measured_rounds, long.burst_weight) == (0, 3, pytest.approx(0.1))


def test_by_source_gpt_oss_runs_the_scripts_moe_kernels_and_expert_parallelism():
    """gpt-oss: TensorRT-LLM ran ``--ep_size`` = TP; vLLM ran Marlin MXFP4 experts from
    2026-01-02 (``VLLM_MXFP4_USE_MARLIN=1``), the default Triton ones before."""
    oss_trt = _trt_point(IMAX_2025, model="openai/gpt-oss-120b", tp=4)
    st = S.scenario_for(oss_trt, protocol="by-source")[0]["clients"][0]["stage"]
    assert st["parallelism"] == {"tp": 4, "pp": 1, "ep": 4} and "moe_kernel" not in st

    def vllm_oss(measured):
        p = dataclasses.replace(_vllm_point(f"source_file=2026-04-06.csv; measured={measured}T00:00:00Z"),
                                model_path="openai/gpt-oss-120b", gemm_quant_mode="fp8")
        return S.scenario_for(p, protocol="by-source")[0]["clients"][0]["stage"]

    assert vllm_oss("2026-03-27")["moe_kernel"] == "marlin"
    assert "moe_kernel" not in vllm_oss("2025-11-02")
    assert "ep" not in vllm_oss("2026-03-27")["parallelism"]
    # the aiperf protocol keeps the aiconfigurator deployment: no script settings
    assert "moe_kernel" not in S.scenario_for(dataclasses.replace(
        _vllm_point("measured=2026-03-27"), model_path="openai/gpt-oss-120b"),
        protocol="aiperf")[0]["clients"][0]["stage"]


def test_by_source_minimax_runs_expert_parallel_from_the_script_that_enabled_it():
    """MiniMax-M2.5 on vLLM: the InferenceX script passed ``--enable-expert-parallel`` from
    2026-03-13 on (TP8 rows), not before (TP4 rows of 2026-03-01); the TP8 row simulates
    (whole experts per GPU), while TP8 without expert parallelism is refused as vLLM
    refuses it (192-wide shards of 128-wide FP8 blocks)."""
    def mm(measured, tp):
        return dataclasses.replace(_vllm_point(f"db-dump/2026-04-27; measured={measured}T00:00:00.000Z; "
                                               "vllm/vllm-openai:v0.18.0"),
                                   model_path="MiniMaxAI/MiniMax-M2.5", tp=tp, moe_tp=tp, moe_ep=1)
    tp8, tp4 = mm("2026-03-28", 8), mm("2026-03-01", 4)
    st8 = S.scenario_for(tp8)[0]["clients"][0]["stage"]
    assert st8["parallelism"] == {"tp": 8, "pp": 1, "ep": 8}
    assert st8["ep_masked_slots"] is True  # vLLM's fused_moe runs over the other GPUs' slots too
    assert "ep_masked_slots" not in S.scenario_for(_trt_point(IMAX_2025))[0]["clients"][0]["stage"]
    assert S.scenario_for(tp4)[0]["clients"][0]["stage"]["parallelism"] == {"tp": 4, "pp": 1}
    ttft, tpot = S.simulate(tp8, S.Options(rounds=1))
    assert 0 < ttft and 0 < tpot
    with pytest.raises(ConfigError, match=r"parallelism\.tp: minimax-m2\.5's block-FP8 expert weights"):
        S.simulate(tp8, S.Options(rounds=1, protocol="aiperf"))


def test_marlin_moe_kernel_takes_its_own_fitted_factors():
    """``kernel="marlin"``: the grouped expert GEMMs compute at ``moe_compute_marlin`` with
    tokens padded to ``moe_block_m_min_marlin``; unset, the MXFP4 factors; an unknown kernel
    is refused by name."""
    from hermes_plugins.devices import GPU, GPUConfig

    base = {"moe_compute": 0.02, "moe_compute_mxfp4": 0.04, "moe_block_m_min": 16, "moe_block_m_min_mxfp4": 16,
            "moe_launch_us": 0.0, "tile_m": 64, "tile_n": 128, "gemm_roofline_sharpness": 0.0,
            "gemm_occupancy_exponent": 0.0, "gemm_k_overhead": 0.0, "launch_us": 0.0}
    n, k = 128 * 4096, 4096
    dev = GPU(GPUConfig(preset="h200_sxm", efficiency={**base, "moe_compute_marlin": 0.01, "moe_block_m_min_marlin": 32}))
    rate = dev.peak_flops("mxfp4") * dev.eff.gemm_compute
    # m = 3 tokens per expert: 32 padded rows at 0.01 (Marlin), 16 rows at 0.04 (MXFP4 default)
    assert dev.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4", "marlin")[0] == pytest.approx(
        2 * 32 * n * k / (rate * 0.01), rel=1e-9)
    assert dev.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4")[0] == pytest.approx(
        2 * 16 * n * k / (rate * 0.04), rel=1e-9)
    unset = GPU(GPUConfig(preset="h200_sxm", efficiency={**base, "moe_compute_marlin": None}))
    assert unset.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4", "marlin")[0] == pytest.approx(
        unset.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4")[0], rel=1e-12)
    with pytest.raises(ValueError, match="unknown MoE kernel 'cutlass'; allowed: marlin"):
        dev.grouped_gemm_time(np.array([3.0]), n, k, "mxfp4", "cutlass")


def test_shipped_marlin_fit_holds_on_its_table_and_on_the_held_out_shape():
    """The fitted Marlin factors against the shipped vLLM 0.24.0 H200 Marlin rows: the MXFP4
    shape they were fitted on, and the int4 shape held out of the fit, which they predict
    better than the default (Triton) MXFP4 factors do. At gpt-oss-120b prefill sizes the
    Marlin layer is the slower one, as measured (0.24.0 Triton 1.34 ms vs the Marlin shape's
    per-FLOP rate about half)."""
    from hermes_plugins.calibration import Table, errors, load_aiconfigurator, make_gpu, predict_moe
    from hermes_plugins.devices import fitted_efficiency
    from hermes_plugins.stages.step_cost import moe_layer_time

    eff = fitted_efficiency()
    assert eff.moe_compute_marlin is not None and eff.moe_compute_marlin < eff.moe_compute_mxfp4
    t = load_aiconfigurator([ROOT / "plugins/hermes_plugins/data/aiconfigurator_h200/vllm_0.24.0"])["moe"]
    c = t.cols
    keep = c["distribution"] == "power_law_1.01"
    rows = {k: v[keep] for k, v in c.items()}
    fit_shape = rows["dtype"] == "w4a16_mxfp4"
    rows["dtype"] = np.full(len(fit_shape), "w4a16_mxfp4", dtype=object)  # both W4A16 Marlin
    marlin = make_gpu("h200_sxm", {"moe_compute_mxfp4": eff.moe_compute_marlin,
                                   "moe_block_m_min_mxfp4": eff.moe_block_m_min_marlin}, base="preset")
    triton = make_gpu("h200_sxm", base="preset")
    for sel, bound in ((fit_shape, 16.0), (~fit_shape, 20.0)):
        part = Table("moe", {k: v[sel] for k, v in rows.items()})
        m = errors(predict_moe(marlin, part), part.cols["latency_s"])["median_ape"]
        d = errors(predict_moe(triton, part), part.cols["latency_s"])["median_ape"]
        assert m < bound and m < d, (m, d)
    dev = make_gpu("h200_sxm", base="preset")
    tok = np.array([8192.0])
    slow = moe_layer_time(dev, tok, 2880, 2880, 128, 4, "mxfp4", kernel="marlin")[0]
    fast = moe_layer_time(dev, tok, 2880, 2880, 128, 4, "mxfp4")[0]
    assert 1.5 < slow / fast < 2.5


def test_deepseek_rows_run_with_their_inferencemax_scripts_settings():
    """DeepSeek-R1 (multi-head latent attention) on the InferenceMAX scripts: TensorRT-LLM
    (``dsr1_fp8_h200_trt_slurm.sh``) with expert parallelism over the TP group, an FP8 KV
    cache in 0.75 of the free memory and ``max_num_tokens = C + isl + 64`` rounded up to 64;
    SGLang (``dsr1_fp8_h200.sh``) with a 32768-token chunked prefill and
    ``--mem-fraction-static 0.82``."""
    src = "source_file=2026-04-06.csv; model=DeepSeek-R1; measured=2025-11-02T00:00:00.000Z"
    p = dataclasses.replace(_vllm_point(src, c=16), backend="trtllm", model_path="deepseek-ai/DeepSeek-R1",
                            moe_tp=1, moe_ep=8)
    assert S.unsupported_reason(p) is None
    st = S.scenario_for(p)[0]["clients"][0]["stage"]
    assert st["model"] == "deepseek-r1"
    assert st["parallelism"] == {"tp": 8, "pp": 1, "ep": 8}
    assert st["precision"]["kv_cache"] == "fp8" and st["kv_cache_free_memory_fraction"] == 0.75
    assert st["max_num_batched_tokens"] == 1152  # 16 + 1024 + 64 = 1104 -> 1152
    sg = S.scenario_for(dataclasses.replace(p, backend="sglang", model_path="deepseek-ai/DeepSeek-V3",
                                            moe_tp=8, moe_ep=1))[0]["clients"][0]["stage"]
    assert sg["model"] == "deepseek-v3"
    assert (sg["max_num_batched_tokens"], sg["gpu_memory_utilization"]) == (32768, 0.82)
    # Kimi-K2.5 (kimik2.5_int4_h200.sh): vLLM, INT4 experts from the checkpoint, 0.95 of memory
    kimi = dataclasses.replace(p, backend="vllm", model_path="moonshotai/Kimi-K2.5", gemm_quant_mode="int4_wo",
                               moe_tp=8, moe_ep=1)
    assert S.unsupported_reason(kimi) is None
    ks = S.scenario_for(kimi)[0]["clients"][0]["stage"]
    assert ks["model"] == "kimi-k2.5" and ks["precision"]["weights"] == "bf16"
    assert ks["gpu_memory_utilization"] == 0.95


def test_steps_under_a_captured_cuda_graph_skip_the_eager_floor():
    """``cuda_graph_max_tokens``: only a prefill step with more tokens than the largest
    captured CUDA graph runs eagerly. The lone request's prefill is one step of 16 tokens:
    a graph of 16 tokens covers it (no floor), one of 15 does not (291 operators x 1 ms)."""
    plain = _one_request()
    assert _one_request(eager_op_us=1000, cuda_graph_max_tokens=16) == pytest.approx(plain)
    assert _one_request(eager_op_us=1000, cuda_graph_max_tokens=15)[0] == pytest.approx(291 * 1e-3)


@pytest.mark.parametrize("model, source, c, graph", [
    # InferenceMAX's Llama script leaves vLLM's default: min(2 x --max-num-seqs C, 512)
    ("meta-llama/Llama-3.1-70B", "source_file=2026-04-06.csv; measured=2025-10-29T00:00:00.000Z", 4, 8),
    ("meta-llama/Llama-3.1-70B", "source_file=2026-04-06.csv; measured=2025-10-29T00:00:00.000Z", 512, 512),
    # its gpt-oss script captures graphs up to 2,048 tokens
    ("openai/gpt-oss-120b", "source_file=2026-04-06.csv; measured=2025-11-02T00:00:00.000Z", 4, 2048),
    # aiconfigurator's generator captures batches of 1 to C
    ("meta-llama/Llama-3.1-70B", GAP, 16, 16),
])
def test_vllm_rows_capture_cuda_graphs_as_their_deployment_did(model, source, c, graph):
    p = S.Point(line=2, raw={"silicon_data_source": source}, id="x", backend="vllm", model_path=model,
                system="h200_sxm", mode="agg", isl=1024, osl=64, gemm_quant_mode="fp8", batch_size=c, tp=8,
                pp=1, attention_dp=None, moe_tp=None, moe_ep=None, ttft_ms=1.0, tpot_ms=1.0)
    stage = S.scenario_for(p)[0]["clients"][0]["stage"]
    assert stage["cuda_graph_max_tokens"] == graph
    assert stage["eager_op_us"] == S.EAGER_OP_US["vllm"] > 0
