"""Whole scenarios through :func:`hermes_core.run`: the first-party ``llm_serving`` stage
on this package's devices."""

from __future__ import annotations

import pytest

from hermes_core import CapacityError, run

GiB = 2**30
MODEL = "llama-3.1-8b"
#: Llama-3.1-8B input embedding (vocab 128256 x hidden 4096): gathered, not streamed, per step.
EMBEDDING_PARAMS = 128256 * 4096


def scenario(device: dict, tp: int = 1, **workload) -> dict:
    wl = {"type": "closed_loop", "concurrency": 4, "num_requests": 8, "isl": 128, "osl": 16, **workload}
    return {
        "name": "contrib-hardware", "seed": 3, "workload": wl,
        "clients": [{"name": "c", "device": device,
                     "stage": {"type": "llm_serving", "model": MODEL, "parallelism": {"tp": tp}}}],
    }


def decode_floor(result, tp: int, bandwidth: float) -> float:
    """Seconds to stream one device's weights, less its input-embedding shard: no decode
    step can be faster."""
    rep = result.summary["clients"]["c"]["c/0"]
    return (rep["weights_GiB_per_device"] * GiB - EMBEDDING_PARAMS / tp * 2) / bandwidth


def test_llama8b_on_tpu_v5e_tp4_completes(registry):
    """Llama-3.1-8B (15 GiB of bf16 weights) does not fit one 16 GiB v5e at
    gpu_memory_utilization 0.9; with tp=4 each chip holds 3.7 GiB."""
    result = run(scenario({"type": "tpu", "preset": "v5e"}, tp=4), registry=registry)
    s = result.summary
    assert s["requests"] == {"total": 8, "completed": 8, "dropped": 0, "unfinished": 0, "dropped_reasons": {}}
    assert [d["type"] for d in s["utilisation"]] == ["TPU-v5e"] * 4
    assert all(r.generated_tokens == 16 and r.prompt_tokens == 128 for r in result.requests)
    assert s["clients"]["c"]["c/0"]["weights_GiB_per_device"] == pytest.approx(3.74, abs=0.01)
    tpot = s["tpot_ms"]["mean"] * 1e-3
    floor = decode_floor(result, 4, 819e9)
    assert floor == pytest.approx(4.58e-3, rel=0.01)  # (4.015 GB - 0.263 GB) / 819 GB/s
    assert floor < tpot < 1.1 * floor  # decode streams the weights; attention and all-reduce add a little


def test_llama8b_does_not_fit_one_v5e_but_fits_one_v5p(registry):
    with pytest.raises(CapacityError, match=r"on 1 x TPU-v5e .* each device offers 14\.4 GiB"):
        run(scenario({"type": "tpu", "preset": "v5e"}, tp=1), registry=registry)
    result = run(scenario({"type": "tpu", "preset": "v5p"}, tp=1), registry=registry)
    assert result.summary["requests"]["completed"] == 8


def test_llama8b_on_one_xeon_socket(registry):
    """A small model on a CPU socket: decode steps take the time to stream the weights from
    8-channel DDR5-4800, (16.06 GB - 1.05 GB embedding) / 307.2 GB/s = 48.9 ms."""
    result = run(scenario({"type": "cpu", "preset": "xeon_8480p"}, num_requests=4, osl=4), registry=registry)
    assert result.summary["requests"]["completed"] == 4
    floor = decode_floor(result, 1, 307.2e9)
    assert floor == pytest.approx(48.86e-3, rel=0.01)
    tpot = result.summary["tpot_ms"]["mean"] * 1e-3
    assert floor < tpot < 1.05 * floor
