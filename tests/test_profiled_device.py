"""The ``gpu_profiled`` device on the measured H100 rows in ``tests/data/aiconfigurator_h100``:
measured latency returned exactly at measured points, monotone interpolation between them,
the fitted ``gpu`` model outside the tables, counted sources, and clear errors for bad tables.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hermes_core import ConfigError, api
from hermes_plugins.calibration import TableError, attention_shape, attention_work, load_aiconfigurator
from hermes_plugins.devices import GPU, GPUConfig
from hermes_plugins.profiled import LogGrid, ProfiledGPU, ProfiledGPUConfig

DATA = Path(__file__).parent / "data" / "aiconfigurator_h100"
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "aiconfigurator_h100_vllm0.24.0"


@pytest.fixture(scope="module")
def tables():
    return load_aiconfigurator([DATA])


@pytest.fixture
def dev():
    return ProfiledGPU(ProfiledGPUConfig(tables=str(DATA), preset="h100_sxm"))


@pytest.fixture(scope="module")
def model():
    return GPU(GPUConfig(preset="h100_sxm"))


def test_plugin_is_discovered(registry):
    comp = registry.get("devices", "gpu_profiled")
    assert comp.obj is ProfiledGPU and comp.plugin.distribution == "hermes-sim"


# ---------------------------------------------------------------- measured points

def test_gemm_returns_measured_latency_at_measured_points(dev, tables):
    # gemm.csv (300 bf16 rows) and gemm_fp8.csv (200 fp8 rows) form one table, keyed by dtype
    g = tables["gemm"].cols
    for dt, rows in (("bf16", 300), ("fp8", 200)):
        sel = g["dtype"] == dt
        assert sel.sum() == rows
        t = dev.gemm_time(g["m"][sel], g["n"][sel], g["k"][sel], dt)
        np.testing.assert_allclose(t, g["latency_s"][sel], rtol=1e-12)
    assert dev.pricing_sources()["gemm"] == {"measured": 500, "modelled": 0}


def test_gemm_scalar_n_k_like_the_step_cost_model(dev):
    # gemm.csv: m=1, n=2048, k=7168 -> 0.013571555415789286 ms
    t = dev.gemm_time(np.array([0, 1]), 2048, 7168, "bf16")
    assert t[0] == 0.0 and t[1] == pytest.approx(0.013571555415789286e-3, rel=1e-12)
    assert dev.pricing_sources()["gemm"] == {"measured": 1, "modelled": 0}  # m = 0 is free, not counted


@pytest.mark.parametrize("phase, kind", [("prefill", "context_attention"), ("decode", "generation_attention")])
def test_attention_returns_measured_latency_at_measured_points(dev, tables, phase, kind):
    t = tables[kind]
    flops, nbytes = attention_work(t, phase)
    shape = attention_shape(t, phase)
    vec = dev.attention_time(flops, nbytes, phase, "bf16", **shape)
    np.testing.assert_allclose(vec, t.cols["latency_s"], rtol=1e-12)
    for i in range(0, len(t), 7):  # the scalar path the step cost model takes
        one = dev.attention_time(float(flops[i]), float(nbytes[i]), phase, "bf16",
                                 **{k: float(v[i]) for k, v in shape.items()})
        assert one == pytest.approx(t.cols["latency_s"][i], rel=1e-12)
    n_scalar = len(range(0, len(t), 7))
    assert dev.pricing_sources()[f"attention_{phase}"] == {"measured": len(t) + n_scalar, "modelled": 0}


def test_allreduce_is_measured_with_bytes_twice_the_element_count(dev):
    # allreduce.csv: 8 GPUs, message_size 1048576 elements of bf16 -> 2 MiB
    rows = [r.split(",") for r in (DATA / "allreduce.csv").read_text().splitlines()[1:]]
    n, size, lat = next((int(a), int(b), float(c)) for a, b, c in rows if a == "8" and b == "1048576")
    t = dev.collective_time("all_reduce", np.array([2.0 * size]), 8, np.array([1.0]))
    assert t[0] == pytest.approx(lat * 1e-3, rel=1e-12)
    assert dev.pricing_sources()["allreduce"] == {"measured": 1, "modelled": 0}


# ---------------------------------------------------------------- interpolation

def test_gemm_interpolates_monotonically_between_measured_m(dev, tables):
    g = tables["gemm"].cols
    n, k = 1024, 5120  # five measured m in gemm.csv
    sel = (g["n"] == n) & (g["k"] == k)
    m_meas, t_meas = g["m"][sel], g["latency_s"][sel]
    assert len(m_meas) == 5
    m = np.arange(m_meas.min(), m_meas.max() + 1)
    t = dev.gemm_time(m, n, k, "bf16")
    np.testing.assert_allclose(t[np.isin(m, m_meas)], t_meas, rtol=1e-12)
    for (m0, t0), (m1, t1) in zip(zip(m_meas, t_meas), zip(m_meas[1:], t_meas[1:])):
        seg = t[(m >= m0) & (m <= m1)]
        step = np.diff(seg)
        assert np.all(step >= -1e-18) if t1 >= t0 else np.all(step <= 1e-18)
        assert seg.min() >= min(t0, t1) * (1 - 1e-12) and seg.max() <= max(t0, t1) * (1 + 1e-12)
    # log-log linear: the midpoint in log m has the geometric mean time
    m0, m1, t0, t1 = m_meas[0], m_meas[1], t_meas[0], t_meas[1]
    mid = math.sqrt(m0 * m1)
    assert float(dev.gemm_time(np.array([mid]), n, k, "bf16")[0]) == pytest.approx(math.sqrt(t0 * t1), rel=1e-12)
    assert dev.pricing_sources()["gemm"]["modelled"] == 0


def test_loggrid_is_exact_for_power_laws_and_fills_interior_holes():
    n = np.array([256, 256, 512, 512, 512])
    k = np.array([1024, 4096, 1024, 2048, 4096])  # (256, 2048) missing
    t = 1e-9 * n ** 0.8 * k ** 1.1
    grid = LogGrid(np.column_stack([n, k]), t)
    q = np.array([[362.0, 1500.0], [256.0, 2048.0], [300.0, 4096.0]])
    lt, ok = grid.lookup(q)
    assert ok.all()
    np.testing.assert_allclose(np.exp(lt), 1e-9 * q[:, 0] ** 0.8 * q[:, 1] ** 1.1, rtol=1e-12)
    assert grid.lookup1(362.0, 1500.0) == pytest.approx(lt[0], rel=1e-12)
    lt, ok = grid.lookup(np.array([[128.0, 2048.0], [256.0, 8192.0]]))  # outside
    assert not ok.any() and grid.lookup1(128.0, 2048.0) is None
    # a hole off the last axis: (512, 1024) is filled from (256, 1024) and (1024, 1024)
    n = np.array([256, 256, 512, 1024, 1024])
    k = np.array([1024, 4096, 4096, 1024, 4096])
    grid = LogGrid(np.column_stack([n, k]), 1e-9 * n ** 0.8 * k ** 1.1)
    assert math.exp(grid.lookup1(512.0, 1024.0)) == pytest.approx(1e-9 * 512 ** 0.8 * 1024 ** 1.1, rel=1e-12)
    # a hole at the edge stays a hole
    grid = LogGrid(np.column_stack([n[1:], k[1:]]), 1e-9 * n[1:] ** 0.8 * k[1:] ** 1.1)
    assert grid.lookup1(256.0, 1024.0) is None


def test_attention_interpolates_monotonically_between_measured_lengths(dev, tables):
    c = tables["context_attention"].cols
    key = (c["heads"] == 2) & (c["kv_heads"] == 2) & (c["head_dim"] == 128) & (c["batch"] == 2)
    isl, lat = c["isl"][key], c["latency_s"][key]
    assert len(isl) == 4
    q = np.arange(isl.min(), isl.max() + 1)
    times = np.array([dev.attention_time(4.0 * 2 * 128 * 2 * x * (x + 1) / 2, 2 * x * (2 * 2 * 128 * 2 + 2 * 2 * 128 * 2),
                                         "prefill", "bf16", seqs=2, new_tokens=2 * x, kv_tokens=2 * x,
                                         pairs=2 * x * (x + 1) / 2, heads=2, kv_heads=2, head_dim=128) for x in q])
    np.testing.assert_allclose(times[np.isin(q, isl)], lat, rtol=1e-12)
    assert np.all(np.diff(times) >= -1e-18) and np.all(np.diff(lat) > 0)
    assert dev.pricing_sources()["attention_prefill"] == {"measured": len(q), "modelled": 0}


def test_prefill_with_a_cached_prefix_scales_the_table_by_the_model(dev, model):
    """Two chunks of 100 tokens on top of 3,000 cached each are looked up at the uniform
    batch of 2 with the same query-key pairs (isl ~ 780, between the measured 512 and
    1536), scaled by the model's ratio for the extra K/V bytes."""
    hq, hkv, d, seqs = 2, 2, 128, 2
    kv_tok, q_b = 2 * hkv * d * 2, 2 * hq * d * 2
    q, cached = 100, 3000
    pairs = seqs * (q * cached + q * (q + 1) / 2)
    flops, nbytes = 4.0 * hq * d * pairs, seqs * ((cached + q) * kv_tok + q * q_b)
    t = dev.attention_time(flops, nbytes, "prefill", "bf16", seqs=seqs, new_tokens=seqs * q,
                           kv_tokens=seqs * (cached + q), pairs=pairs, heads=hq, kv_heads=hkv, head_dim=d)
    isl = (math.sqrt(1 + 8 * pairs / seqs) - 1) / 2
    assert 512 < isl < 1536
    uniform_bytes = seqs * isl * (kv_tok + q_b)
    uniform = dev.attention_time(flops, uniform_bytes, "prefill", "bf16", seqs=seqs, new_tokens=seqs * isl,
                                 kv_tokens=seqs * isl, pairs=pairs, heads=hq, kv_heads=hkv, head_dim=d)
    assert 0.020256000260512035e-3 < uniform < 0.02908266584078471e-3  # between the measured isl 512 and 1536
    ratio = model.attention_time(flops, nbytes, "prefill", "bf16") / model.attention_time(flops, uniform_bytes, "prefill", "bf16")
    assert ratio > 1.05 and t == pytest.approx(uniform * ratio, rel=1e-12)
    assert dev.pricing_sources()["attention_prefill"] == {"measured": 2, "modelled": 0}


