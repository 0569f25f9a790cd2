"""The ``cost`` section of summary.json: price, energy, and their per-token figures.

Hand checks on a tiny model served by one H100 whose price and power are overridden to round
numbers (10 $/h, idle 100 W, full load 700 W), against the summary's own duration, busy
fraction and token counts; and first-principles checks where the busy fraction is known
without the simulator (a device that never works, one that never stops)."""

from __future__ import annotations

import math

import pytest
from conftest import serving_scenario

from hermes_core import HardwareNode, api
from hermes_core.cli import _cost_line
from hermes_core.cost import cost_summary
from hermes_core.errors import ConfigError
from hermes_plugins.cpu import PRESETS as CPU_PRESETS
from hermes_plugins.cpu import CPUSocket, CPUSocketConfig
from hermes_plugins.devices import GPU, PRESETS, GPUConfig

PRICED_H100 = {"type": "gpu", "preset": "h100_sxm", "usd_per_hour": 10, "idle_W": 100, "tdp_W": 700}


def _run(registry, model, workload, device=PRICED_H100, **client):
    sc = serving_scenario(model, workload, device=device)
    sc["clients"][0].update(client)
    return api.run(sc, registry=registry).summary


def test_open_loop_run_by_hand(registry, tiny_model):
    """Five requests of 64 + 8 tokens arriving at 200 req/s: the device idles between
    them, so its busy fraction is well inside (0, 1)."""
    s = _run(registry, tiny_model, {"type": "synthetic", "rate_rps": 200, "num_requests": 5, "isl": 64, "osl": 8})
    c = s["cost"]
    D, T = s["benchmark_duration_s"], s["simulated_time_s"]
    (dev,) = s["utilisation"]
    busy = dev["busy_fraction"]
    assert s["requests"]["completed"] == 5 and 0.02 < busy < 0.9
    n_in, n_out = 5 * 64, 5 * 8
    assert c["devices"] == 1 and c["missing"] == [] and c["missing_power"] == []
    assert c["usd_per_hour"] == 10.0
    assert c["usd"] == pytest.approx(10.0 * D / 3600, rel=1e-12)
    assert c["output_tokens_per_usd"] == pytest.approx(n_out / c["usd"], rel=1e-9)
    assert c["tokens_per_usd"] == pytest.approx((n_in + n_out) / c["usd"], rel=1e-9)
    assert c["usd_per_million_output_tokens"] == pytest.approx(c["usd"] / n_out * 1e6, rel=1e-9)
    assert c["usd_per_million_input_tokens"] == pytest.approx(c["usd"] / n_in * 1e6, rel=1e-9)
    # energy over the simulated time, the busy fraction's denominator
    assert c["average_power_W"] == pytest.approx(100 + 600 * busy, rel=1e-12)
    assert c["energy_J"] == pytest.approx((100 + 600 * busy) * T, rel=1e-12)
    # per token: the benchmark window charged at the run's average power
    assert c["joules_per_output_token"] == pytest.approx((100 + 600 * busy) * D / n_out, rel=1e-9)
    assert c["joules_per_token"] == pytest.approx((100 + 600 * busy) * D / (n_in + n_out), rel=1e-9)
    assert "goodput_requests_per_usd" not in c


def test_busy_and_idle_devices_from_first_principles(registry, tiny_model):
    """A closed loop at concurrency 1 keeps its engine stepping from t = 0 to the end, so its
    device is busy the whole run and draws its full 700 W; a second device that the client
    holds (num_devices: 2) but no stage uses never works and draws its idle 100 W. Both are
    rented: 2 x 10 $/h. The first request is a warm-up: the benchmark window D starts when
    the second is sent, after the warm-up finished, so D < T; dollars are charged over D,
    energy over T."""
    s = _run(registry, tiny_model, {"type": "closed_loop", "concurrency": 1, "num_requests": 4, "warmup_requests": 1,
                                    "isl": 64, "osl": 8}, num_devices=2)
    c = s["cost"]
    D, T = s["benchmark_duration_s"], s["simulated_time_s"]
    assert s["requests"]["completed"] == 3 and 0 < D < T
    assert c["devices"] == 2
    assert c["usd_per_hour"] == 20.0
    assert c["usd"] == pytest.approx(20.0 * D / 3600, rel=1e-12)
    assert c["average_power_W"] == pytest.approx(700.0 + 100.0, rel=1e-12)
    assert c["energy_J"] == pytest.approx(800.0 * T, rel=1e-12)
    assert c["joules_per_output_token"] == pytest.approx(800.0 * D / (3 * 8), rel=1e-9)
    assert c["output_tokens_per_usd"] == pytest.approx(3 * 8 / (20.0 * D / 3600), rel=1e-9)


