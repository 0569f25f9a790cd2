"""The first-party cluster node types and link types (hermes_plugins.cluster_presets), and
clients placed on them: figures in bytes/s and seconds, node counts and ports, routes, TP
collectives on one server and across two, KV transfers over InfiniBand, placement errors."""

from __future__ import annotations

import copy

import pytest

from hermes_core import ConfigError, Topology
from hermes_core.api import run
from hermes_core.cluster import ClusterConfig, build_cluster
from hermes_core.network import route
from hermes_core.plugins import default_registry
from hermes_plugins.devices import GPU, GPUConfig, fitted_link

GB = 1e9
GiB = 2**30
PCIE5 = 16 * 32e9 * 128 / 130 / 8  # 16 lanes x 32 GT/s x 128b/130b / 8 bits = 63.015 GB/s
KV_PER_TOKEN_8B = 2 * 32 * 8 * 128 * 2  # llama-3.1-8b bf16: K and V x layers x KV heads x head_dim x 2 B


def _cluster(registry, nodes, links=()):
    return build_cluster(ClusterConfig.model_validate({"nodes": nodes, "links": list(links)}), registry)


def _two_servers(link: str = "ib_ndr") -> dict:
    return {"nodes": [{"name": "a", "type": "hgx_h100"}, {"name": "b", "type": "hgx_h100"},
                      {"name": "leaf", "type": "switch"}],
            "links": [{"between": ["a", "leaf"], "type": link}, {"between": ["b", "leaf"], "type": link}]}


def _kinds(cluster, group):
    out: dict[str, int] = {}
    for n in cluster.groups[group]:
        out[cluster.kind(n)] = out.get(cluster.kind(n), 0) + 1
    return out


# -- link types ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,bandwidth,latency", [
    ("nvlink4", 450e9, 0.0),                       # 900 GB/s bidirectional / 2
    ("nvlink5", 900e9, 0.0),                       # 1.8 TB/s bidirectional / 2
    ("pcie_gen4_x16", 16 * 16e9 * 128 / 130 / 8, 0.5e-6),   # 31.51 GB/s
    ("pcie_gen5_x16", PCIE5, 0.5e-6),
    ("cxl2_x16", PCIE5, 0.35e-6),                 # PCIe 5.0 PHY; 0.1 us DRAM + 0.25 us CXL
    ("ib_ndr", 400e9 / 8, 0.5e-6),                # 50 GB/s
    ("ib_xdr", 800e9 / 8, 0.5e-6),                # 100 GB/s
    ("roce_100g", 12.5e9, 1e-6),
    ("roce_200g", 25e9, 1e-6),
    ("roce_400g", 50e9, 1e-6),
    ("roce_800g", 100e9, 1e-6),
    ("ddr5_4800_8ch", 8 * 4800e6 * 8, 0.1e-6),    # 307.2 GB/s
])
def test_link_type_figures_in_bytes_per_s_and_s(registry, name, bandwidth, latency):
    link = registry.build("links", {"type": name}, "link")
    assert link.bandwidth == pytest.approx(bandwidth, rel=1e-12)
    assert link.latency == pytest.approx(latency, rel=1e-12, abs=1e-18)
    assert "bandwidth:" in link.provenance and "latency:" in link.provenance


def test_link_type_overrides(registry):
    link = registry.build("links", {"type": "ib_ndr", "bandwidth_GBps": 25, "latency_us": 2}, "link")
    assert (link.bandwidth, link.latency) == (25e9, pytest.approx(2e-6))
    assert "overridden: bandwidth_GBps, latency_us" in link.provenance
    with pytest.raises(ConfigError, match=r"^link\.bandwidth_GBps: Input should be greater than 0 \(got 0\)"):
        registry.build("links", {"type": "ib_ndr", "bandwidth_GBps": 0}, "link")
    with pytest.raises(ConfigError, match=r"^link\.speed: unknown field"):
        registry.build("links", {"type": "ib_ndr", "speed": 1}, "link")