# ---------------------------------------------------------------- fallback

def test_gemm_falls_back_to_the_model_outside_the_table(dev, model):
    cases = [(np.array([20000]), 1024, 5120, "bf16"),  # m beyond the measured m of (1024, 5120)
             (np.array([64]), 100000, 5120, "bf16"),   # n beyond every measured n
             (np.array([64]), 1024, 5120, "int8")]     # no int8 rows in the tables
    for m, n, k, dt in cases:
        assert dev.gemm_time(m, n, k, dt)[0] == model.gemm_time(m, n, k, dt)[0]
    assert dev.pricing_sources()["gemm"] == {"measured": 0, "modelled": 3}


def test_attention_without_a_shape_or_outside_uses_the_model(dev, model):
    f, b = 4.0 * 8 * 128 * 5000, 5000 * 2 * 128 * 2.0
    assert dev.attention_time(f, b, "decode", "bf16") == model.attention_time(f, b, "decode", "bf16")
    # head_dim 96 is not measured: the model, with the call's shape
    assert dev.attention_time(f, b, "decode", "bf16", seqs=5, new_tokens=5, kv_tokens=5000, heads=8,
                              kv_heads=1, head_dim=96) == model.attention_time(f, b, "decode", "bf16", seqs=5,
                                                                               kv_heads=1)
    # batch 4096 is beyond the measured batches
    assert dev.attention_time(f, b, "decode", "bf16", seqs=4096, new_tokens=4096, kv_tokens=5000, heads=8,
                              kv_heads=1, head_dim=128) == model.attention_time(f, b, "decode", "bf16", seqs=4096,
                                                                                kv_heads=1)
    assert dev.pricing_sources()["attention_decode"] == {"measured": 0, "modelled": 3}


