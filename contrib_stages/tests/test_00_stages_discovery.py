"""First test: hermes finds this distribution through its ``hermes`` entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import hermes_contrib_stages as pkg


def test_plugin_is_discovered_through_its_entry_point(registry):
    eps = [ep for ep in entry_points(group="hermes") if ep.name == "contrib_stages"]
    assert eps, ("no 'contrib_stages' entry point in the 'hermes' group: "
                 "install the package first (pip install ./contrib_stages)")
    ep = eps[0]
    assert ep.value == "hermes_contrib_stages"
    assert ep.dist is not None and ep.dist.name == "hermes-contrib-stages"
    assert ep.dist.version == pkg.__version__
    for name, cls in {"rag_retrieval": pkg.RagRetrieval, "kv_retrieval": pkg.KVRetrieval}.items():
        comp = registry.get("stages", name)
        assert comp.obj is cls and comp.config_model is cls.Config
        assert comp.plugin.name == "contrib_stages"
        assert comp.plugin.distribution == "hermes-contrib-stages"
    listing = {p["name"]: p for p in registry.plugins()}
    assert listing["contrib_stages"]["components"] == {"stages": ["kv_retrieval", "rag_retrieval"]}