# -- node types ---------------------------------------------------------------------------------
def test_hgx_h100_builds_a_dgx_h100(registry):
    c = _cluster(registry, [{"name": "a", "type": "hgx_h100"}])
    assert _kinds(c, "a") == {"device": 8, "switch": 9, "host": 2, "memory": 2, "nic": 8}  # 9 = NVSwitch + 8 PCIe
    assert c.ports["a"] == [f"a/nic{i}" for i in range(8)]
    assert c.devices("a") == [f"a/gpu{i}" for i in range(8)]
    assert c.graph.nodes["a/gpu3"]["device"] == {"type": "gpu", "preset": "h100_sxm"}
    assert c.graph.nodes["a/dram1"]["capacity_bytes"] == 2**40
    # NVLink edges carry the GPU device's own figures: 450 GB/s x the fitted efficiency, 0 s
    dev = GPU(GPUConfig(preset="h100_sxm"))
    nv = c.graph.edges["a/gpu5", "a/nvswitch"]
    assert nv["bandwidth"] == dev.link_bandwidth == pytest.approx(450e9 * fitted_link().link_bandwidth_efficiency)
    assert nv["latency"] == dev.link_latency and nv["link"] == "nvlink"
    e = c.graph.edges
    assert (e["a/gpu5", "a/pcie5"]["bandwidth"], e["a/gpu5", "a/pcie5"]["latency"]) == (pytest.approx(PCIE5), 0.5e-6)
    assert e["a/nic5", "a/pcie5"]["bandwidth"] == pytest.approx(PCIE5)
    assert c.graph.has_edge("a/pcie5", "a/cpu1") and c.graph.has_edge("a/pcie3", "a/cpu0")
    assert e["a/cpu0", "a/dram0"]["bandwidth"] == pytest.approx(307.2e9)
    assert e["a/cpu0", "a/cpu1"]["bandwidth"] == pytest.approx(4 * 16e9 * 2)  # 4 UPI 2.0 x 16 GT/s x 2 B
    assert e["a/cpu0", "a/cpu1"]["link"] == "upi"


def test_hgx_h200_and_fewer_nics(registry):
    c = _cluster(registry, [{"name": "s", "type": "hgx_h200", "nics": 4}])
    assert c.graph.nodes["s/gpu0"]["device"] == {"type": "gpu", "preset": "h200_sxm"}
    assert c.ports["s"] == [f"s/nic{j}" for j in range(4)]
    # NIC j on the PCIe switch of GPU 2j
    assert [next(iter(c.graph.adj[f"s/nic{j}"])) for j in range(4)] == ["s/pcie0", "s/pcie2", "s/pcie4", "s/pcie6"]
    c2 = _cluster(registry, [{"name": "s", "type": "hgx_h100", "gpu": {"type": "gpu", "preset": "b200"}}])
    assert c2.graph.edges["s/gpu0", "s/nvswitch"]["bandwidth"] == pytest.approx(
        900e9 * fitted_link().link_bandwidth_efficiency)


def test_routes_rail_through_own_nic_and_nvswitch_inside(registry):
    c = _cluster(registry, **_two_servers())
    for i in range(8):  # GPUDirect RDMA: own PCIe switch and NIC, never NVLink
        assert route(c.graph, f"a/gpu{i}", f"b/gpu{i}") == [
            f"a/gpu{i}", f"a/pcie{i}", f"a/nic{i}", "leaf", f"b/nic{i}", f"b/pcie{i}", f"b/gpu{i}"]
    assert route(c.graph, "a/gpu2", "a/gpu6") == ["a/gpu2", "a/nvswitch", "a/gpu6"]
    # rail-matched direct links (port i to port i) without a switch
    d = _cluster(registry, [{"name": "a", "type": "hgx_h100"}, {"name": "b", "type": "hgx_h100"}],
                 [{"between": ["a", "b"], "type": "ib_ndr"}])
    assert [(u, v) for u, v in d.graph.edges if u.startswith("a/nic")] == [(f"a/nic{i}", f"b/nic{i}") for i in range(8)]
    assert route(d.graph, "a/gpu3", "b/gpu3") == ["a/gpu3", "a/pcie3", "a/nic3", "b/nic3", "b/pcie3", "b/gpu3"]


def test_cpu_host_builds(registry):
    c = _cluster(registry, [{"name": "h", "type": "cpu_host", "nics": 2, "cxl_capacity_GiB": 256}])
    assert _kinds(c, "h") == {"device": 2, "memory": 3, "switch": 1, "nic": 2}
    assert c.devices("h") == ["h/cpu0", "h/cpu1"]
    assert c.graph.nodes["h/cpu1"]["device"] == {"type": "cpu_socket", "preset": "xeon_8480p"}
    assert c.graph.nodes["h/dram0"]["capacity_bytes"] == 512 * GiB
    assert c.graph.nodes["h/cxl0"]["capacity_bytes"] == 256 * GiB
    cxl = c.graph.edges["h/cpu0", "h/cxl0"]
    assert (cxl["bandwidth"], cxl["latency"], cxl["link"]) == (pytest.approx(PCIE5), pytest.approx(0.35e-6), "cxl2_x16")
    assert c.graph.edges["h/cpu1", "h/dram1"]["bandwidth"] == pytest.approx(307.2e9)
    assert c.ports["h"] == ["h/nic0", "h/nic1"]