def test_memory_kernels_and_unmeasured_collectives_are_modelled(dev, model):
    b = np.array([0.0, 1e6, 2e6])
    np.testing.assert_array_equal(dev.memory_time(b), model.memory_time(b))
    fb = np.array([7.0, 8.0])
    np.testing.assert_array_equal(dev.collective_time("all_reduce", np.array([1e12, 2e12]), 8, fb), fb)  # too large
    np.testing.assert_array_equal(dev.collective_time("all_gather", np.array([1e6, 2e6]), 8, fb), fb)
    src = dev.pricing_sources()
    assert src["memory"] == {"measured": 0, "modelled": 2} and src["allreduce"] == {"measured": 0, "modelled": 4}


def test_describe_reports_sources_tables_and_the_fallback(dev, tables):
    g = tables["gemm"].cols
    dev.gemm_time(g["m"][:10], g["n"][:10], g["k"][:10], "bf16")
    dev.gemm_time(np.array([1]), 100000, 100, "bf16")
    d = dev.describe()
    assert d["pricing_sources"]["gemm"] == {"measured": 10, "modelled": 1}
    assert any(f.endswith("gemm.csv") for f in d["measured_tables"])
    assert "gemm.csv" in d["provenance"] and "H100 Tensor Core GPU datasheet" in d["provenance"]
    assert d["name"] == "H100-SXM5-80GB" and d["memory_GiB"] == pytest.approx(81559 / 1024)