def test_goodput_per_dollar(registry, tiny_model):
    sc = serving_scenario(tiny_model, {"type": "closed_loop", "concurrency": 1, "num_requests": 4, "isl": 64, "osl": 8},
                          device=PRICED_H100)
    sc["slo"] = {"e2e_ms": 1e6}  # every request meets it
    s = api.run(sc, registry=registry).summary
    c = s["cost"]
    assert s["goodput"]["requests_meeting_slo"] == 4
    assert c["goodput_requests_per_usd"] == pytest.approx(4 / c["usd"], rel=1e-9)


def test_device_without_price_or_power(registry, tiny_model):
    """The test fixture's toy device declares neither: dollar and energy figures are null and
    the device is named."""
    s = _run(registry, tiny_model, {"type": "closed_loop", "concurrency": 1, "num_requests": 2, "isl": 64, "osl": 8},
             device={"type": "toy"})
    c = s["cost"]
    assert c["usd_per_hour"] is None and c["missing"] == ["c/0/dev0"]
    assert c["usd"] is None and c["output_tokens_per_usd"] is None and c["usd_per_million_output_tokens"] is None
    assert c["average_power_W"] is None and c["energy_J"] is None and c["missing_power"] == ["c/0/dev0"]
    assert c["joules_per_token"] is None
    assert _cost_line(c) == "cost: price unknown for 1 device(s), power unknown for 1 device(s)"


class _Dev(HardwareNode):
    """A bare device with a price and a power model (pricing methods unused)."""

    def __init__(self, usd, idle, peak):
        self.usd_per_hour, self.idle_power, self.max_power = usd, idle, peak

    peak_flops = gemm_time = attention_time = memory_time = None  # type: ignore[assignment]


def test_cost_summary_sums_shared_devices_and_caps_at_one():
    """Two stages of one replica share its devices: their busy fractions add (a: 0.25 +
    0.5), at most 1 (b: 0.75 + 0.5); a device no stage reports is idle (c)."""
    util = [{"device": "a", "busy_fraction": 0.25}, {"device": "b", "busy_fraction": 0.75},
            {"device": "a", "busy_fraction": 0.5}, {"device": "b", "busy_fraction": 0.5}]
    summary = {"utilisation": util, "simulated_time_s": 10.0, "benchmark_duration_s": 8.0,
               "throughput": {"input_tokens_per_s": 300.0, "output_tokens_per_s": 100.0},
               "goodput": {"requests_per_s": 2.0}}
    devs = [("a", _Dev(1.0, 100.0, 500.0)), ("b", _Dev(2.0, 50.0, 250.0)), ("c", _Dev(0.5, 10.0, 90.0))]
    c = cost_summary(devs, summary)
    # a: 100 + 400 * 0.75 = 400 W; b: 250 W; c: 10 W
    assert c["average_power_W"] == 660.0
    assert c["energy_J"] == 6600.0
    assert c["usd_per_hour"] == 3.5
    assert c["usd"] == pytest.approx(3.5 * 8 / 3600)
    assert c["usd_per_million_output_tokens"] == pytest.approx(3.5 / 3600 / 100 * 1e6)
    assert c["tokens_per_usd"] == pytest.approx(400 * 3600 / 3.5)
    assert c["goodput_requests_per_usd"] == pytest.approx(2 * 3600 / 3.5)
    assert c["joules_per_output_token"] == 6.6 and c["joules_per_token"] == 1.65
    assert _cost_line(c) == "cost: $3.50/h, 102,857 output tokens per $, 1.65 J per token (0.66 kW)"
    # nothing completed: no per-token figure, a free device: no per-dollar figure
    idle = {**summary, "throughput": {"input_tokens_per_s": 0.0, "output_tokens_per_s": 0.0}}
    c0 = cost_summary([("c", _Dev(0.0, 10.0, 90.0))], idle)
    assert c0["usd_per_million_output_tokens"] is None and c0["joules_per_token"] is None
    assert c0["output_tokens_per_usd"] is None and c0["usd"] == 0.0