def test_switch_and_pod_groups_ports_and_fabric(registry):
    c = _cluster(registry, [{"name": "p", "type": "pod", "servers": 3, "fabric": {"type": "roce_400g"}},
                            {"name": "spine", "type": "switch"}],
                 [{"between": ["p", "spine"], "type": "ib_xdr"}])
    assert c.ports["spine"] == ["spine"] and c.kind("spine") == "switch"
    assert c.ports["p"] == ["p/leaf"]
    assert c.ports["p/s2"] == [f"p/s2/nic{i}" for i in range(8)]
    assert len(c.devices("p")) == 24 and c.devices("p")[:2] == ["p/s0/gpu0", "p/s0/gpu1"]
    assert c.devices("p/s1") == [f"p/s1/gpu{i}" for i in range(8)]
    assert c.groups["p"][-1] == "p/leaf" and len(c.groups["p"]) == 3 * 29 + 1  # 29 nodes per server
    leaf = c.graph.adj["p/leaf"]
    assert len(leaf) == 3 * 8 + 1  # every NIC, and the spine
    assert leaf["p/s1/nic4"]["bandwidth"] == 50e9 and leaf["p/s1/nic4"]["link"] == "roce_400g"
    assert leaf["spine"]["bandwidth"] == 100e9
    # placing on the pod takes s0's GPUs first; on a server, its own
    assert c.allocate("x", ["p"], "gpu", 8, "w") == [f"p/s0/gpu{i}" for i in range(8)]
    assert c.allocate("y", ["p/s2"], "gpu", 2, "w") == ["p/s2/gpu0", "p/s2/gpu1"]
    assert c.allocate("z", ["p"], "gpu", 2, "w") == ["p/s1/gpu0", "p/s1/gpu1"]


# -- clients placed on servers ------------------------------------------------------------------
def _llama(tp: int, place=None, cluster=None, model="llama-3.1-70b") -> dict:
    client = {"name": "c", "stage": {"type": "llm_serving", "model": model, "parallelism": {"tp": tp}}}
    sc = {"name": "t", "workload": {"type": "synthetic", "rate_rps": 5, "num_requests": 20, "isl": 1000, "osl": 20},
          "clients": [client]}
    if place is not None:
        client["place"] = place
        sc["cluster"] = cluster
    return sc


def test_tp8_on_one_hgx_h100_matches_the_unplaced_client():
    unplaced = run(_llama(8)).summary
    placed = run(_llama(8, "a", {"nodes": [{"name": "a", "type": "hgx_h100"}]})).summary
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert placed[metric] == unplaced[metric], metric
    assert [d["device"] for d in placed["utilisation"]] == [f"a/gpu{i}" for i in range(8)]


def test_tp16_across_two_servers_is_paced_by_the_50_GBps_nic_path(registry):
    c = _cluster(registry, **_two_servers())
    members = [f"a/gpu{i}" for i in range(8)] + [f"b/gpu{i}" for i in range(8)]
    dev = GPU(GPUConfig(preset="h100_sxm"))
    bw, lat = c.ring_allreduce_params(members)
    # slowest ring neighbours a/gpu7 -> b/gpu0: gpu-pcie-nic (2 x 0.5 us), nic-leaf-nic
    # (2 x 0.5 us, IB NDR 50 GB/s), nic-pcie-gpu (2 x 0.5 us); PCIe Gen5 63 GB/s > 50
    assert bw == 50e9 and lat == pytest.approx(3e-6, rel=1e-12)
    nbytes = 16 * 2**20
    ring = c.allreduce_time(members, nbytes, dev.collective_latency)
    assert ring == pytest.approx(2 * 15 / 16 * nbytes / 50e9 + 3e-6 + dev.collective_latency, rel=1e-12)
    flat = Topology.single_switch([f"g{i}" for i in range(16)], dev.link_bandwidth, dev.link_latency)
    assert flat.ring_allreduce_params([f"g{i}" for i in range(16)]) == (dev.link_bandwidth, 2 * dev.link_latency)
    assert flat.allreduce_time([f"g{i}" for i in range(16)], nbytes, dev.collective_latency) < ring
    # and the serving step times: TP16 across the two servers is slower than on one switch
    one_switch = run(_llama(16)).summary
    two_servers = run(_llama(16, ["a", "b"], _two_servers())).summary
    assert two_servers["ttft_ms"]["mean"] > one_switch["ttft_ms"]["mean"]
    assert two_servers["tpot_ms"]["mean"] > one_switch["tpot_ms"]["mean"]


