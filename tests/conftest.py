"""Shared fixtures: a toy device with round numbers, a tiny model, and a registry that
holds the first-party plugins plus the toy device (the "register a plugin for the
duration of a test" idiom)."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from hermes_core import HardwareNode, hookimpl, load_plugins


class ToyConfig(BaseModel):
    """Round numbers so step costs can be computed by hand: 100 TFLOP/s, 1 TB/s, 10 GiB,
    100 GB/s links with zero latency, no efficiency loss, no launch overhead."""

    model_config = ConfigDict(extra="forbid")
    memory_GiB: float = 10.0
    tflops: float = 100.0
    bandwidth_TBps: float = 1.0
    link_GBps: float = 100.0
    link_latency_us: float = 0.0


class ToyDevice(HardwareNode):
    """Ideal roofline device (efficiency 1, no launch cost)."""

    Config = ToyConfig

    def __init__(self, config: ToyConfig):
        self.name = "toy"
        self.memory_bytes = config.memory_GiB * 2**30
        self.memory_bandwidth = config.bandwidth_TBps * 1e12
        self.link_bandwidth = config.link_GBps * 1e9
        self.link_latency = config.link_latency_us * 1e-6
        self._peak = config.tflops * 1e12
        self.provenance = "test fixture"

    def peak_flops(self, dtype):
        if dtype not in ("bf16", "fp8"):
            raise ValueError(f"toy has no {dtype} peak")
        return self._peak

    def gemm_time(self, m, n, k, dtype):
        m = np.asarray(m, dtype=float)
        b = 2.0 if dtype == "bf16" else 1.0
        return np.maximum(2 * m * n * k / self._peak, ((m * k + k * n) * b + m * n * 2) / self.memory_bandwidth) * (m > 0)

    def attention_time(self, flops, bytes_, phase, dtype):
        return np.maximum(np.asarray(flops) / self._peak, np.asarray(bytes_) / self.memory_bandwidth)

    def memory_time(self, bytes_):
        return np.asarray(bytes_, dtype=float) / self.memory_bandwidth


toy_plugin = types.SimpleNamespace()


@hookimpl
def _register_devices(register):
    register("toy", ToyDevice)


toy_plugin.hermes_register_devices = _register_devices

#: A tiny Llama-style model: 2 layers, hidden 256, 4 heads of 64, 2 KV heads, MLP 512.
TINY_MODEL = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
    "vocab_size": 1000, "max_position_embeddings": 4096, "tie_word_embeddings": False,
}


@pytest.fixture(scope="session")
def registry():
    """First-party plugins (entry points) plus the toy device."""
    return load_plugins(extra=[("toy", toy_plugin)])


@pytest.fixture
def tiny_model(tmp_path):
    p = tmp_path / "tiny" / "config.json"
    p.parent.mkdir()
    p.write_text(json.dumps(TINY_MODEL))
    return str(p)


def serving_scenario(model: str, workload: dict, *, device=None, batching="chunked_prefill", **stage) -> dict:
    """A one-client scenario dict on the toy device (or ``device``); ``batching`` is a
    policy name or a whole policy spec."""
    return {
        "name": "test",
        "workload": workload,
        "clients": [{
            "name": "c",
            "device": device or {"type": "toy"},
            "stage": {"type": "llm_serving", "model": model, "batching": batching if isinstance(batching, dict) else {"type": batching},
                      **stage},
        }],
    }
