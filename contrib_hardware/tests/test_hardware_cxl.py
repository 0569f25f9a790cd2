"""The ``cxl_expander`` memory tier: capacity, bandwidth and latency from its presets."""

from __future__ import annotations

import pytest

from hermes_core import ConfigError, MemoryTier
from hermes_contrib_hardware import CXLExpander

GiB = 2**30
#: PCIe 5.0 x8 per direction: 32 GT/s * 8 lanes * 128/130 / 8 bits.
X8 = 32e9 * 8 * 128 / 130 / 8  # 31.5077 GB/s


def build(registry, **spec) -> CXLExpander:
    tier = registry.build("memory_tiers", {"type": "cxl_expander", **spec}, "tier")
    assert isinstance(tier, MemoryTier)
    return tier


def test_cz120_preset(registry):
    t = build(registry)  # default preset: micron_cz120_256gb
    assert t.name == "Micron-CZ120-256GB"
    assert t.capacity_bytes == 256 * GiB
    # the 36 GB/s datasheet figure is a read+write mix; one direction is capped by the x8 link
    assert t.bandwidth == pytest.approx(X8) and X8 == pytest.approx(31.5077e9, rel=1e-5)
    assert t.latency == pytest.approx(250e-9)
    # fetching 1 GiB: 250 ns + 2^30 B / 31.5077 GB/s = 34.079 ms
    assert t.transfer_time(GiB) == pytest.approx(250e-9 + GiB / X8)
    assert t.transfer_time(GiB) == pytest.approx(34.0789e-3, rel=1e-5)


def test_interleaved_modules_and_overrides(registry):
    t = build(registry, preset="micron_cz120_128gb", modules=4)
    assert t.name == "4xMicron-CZ120-128GB"
    assert t.capacity_bytes == 512 * GiB and t.bandwidth == pytest.approx(4 * X8)
    s = build(registry, preset="cmm_d", bandwidth_GBps=30, latency_ns=400, efficiency=0.5)
    assert s.name == "Samsung-CMM-D-128GB" and s.capacity_bytes == 128 * GiB
    assert s.bandwidth == pytest.approx(15e9) and s.latency == pytest.approx(400e-9)
    # Samsung's 35 GB/s is also above the x8 link rate
    assert build(registry, preset="samsung_cmm_d_128gb").bandwidth == pytest.approx(X8)


def test_config_errors(registry):
    with pytest.raises(ConfigError, match=r"tier: unknown preset 'cz999'; allowed: micron_cz120_128gb"):
        build(registry, preset="cz999")
    with pytest.raises(ConfigError, match=r"tier\.modules: Input should be greater than or equal to 1"):
        build(registry, modules=0)
    with pytest.raises(ConfigError, match=r"tier\.latency_us: unknown field"):
        build(registry, latency_us=1)