def test_prefill_to_decode_kv_crosses_infiniband_with_the_handoff_bytes():
    n, isl = 10, 1000
    sc = {"name": "pd", "workload": {"type": "synthetic", "rate_rps": 2, "num_requests": n, "isl": isl, "osl": 10,
                                     "request_type": "pd"},
          "cluster": _two_servers(),
          "clients": [{"name": "pre", "place": "a", "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                                "role": "prefill"}},
                      {"name": "dec", "place": "b", "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                                "role": "decode"}}],
          "request_types": {"pd": ["pre", "dec"]}}
    res = run(sc)
    assert res.summary["requests"]["completed"] == n
    per_request = KV_PER_TOKEN_8B * isl  # 131,072 B/token x 1000 prompt tokens
    tr = res.summary["transfers"]
    assert tr["bytes"] == n * per_request and tr["flows"] == n
    links = {r["link"]: r for r in tr["links"]}
    path = ["a/gpu0", "a/pcie0", "a/nic0", "leaf", "b/nic0", "b/pcie0", "b/gpu0"]
    assert set(links) == {f"{u}->{v}" for u, v in zip(path, path[1:])}
    for row in links.values():
        assert row["bytes"] == pytest.approx(n * per_request, rel=1e-9)
    assert links["a/nic0->leaf"]["bandwidth_GBps"] == 50
    # an uncontended transfer: 6 links x 0.5 us + bytes / 50 GB/s
    decode_steps = [r for r in res.steps if r.step == "1:dec"]
    assert all(r.bytes_in == per_request for r in decode_steps)
    assert min(r.transfer_s for r in decode_steps) == pytest.approx(3e-6 + per_request / 50e9, rel=1e-9)


# -- errors -------------------------------------------------------------------------------------
def _placed(place_a="a", place_b="b", cluster=None) -> dict:
    return {"name": "e", "workload": {"type": "synthetic", "rate_rps": 1, "num_requests": 2, "isl": 100, "osl": 2,
                                      "request_type": "pd"},
            "cluster": cluster or _two_servers(),
            "clients": [{"name": "pre", "place": place_a, "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                                      "role": "prefill"}},
                        {"name": "dec", "place": place_b, "stage": {"type": "llm_serving", "model": "llama-3.1-8b",
                                                                      "role": "decode"}}],
            "request_types": {"pd": ["pre", "dec"]}}


def _with(cluster_edit=None, **client_edit) -> dict:
    sc = _placed()
    if cluster_edit:
        cluster_edit(sc["cluster"])
    for k, v in client_edit.items():
        idx, field = k.split("_", 1)
        sc["clients"][int(idx[1:])][field] = v
    return sc


ERRORS = [
    ("unknown node", _with(c1_place="nowhere"), r"clients\[1\]\.place: no cluster node or group 'nowhere'"),
    ("no devices", _with(c1_place="leaf"), r"clients\[1\]\.place: \['leaf'\] holds no devices"),
    ("nic holds no devices", _with(c1_place=["a/nic0"]), r"clients\[1\]\.place: \['a/nic0'\] holds no devices"),
    ("too few devices", _with(c1_place="a/gpu1", c1_stage={"type": "llm_serving", "model": "llama-3.1-8b",
                                                           "role": "decode", "parallelism": {"tp": 2}}),
     r"clients\[1\]\.place \(replica 0\): needs 2 free \{type: gpu, preset: h100_sxm\} devices on \['a/gpu1'\], "
     r"found 1 \(1 free in all\)"),
    ("server full", _with(c0_replicas=2, c0_stage={"type": "llm_serving", "model": "llama-3.1-8b", "role": "prefill",
                                                   "parallelism": {"tp": 8}}),
     r"clients\[0\]\.place \(replica 1\): needs 8 free \{type: gpu, preset: h100_sxm\} devices on \['a'\], "
     r"found 0 \(0 free in all\)"),
    ("same explicit device", _with(c0_place="a/gpu0", c1_place="a/gpu0"),
     r"clients\[1\]\.place \(replica 0\): device 'a/gpu0' is already placed for client 'pre'"),
    ("zero bandwidth", _with(lambda c: c["links"].__setitem__(0, {"between": ["a", "leaf"], "bandwidth_GBps": 0})),
     r"cluster\.links\[0\]\.bandwidth_GBps: Input should be greater than 0 \(got 0\)"),
    ("zero bandwidth override", _with(lambda c: c["links"][1].update(bandwidth_GBps=0)),
     r"cluster\.links\[1\]\.bandwidth_GBps: Input should be greater than 0 \(got 0\)"),
    ("link to unknown node", _with(lambda c: c["links"].append({"between": ["a", "spine"], "type": "ib_ndr"})),
     r"cluster\.links\[2\]\.between\[1\]: no cluster node or group 'spine'"),
    ("unknown link type", _with(lambda c: c["links"][0].update(type="ib_hdr")),
     r"cluster\.links\[0\]\.type: unknown link type 'ib_hdr'"),
    ("bad gpu preset", _with(lambda c: c["nodes"][0].update(gpu={"type": "gpu", "preset": "h300"})),
     r"cluster\.nodes\[0\]\.gpu: unknown preset 'h300'; allowed: a100_sxm_80gb, b200, h100_sxm, h200_sxm"),
    ("bad nic count", _with(lambda c: c["nodes"][1].update(nics=3)),
     r"cluster\.nodes\[1\]\.nics: must be 1, 2, 4 or 8"),
    ("bad pod server", _with(lambda c: c["nodes"].append({"name": "p", "type": "pod", "server": {"type": "dgx"}})),
     r"cluster\.nodes\[3\]\.server\.type: unknown cluster node type 'dgx'"),
    ("bad pod server field", _with(lambda c: c["nodes"].append({"name": "p", "type": "pod",
                                                                 "server": {"type": "hgx_h100", "gpu": {}}})),
     r"cluster\.nodes\[3\]\.server\.gpu\.type: missing"),
    ("bad pod fabric", _with(lambda c: c["nodes"].append({"name": "p", "type": "pod", "fabric": "token_ring"})),
     r"cluster\.nodes\[3\]\.fabric\.type: unknown link type 'token_ring'"),
    ("unknown node type", _with(lambda c: c["nodes"].append({"name": "z", "type": "hgx_h999"})),
     r"cluster\.nodes\[3\]\.type: unknown cluster node type 'hgx_h999'"),
    ("duplicate node name", _with(lambda c: c["nodes"].append({"name": "a", "kind": "switch"})),
     r"cluster\.nodes: node names must be unique; repeated: \['a'\]"),
    ("place without a cluster", {k: v for k, v in _placed().items() if k != "cluster"},
     r"clients\[0\]\.place: the scenario has no 'cluster' section"),
]


@pytest.mark.parametrize("case,scenario,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_placement_and_cluster_errors_name_the_yaml_path(case, scenario, message):
    with pytest.raises(ConfigError, match="^" + message):
        run(copy.deepcopy(scenario))


def test_allreduce_across_servers_uses_the_ring_not_nvlink_sharp():
    REG = default_registry()
    """NVLink SHARP and the one-shot kernel exist only inside an NVSwitch domain: a TP group
    spread over two servers is priced as the ring over its slowest path (2 (n-1)/n bytes at
    the 50 GB/s NIC, 6 link latencies, plus the collective's fixed cost)."""
    c = _cluster(REG, [{"name": "pod", "type": "pod", "servers": 2}])
    gpu = REG.build("devices", {"type": "gpu", "preset": "h100_sxm"}, "x")
    assert gpu.allreduce_algorithms and "switch" in gpu.allreduce_algorithms
    cross = c.devices("pod")
    inside = c.devices("pod/s0")
    assert not c.scale_up_domain(cross) and c.scale_up_domain(inside)
    nbytes = 64 * 2**20
    t = c.allreduce_time(cross, nbytes, gpu.collective_latency, gpu.allreduce_algorithms)
    assert t == pytest.approx(2 * 15 / 16 * nbytes / 50e9 + 6 * 0.5e-6 + gpu.collective_latency, rel=1e-12)
    # inside one server the device's algorithms still apply, exactly as on an unplaced replica
    from hermes_core.topology import Topology
    box = Topology.single_switch([f"g{i}" for i in range(8)], gpu.link_bandwidth, gpu.link_latency)
    assert c.allreduce_time(inside, nbytes, gpu.collective_latency, gpu.allreduce_algorithms) == pytest.approx(
        box.allreduce_time([f"g{i}" for i in range(8)], nbytes, gpu.collective_latency, gpu.allreduce_algorithms))