@pytest.mark.parametrize("field,value,message", [
    ("usd_per_hour", -1, "clients[0].device.usd_per_hour: Input should be greater than or equal to 0 (got -1)"),
    ("idle_W", -5, "clients[0].device.idle_W: Input should be greater than or equal to 0 (got -5)"),
    ("tdp_W", math.inf, "clients[0].device.tdp_W: must be a finite number (got inf)"),
    ("idle_W", 800, "clients[0].device.idle_W: must be <= tdp_W, the full-load power (700 W, preset h100_sxm) "
                    "(got 800.0)"),
    ("tdp_W", 100, "clients[0].device.tdp_W: must be >= idle_W, the idle power (140 W, preset h100_sxm); set idle_W "
                   "too (got 100.0)"),
])
def test_bad_price_or_power_is_one_config_error(registry, tiny_model, field, value, message):
    device = {"type": "gpu", "preset": "h100", field: value}
    sc = serving_scenario(tiny_model, {"type": "closed_loop", "concurrency": 1, "isl": 8, "osl": 2}, device=device)
    with pytest.raises(ConfigError) as exc:
        api.check_scenario(sc, registry=registry)
    assert str(exc.value) == message


def test_cpu_socket_power_order_and_overrides():
    with pytest.raises(Exception, match="idle_W\n.*must be <= tdp_W, the full-load power \\(300 W\\)"):
        CPUSocketConfig(idle_W=400, tdp_W=300)
    cpu = CPUSocket(CPUSocketConfig(preset="xeon_6980p", usd_per_hour=0, idle_W=60))
    assert (cpu.usd_per_hour, cpu.idle_power, cpu.max_power) == (0.0, 60.0, 500.0)
    assert cpu.power_source.startswith("scenario (idle_W); TDP: Intel ARK Xeon 6980P, 500 W")
    assert cpu.average_power(0.5) == 280.0 and cpu.average_power(2.0) == 500.0


def test_presets_carry_price_and_power_with_sources():
    """Datasheet TDPs (NVIDIA A100/H100/H200/B200, Intel ARK) and a source for every figure."""
    assert {k: p.tdp_W for k, p in PRESETS.items()} == {
        "a100_sxm_80gb": 400, "h100_sxm": 700, "h200_sxm": 700, "b200": 1000}
    assert {k: p.tdp_W for k, p in CPU_PRESETS.items()} == {"xeon_8480p": 350, "xeon_6980p": 500}
    # per socket: AWS per-core price x cores
    assert CPU_PRESETS["xeon_8480p"].usd_per_hour == pytest.approx(0.2016 / 2 * 56)
    assert CPU_PRESETS["xeon_6980p"].usd_per_hour == pytest.approx(0.212 / 2 * 128)
    for p in [*PRESETS.values(), *CPU_PRESETS.values()]:
        assert 0 < p.idle_W < p.tdp_W and p.usd_per_hour > 0
        assert p.price_source and p.power_source
    gpu = GPU(GPUConfig(preset="b200"))
    assert (gpu.usd_per_hour, gpu.idle_power, gpu.max_power) == (6.0, 200.0, 1000.0)
    assert gpu.price_source.startswith("Hyperstack on-demand rate card")
