"""Roofline numbers of the ``tpu`` and ``cpu`` devices, computed by hand from the datasheet
figures in the modules' docstrings."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_core import ConfigError
from hermes_contrib_hardware import CPUConfig, CPUSocket, TPU, TPUConfig

GiB = 2**30
#: (4096 + 4096 * 4096) bf16 inputs + 4096 bf16 outputs, for m = 1, n = k = 4096.
DECODE_BYTES = (4096 + 4096 * 4096) * 2 + 4096 * 2  # 33,570,816 B
#: 3 * 4096^2 bf16 matrices, for m = n = k = 4096.
CUBE_BYTES = 3 * 4096**2 * 2  # 100,663,296 B
CUBE_FLOP = 2 * 4096**3  # 137,438,953,472


def tpu(**kw) -> TPU:
    return TPU(TPUConfig(**kw))


def cpu(**kw) -> CPUSocket:
    return CPUSocket(CPUConfig(**kw))


# -- TPU ----------------------------------------------------------------------------------
def test_tpu_v5e_datasheet_figures():
    d = tpu(preset="v5e")
    assert d.name == "TPU-v5e"
    assert d.peak_flops("bf16") == 197e12 and d.peak_flops("int8") == 393e12
    assert d.memory_bytes == 16 * GiB
    assert d.memory_bandwidth == 819e9
    assert d.link_bandwidth == 200e9  # 400 GB/s bidirectional ICI -> 200 per direction
    assert d.num_mxus == 4
    with pytest.raises(ValueError, match="no fp32 peak; available: bf16, int8"):
        d.peak_flops("fp32")


def test_tpu_v5p_datasheet_figures():
    d = tpu(preset="v5p")
    assert d.peak_flops("bf16") == 459e12 and d.peak_flops("fp8") == 459e12
    assert d.memory_bytes == 95 * GiB and d.memory_bandwidth == 2765e9
    assert d.link_bandwidth == 600e9 and d.num_mxus == 8
    with pytest.raises(ValueError, match="no int8 peak"):
        d.peak_flops("int8")


def test_tpu_gemm_decode_is_memory_bound():
    # m = 1 is padded to 128 rows for compute: 2*128*4096*4096 / 197e12 = 21.8 us, below
    # the 33.57 MB / 819 GB/s = 40.99 us weight read.
    t = tpu().gemm_time(np.array([0, 1]), 4096, 4096, "bf16")
    assert t[0] == 0.0
    assert t[1] == pytest.approx(DECODE_BYTES / 819e9, rel=1e-12)
    assert t[1] == pytest.approx(40.9899e-6, rel=1e-5)


def test_tpu_gemm_prefill_is_compute_bound():
    t = tpu().gemm_time(np.array([4096]), 4096, 4096, "bf16")[0]
    assert t == pytest.approx(CUBE_FLOP / 197e12, rel=1e-12)  # 697.66 us
    assert t == pytest.approx(697.66e-6, rel=1e-5)
    assert CUBE_BYTES / 819e9 < t  # 122.9 us of traffic hides under the compute
    # int8 on v5e: twice the peak, half the bytes
    assert tpu().gemm_time(np.array([4096]), 4096, 4096, "int8")[0] == pytest.approx(CUBE_FLOP / 393e12)


def test_tpu_mxu_padding():
    """1000 x 1000 x 1000 occupies the MXUs like 1024^3: 2 * 1024^3 / 197e12 = 10.90 us
    (compute-bound: 6 MB / 819 GB/s = 7.33 us), not 2e9 / 197e12 = 10.15 us."""
    d = tpu()
    assert d.gemm_flops(1000, 1000, 1000) == 2 * 1024**3
    assert d.gemm_flops(1, 4096, 4096) == 2 * 128 * 4096 * 4096
    assert d.gemm_flops(129, 129, 129) == 2 * 256**3
    assert d.gemm_time(np.array([1000]), 1000, 1000, "bf16")[0] == pytest.approx(2 * 1024**3 / 197e12, rel=1e-12)
    flat = tpu(mxu_size=0, m_tile=0)
    assert flat.gemm_time(np.array([1000]), 1000, 1000, "bf16")[0] == pytest.approx(2e9 / 197e12, rel=1e-12)
    # only XLA's 8-row sublane padding of m
    assert tpu(m_tile=8).gemm_flops(1, 4096, 4096) == 2 * 8 * 4096 * 4096


def test_tpu_efficiencies_overheads_and_overrides():
    d = tpu(compute_efficiency=0.5, memory_efficiency=0.8, kernel_overhead_us=3.0)
    assert d.gemm_time(np.array([4096]), 4096, 4096, "bf16")[0] == pytest.approx(CUBE_FLOP / (197e12 * 0.5) + 3e-6)
    assert d.memory_time(np.array([0.0, 8.19e9]))[1] == pytest.approx(8.19e9 / (819e9 * 0.8) + 3e-6)
    assert d.memory_time(np.array([0.0]))[0] == 0.0
    att = d.attention_time(np.array([0.0, 1e12]), np.array([0.0, 1e6]), "prefill", "bf16")
    assert att[0] == 0.0 and att[1] == pytest.approx(1e12 / (197e12 * 0.5) + 3e-6)
    dec = d.attention_time(np.array([1e6]), np.array([1e9]), "decode", "bf16")[0]
    assert dec == pytest.approx(1e9 / (819e9 * 0.8) + 3e-6)
    with pytest.raises(ValueError, match="phase"):
        d.attention_time(np.array([1.0]), np.array([1.0]), "verify", "bf16")
    o = tpu(preset="tpu_v5e", memory_GiB=32, peak_tflops={"fp8": 394}, link_bandwidth_GBps=100)
    assert o.memory_bytes == 32 * GiB and o.peak_flops("fp8") == 394e12 and o.link_bandwidth == 100e9
    assert o.peak_flops("bf16") == 197e12


def test_tpu_config_errors_name_the_field(registry):
    with pytest.raises(ConfigError, match=r"clients\[0\]\.device: unknown preset 'v4'; allowed: v5e, v5p"):
        registry.validate("devices", {"type": "tpu", "preset": "v4"}, "clients[0].device")
    with pytest.raises(ConfigError, match=r"clients\[0\]\.device\.mxu: unknown field"):
        registry.validate("devices", {"type": "tpu", "mxu": 128}, "clients[0].device")


# -- CPU ----------------------------------------------------------------------------------
def test_cpu_xeon_8480p_datasheet_figures():
    d = cpu()
    assert d.name == "Xeon-Platinum-8480+"
    assert d.peak_flops("bf16") == pytest.approx(114.688e12)  # 56 * 2.0 GHz * 1024
    assert d.peak_flops("int8") == pytest.approx(229.376e12)  # 56 * 2.0 GHz * 2048
    assert d.peak_flops("fp32") == pytest.approx(7.168e12)  # 56 * 2.0 GHz * 64
    assert d.memory_bandwidth == pytest.approx(307.2e9)  # 8 ch * 4800 MT/s * 8 B
    assert d.memory_bytes == 512 * GiB
    assert d.link_bandwidth == 128e9
    with pytest.raises(ValueError, match="no fp8 peak"):
        d.peak_flops("fp8")
    assert cpu(preset="sapphire_rapids", cores=32, clock_GHz=2.5).peak_flops("bf16") == pytest.approx(32 * 2.5e9 * 1024)
    assert cpu(memory_MTps=4400).memory_bandwidth == pytest.approx(8 * 4400e6 * 8)


def test_cpu_gemm_roofline():
    d = cpu()
    t = d.gemm_time(np.array([0, 1, 4096]), 4096, 4096, "bf16")
    assert t[0] == 0.0
    # decode: 33.57 MB / 307.2 GB/s = 109.28 us >> 2*16*4096^2 / 114.688 TFLOP/s = 4.68 us
    assert t[1] == pytest.approx(DECODE_BYTES / 307.2e9, rel=1e-12)
    assert t[1] == pytest.approx(109.28e-6, rel=1e-4)
    # prefill: 137.4 GFLOP / 114.688 TFLOP/s = 1.1984 ms > 100.7 MB / 307.2 GB/s = 0.328 ms
    assert t[2] == pytest.approx(CUBE_FLOP / 114.688e12, rel=1e-12)
    assert t[2] == pytest.approx(1.19838e-3, rel=1e-5)


def test_cpu_amx_tile_padding():
    d = cpu()
    assert d.gemm_flops(1, 1, 33, "bf16") == 2 * 16 * 16 * 64  # k padded to 32 bf16 per row
    assert d.gemm_flops(1, 1, 65, "int8") == 2 * 16 * 16 * 128  # k padded to 64 int8 per row
    assert d.gemm_flops(1, 1, 33, "fp32") == 2 * 33  # AVX-512: no tile padding
