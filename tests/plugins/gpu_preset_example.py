"""A plugin that adds a GPU as a new preset of hermes's own ``gpu`` device.

The new device keeps everything the built-in GPU model has (the roofline with the fitted
GEMM, attention, MoE and all-reduce efficiency factors, the price and power model) and
changes only the datasheet figures. docs/plugins.md, "A new GPU preset", shows this file.
Figures: AMD Instinct MI300X data sheet (2023): 1,307.4 TFLOP/s dense BF16/FP16, 2,614.9
FP8/INT8, 163.4 FP32; 192 GB HBM3 at 5.3 TB/s; 304 compute units; 7 Infinity Fabric links
of 64 GB/s per direction each; 750 W. The price is an assumption for the example.
"""

from __future__ import annotations

from typing import ClassVar

from hermes_core import hookimpl
from hermes_plugins.devices import GPU, PRESETS, GPUConfig, GPUPreset

MI300X = GPUPreset(
    name="MI300X",
    peak_tflops={"bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9, "int8": 2614.9, "fp32": 163.4},
    memory_bytes=192e9, memory_bandwidth_GBps=5300, link_bandwidth_GBps=64, num_sms=304,
    provenance="AMD Instinct MI300X data sheet (2023)",
    usd_per_hour=2.50, tdp_W=750, idle_W=150,
    price_source="assumption for the example", power_source="AMD Instinct MI300X data sheet (2023): 750 W",
)


class ExampleGPUConfig(GPUConfig):
    """``device: {type: example_gpu, preset: mi300x}``: the built-in presets plus MI300X."""

    presets: ClassVar[dict[str, GPUPreset]] = {**PRESETS, "mi300x": MI300X}
    preset: str = "mi300x"


class ExampleGPU(GPU):
    """hermes's GPU model with :class:`ExampleGPUConfig`'s presets."""

    Config = ExampleGPUConfig


@hookimpl
def hermes_register_devices(register):
    """Register ``example_gpu``."""
    register("example_gpu", ExampleGPU, source="AMD Instinct MI300X data sheet (2023)")