def test_fallback_model_takes_gpu_fields(tables):
    dev = ProfiledGPU(ProfiledGPUConfig(tables=str(DATA), preset="h200", efficiency={"launch_us": 9.0}))
    assert dev.name == "H200-SXM-141GB" and dev.model.eff.launch_us == 9.0
    assert dev.memory_bandwidth == 4800e9
    assert dev.gemm_time(np.array([1]), 100000, 100, "bf16")[0] == dev.model.gemm_time(np.array([1]), 100000, 100, "bf16")[0]


# ---------------------------------------------------------------- in a scenario

def test_scenario_runs_on_the_profiled_device(registry, tmp_path):
    sc = {
        "name": "profiled",
        "workload": {"type": "closed_loop", "concurrency": 4, "num_requests": 8, "isl": 512, "osl": 16},
        "clients": [{
            "name": "c",
            "device": {"type": "gpu_profiled", "preset": "h100_sxm", "tables": str(DATA)},
            "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "max_num_batched_tokens": 2048},
        }],
    }
    res = api.run(sc, registry=registry)
    assert res.summary["requests"]["completed"] == 8
    plain = api.run({**sc, "clients": [{**sc["clients"][0], "device": {"type": "gpu", "preset": "h100_sxm"}}]},
                    registry=registry)
    # the small tables cover few of Llama-3.1-8B's shapes: close to the model, not equal
    assert res.summary["ttft_ms"]["mean"] == pytest.approx(plain.summary["ttft_ms"]["mean"], rel=0.3)


# ---------------------------------------------------------------- bad tables

def _copy(tmp_path, drop_column=None, files=("gemm.csv",)):
    d = tmp_path / "tables"
    d.mkdir()
    for f in files:
        text = (DATA / f).read_text().splitlines()
        if drop_column:
            head = text[0].split(",")
            i = head.index(drop_column)
            text = [",".join(v for j, v in enumerate(r.split(",")) if j != i) for r in text]
        (d / f).write_text("\n".join(text) + "\n")
    return d


def test_missing_column_names_file_and_column(registry, tmp_path):
    d = _copy(tmp_path, drop_column="k")
    with pytest.raises(ConfigError) as e:
        registry.validate("devices", {"type": "gpu_profiled", "tables": str(d)}, "clients[0].device")
    msg = str(e.value)
    assert msg.startswith("clients[0].device.tables: ") and "gemm.csv" in msg and "missing column 'k'" in msg


