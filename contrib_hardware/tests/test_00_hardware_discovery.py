"""First test: hermes finds this distribution through its ``hermes`` entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import hermes_contrib_hardware as pkg


def test_plugin_is_discovered_through_its_entry_point(registry):
    eps = [ep for ep in entry_points(group="hermes") if ep.name == "contrib_hardware"]
    assert eps, ("no 'contrib_hardware' entry point in the 'hermes' group: "
                 "install the package first (pip install ./contrib_hardware)")
    ep = eps[0]
    assert ep.value == "hermes_contrib_hardware"
    assert ep.dist is not None and ep.dist.name == "hermes-contrib-hardware"
    assert ep.dist.version == pkg.__version__
    expected = {("devices", "tpu"): pkg.TPU, ("devices", "cpu"): pkg.CPUSocket,
                ("memory_tiers", "cxl_expander"): pkg.CXLExpander}
    for (kind, name), cls in expected.items():
        comp = registry.get(kind, name)
        assert comp.obj is cls and comp.config_model is cls.Config
        assert comp.plugin.name == "contrib_hardware"
        assert comp.plugin.distribution == "hermes-contrib-hardware"
    listing = {p["name"]: p for p in registry.plugins()}
    assert listing["contrib_hardware"]["components"] == {
        "devices": ["cpu", "tpu"], "memory_tiers": ["cxl_expander"]}
