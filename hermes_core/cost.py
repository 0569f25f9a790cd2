"""The ``cost`` section of ``summary.json``: what the run's devices cost to rent and the
energy they draw, per token and per request.

Every device of every replica of every client counts (devices of the cluster that no client
uses do not), each with its :class:`~hermes_core.HardwareNode` price (``usd_per_hour``) and
power model (:meth:`~hermes_core.HardwareNode.average_power`). With ``D`` the benchmark
duration (``benchmark_duration_s``), ``T`` the simulated time (``simulated_time_s``), ``b_d``
device ``d``'s busy fraction (its busy time over ``T``, as in ``utilisation``; the sum over
the stages that share the device, at most 1; 0 for a device no stage reports):

* ``usd_per_hour = sum_d usd_per_hour_d`` and ``usd = usd_per_hour * D / 3600``: the devices
  are rented for the benchmark window, as throughput is measured over it;
* ``average_power_W = sum_d (idle_d + (max_d - idle_d) * b_d)`` and ``energy_J =
  average_power_W * T``: energy over the whole simulated time, the busy fraction's
  denominator;
* per-token and per-request figures divide a rate by the matching throughput (tokens of
  completed measured requests over ``D``): ``usd_per_million_output_tokens = usd_per_hour /
  3600 / output_tokens_per_s * 1e6``, ``joules_per_output_token = average_power_W /
  output_tokens_per_s``, ``goodput_requests_per_usd = goodput.requests_per_s * 3600 /
  usd_per_hour``, ...; so the window is charged at the run's average power, as it is charged
  at its price.

Definitions and their limits are in ``docs/metrics.md`` (cost and energy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .hardware import HardwareNode

HOUR_S = 3600.0


def _ratio(num: float | None, den: float | None, scale: float = 1.0) -> float | None:
    """``num / den * scale``; ``None`` when either is unknown or ``den`` is 0."""
    if num is None or den is None or den <= 0:
        return None
    return num / den * scale


def cost_summary(devices: Iterable[tuple[str, HardwareNode]], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cost`` section for ``devices`` (``(name, device)`` pairs, names as in
    ``utilisation``) from a run's ``summary`` (``utilisation``, ``simulated_time_s``,
    ``benchmark_duration_s``, ``throughput`` and, with an SLO, ``goodput``).

    Dollar figures are ``None`` when any device has no price (those are named in
    ``missing``), energy figures when any has no power model (``missing_power``); a figure
    per token or per request is ``None`` when its denominator is 0."""
    busy: dict[str, float] = {}
    for d in summary.get("utilisation", []):
        busy[d["device"]] = busy.get(d["device"], 0.0) + float(d["busy_fraction"])
    price, power, count = 0.0, 0.0, 0
    missing: list[str] = []
    missing_power: list[str] = []
    for name, dev in devices:
        count += 1
        if dev.usd_per_hour is None:
            missing.append(name)
        else:
            price += dev.usd_per_hour
        watts = dev.average_power(min(1.0, busy.get(name, 0.0)))
        if watts is None:
            missing_power.append(name)
        else:
            power += watts
    usd_per_hour = None if missing else price
    usd_per_s = None if usd_per_hour is None else usd_per_hour / HOUR_S
    watts_total = None if missing_power else power
    th = summary["throughput"]
    out_rate = th["output_tokens_per_s"]
    in_rate = th["input_tokens_per_s"]
    duration = summary["benchmark_duration_s"]
    out: dict[str, Any] = {
        "devices": count,
        "usd_per_hour": usd_per_hour,
        "missing": missing,
        "usd": None if usd_per_s is None else usd_per_s * duration,
        "usd_per_million_input_tokens": _ratio(usd_per_s, in_rate, 1e6),
        "usd_per_million_output_tokens": _ratio(usd_per_s, out_rate, 1e6),
        "output_tokens_per_usd": _ratio(out_rate, usd_per_s),
        "tokens_per_usd": _ratio(in_rate + out_rate, usd_per_s),
    }
    if "goodput" in summary:
        out["goodput_requests_per_usd"] = _ratio(summary["goodput"]["requests_per_s"], usd_per_s)
    out.update({
        "average_power_W": watts_total,
        "missing_power": missing_power,
        "energy_J": None if watts_total is None else watts_total * summary["simulated_time_s"],
        "joules_per_output_token": _ratio(watts_total, out_rate),
        "joules_per_token": _ratio(watts_total, in_rate + out_rate),
    })
    return out