def test_wrong_format_is_named(registry, tmp_path):
    vidur = tmp_path / "llama_mlp.csv"
    vidur.write_text("time_stats.emb.median,n_head,n_embd,num_tokens\n0.1,32,4096,1\n")
    with pytest.raises(ConfigError, match=r"llama_mlp.csv: not an aiconfigurator per-operator table; expected the "
                                          r"columns of one of: gemm \(m, n, k, latency\)"):
        registry.validate("devices", {"type": "gpu_profiled", "tables": str(vidur)}, "clients[0].device")
    with pytest.raises(ConfigError, match="no such file or directory"):
        registry.validate("devices", {"type": "gpu_profiled", "tables": str(tmp_path / "nope")}, "d")
    bad = tmp_path / "gemm_bad.csv"
    bad.write_text("m,n,k,latency\n1,256,768,fast\n")
    with pytest.raises(ConfigError, match=r"gemm_bad.csv: column 'latency' must be numeric \(got 'fast'\)"):
        registry.validate("devices", {"type": "gpu_profiled", "tables": str(bad)}, "d")


def test_unknown_kernel_pick_lists_the_available_ones(registry):
    with pytest.raises(ConfigError, match=r"column 'kernel_source' has no 'NCCL' rows"):
        registry.validate("devices", {"type": "gpu_profiled", "tables": str(DATA), "kernels": {"allreduce": "NCCL"}}, "d")


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    f = tmp_path / "gemm_perf.parquet"
    f.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(TableError, match=r'gemm_perf.parquet: reading parquet tables needs pyarrow: '
                                         r'pip install "hermes-sim\[parquet\]"'):
        load_aiconfigurator([f])


def test_directory_ignores_files_of_other_kinds(tmp_path, tables):
    d = _copy(tmp_path, files=("gemm.csv", "allreduce.csv"))
    (d / "notes.csv").write_text("a,b\n1,2\n")
    t = load_aiconfigurator([d])
    assert set(t) == {"gemm", "allreduce"} and any("notes.csv" in n for n in t["allreduce"].notes + t["gemm"].notes)


@pytest.mark.skipif(not REALDATA.is_dir(), reason="shared realdata not present")
def test_full_parquet_tables_priced_exactly(tmp_path):
    pytest.importorskip("pyarrow")
    dev = ProfiledGPU(ProfiledGPUConfig(tables=str(REALDATA)))
    # gemm_vllm_0.24.0_gemm_perf.parquet, torch.nn.functional.linear bf16, m=n=k=8192: 1.54 ms
    t = dev.gemm_time(np.array([8192]), 8192, 8192, "bf16")[0]
    assert 1.4e-3 < t < 1.7e-3
    assert dev.pricing_sources()["gemm"] == {"measured": 1, "modelled": 0}
    assert Counter(n.split(":")[0] for n in dev.profile.notes)["gemm bf16"] == 1


# ---------------------------------------------------------------- MoE layers (H200)

MOE = Path(__file__).resolve().parents[1] / "plugins" / "hermes_plugins" / "data" / "aiconfigurator_h200"
SGLANG_MOE = MOE / "sglang_0.5.6.post2"
QWEN3 = dict(hidden=4096, inter=1536, topk=8, experts=128)  # Qwen3-235B-A22B's experts


@pytest.fixture(scope="module")
def moe_dev():
    return ProfiledGPU(ProfiledGPUConfig(tables=str(SGLANG_MOE), preset="h200_sxm", moe_dtype="fp8_block"))


def _moe_rows(path, tp, dtype):
    import csv
    with open(path / "moe_perf.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["moe_tp_size"] == str(tp) and r["moe_dtype"] == dtype]
    return {int(r["num_tokens"]): float(r["latency"]) * 1e-3 for r in rows}


def test_moe_table_is_read_with_its_shape_columns():
    t = load_aiconfigurator([SGLANG_MOE])["moe"]
    assert len(t) == 336  # 28 token counts x 6 TP degrees x 2 dtypes
    assert set(t.cols["dtype"]) == {"bf16", "fp8_block"}
    assert set(t.cols["tp"]) == {1, 2, 4, 8, 16, 32}
    assert set(t.cols["hidden"]) == {4096} and set(t.cols["experts"]) == {128}


def test_moe_layer_is_measured_at_measured_token_counts(moe_dev):
    meas = _moe_rows(SGLANG_MOE, 2, "fp8_block")
    tokens = np.array(sorted(meas), dtype=float)
    t, ok = moe_dev.moe_time(tokens, tp=2, dtype="fp8", **QWEN3)
    assert ok.all()
    np.testing.assert_allclose(t, [meas[int(x)] for x in tokens], rtol=1e-12)
    # hand-checked row of the source table: 1024 tokens, TP2, fp8_block: 0.469 ms
    assert meas[1024] == pytest.approx(0.469e-3, rel=0.01)


def test_moe_layer_interpolates_between_and_falls_back_outside(moe_dev):
    meas = _moe_rows(SGLANG_MOE, 4, "fp8_block")
    t, ok = moe_dev.moe_time(np.array([1000.0, 1024.0, 1100.0, 0.0, 30000.0]), tp=4, dtype="fp8", **QWEN3)
    assert ok.tolist() == [True, True, True, False, False]  # 0 tokens: nothing; 30000 > 20480
    assert meas[768] < t[0] < meas[1024] < t[2] < meas[1536]
    before = moe_dev.pricing_sources()["moe"]["modelled"]
    _, ok = moe_dev.moe_time(np.array([64.0]), tp=4, dtype="fp8", hidden=7168, inter=2048, topk=8, experts=256)
    assert not ok.any()  # another model's experts: not in the table
    assert moe_dev.pricing_sources()["moe"]["modelled"] == before + 1


def test_moe_dtype_defaults_to_the_weight_precision():
    plain = ProfiledGPU(ProfiledGPUConfig(tables=str(SGLANG_MOE), preset="h200_sxm"))
    _, ok = plain.moe_time(np.array([64.0]), tp=2, dtype="fp8", **QWEN3)
    assert not ok.any()  # the table has fp8_block and bf16 rows, no per-tensor fp8
    t, ok = plain.moe_time(np.array([64.0]), tp=2, dtype="bf16", **QWEN3)
    assert ok.all() and t[0] == pytest.approx(_moe_rows(SGLANG_MOE, 2, "bfloat16")[64], rel=1e-12)


def test_step_cost_prices_moe_layers_from_the_table(moe_dev):
    """A one-token decode of Qwen3-235B-A22B at TP2: the MoE layer costs what the table
    measured (0.056 ms), not the model's grouped-GEMM estimate."""
    from hermes_core import ModelSpec, Topology
    from hermes_plugins.models import catalog_path
    from hermes_plugins.stages.step_cost import StepCostModel

    m = ModelSpec.from_file(catalog_path("qwen3-235b-a22b"))
    names = ["d0", "d1"]
    cost = StepCostModel(m, moe_dev, 2, 1, "fp8", "bf16", "bf16", Topology.single_switch(names, 1e11, 1e-6),
                         names, 64, 8)
    op = next(o for o in m.layer_operators(2, moe=True) if o.kind == "moe")
    t, _, _ = cost._moe(op, np.array([1, 64]), "fp8", 2)
    meas = _moe_rows(SGLANG_MOE, 2, "fp8_block")
    np.testing.assert_allclose(t, [meas[1], meas[64]], rtol=1e-12)


def test_expert_parallel_moe_rows_are_looked_up_at_their_split_and_not_fitted(tmp_path):
    """Rows with ``moe_ep_size`` > 1 (aiconfigurator measures one device of an
    expert-parallel layer) are kept under their own key: a lookup at (tp / ep, ep) finds
    them, the tensor-parallel one does not, the step cost model of a tp=2, ep=2 layer
    prices from them, and the calibration fit leaves them out. The EP rows here are the
    TP2 rows relabelled (moe_tp 1, moe_ep 2) with their latency tripled, so which rows
    answered shows in the value."""
    import csv
    from hermes_core import ModelSpec, Topology
    from hermes_plugins.calibration import fit_rows
    from hermes_plugins.models import catalog_path
    from hermes_plugins.stages.step_cost import StepCostModel

    with open(SGLANG_MOE / "moe_perf.csv", newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    ep_rows = [{**r, "moe_tp_size": "1", "moe_ep_size": "2", "latency": str(3 * float(r["latency"]))}
               for r in rows if r["moe_tp_size"] == "2"]
    d = tmp_path / "ep"
    d.mkdir()
    with open(d / "moe_perf.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows + ep_rows)
    dev = ProfiledGPU(ProfiledGPUConfig(tables=str(d), preset="h200_sxm", moe_dtype="fp8_block"))
    tp2 = _moe_rows(SGLANG_MOE, 2, "fp8_block")
    t, ok = dev.moe_time(np.array([64.0, 1024.0]), tp=1, dtype="fp8", ep=2, **QWEN3)
    assert ok.all() and t == pytest.approx([3 * tp2[64], 3 * tp2[1024]], rel=1e-12)
    t, ok = dev.moe_time(np.array([64.0]), tp=2, dtype="fp8", **QWEN3)
    assert ok.all() and t[0] == pytest.approx(tp2[64], rel=1e-12)
    _, ok = dev.moe_time(np.array([64.0]), tp=1, dtype="fp8", ep=4, **QWEN3)
    assert not ok.any()  # no rows at that split
    m = ModelSpec.from_file(catalog_path("qwen3-235b-a22b"))
    names = ["d0", "d1"]
    cost = StepCostModel(m, dev, 2, 1, "fp8", "bf16", "bf16", Topology.single_switch(names, 1e11, 1e-6),
                         names, 64, 8, ep=2)
    op = next(o for o in m.layer_operators(2, moe=True, ep=2) if o.kind == "moe")
    t, _, _ = cost._moe(op, np.array([1, 64]), "fp8", 2)
    np.testing.assert_allclose(t, [3 * tp2[1], 3 * tp2[64]], rtol=1e-12)
    table = load_aiconfigurator([d])["moe"]
    assert set(table.cols["ep"]) == {1, 2} and len(table) == 336 + 56
    assert set(fit_rows({"moe": table})["moe"].cols["ep"]) == {1}


def test_wide_ep_moe_tables_in_a_directory_are_ignored(tmp_path):
    d = tmp_path / "tables"
    d.mkdir()
    text = (SGLANG_MOE / "moe_perf.csv").read_text()
    (d / "moe_perf.csv").write_text(text)
    # aiconfigurator's wide-EP tables have the same columns with op_name moe_context
    (d / "wideep_context_moe_perf.csv").write_text(text.replace(",moe,", ",moe_context,"))
    t = load_aiconfigurator([d])["moe"]
    assert len(t) == 336
    with pytest.raises(TableError, match="wideep_context_moe_perf.csv: not an aiconfigurator per-operator table"):
        load_aiconfigurator([d / "wideep_context_moe_perf.csv"])


def test_interpolation_check_compares_with_the_model_as_the_device_prices_it():
    """The fitted-model column of the interpolation check prices each held-out attention row
    with its shape (the per-score and per-(sequence x KV head) terms), as the serving stage
    does; only rows the remaining grid covers are compared."""
    from hermes_plugins.calibration import fit_rows
    from hermes_plugins.profiled import interpolation_check

    tables = fit_rows(load_aiconfigurator([DATA]))
    out = interpolation_check(tables)
    model = GPU(GPUConfig())
    for kind, x, ph in (("context_attention", "isl", "prefill"), ("generation_attention", "step", "decode")):
        t = tables[kind]
        xs = np.unique(t.cols[x])
        held = t.select(np.isin(t.cols[x], xs[1:-1:2]))
        case = next(v for k, v in out.items() if k.startswith(kind))
        # every held-out row is either compared or counted as outside the grid
        assert case["rows"] + case["not_covered"] == len(held)
        f, b = attention_work(held, ph)
        # (without the shape the model differs from itself as the device prices it, and every
        # row outside the grid looked interpolated)
        shaped = np.asarray(model.attention_time(f, b, ph, "bf16", **attention_shape(held, ph)))
        bare = np.asarray(model.attention_time(f, b, ph, "bf16"))
        assert np.all(shaped[f > 0] > bare[f > 0])
