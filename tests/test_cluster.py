"""The cluster: node types and link types build what their datasheets say, placement takes
devices as documented, collectives and transfers are priced over the cluster's paths, and
bad cluster input is one error naming the YAML path."""

from __future__ import annotations

import pytest

from hermes_core import ConfigError, load_plugins
from hermes_core.api import run
from hermes_core.cluster import ClusterConfig, build_cluster

REG = load_plugins()
KV_PER_TOKEN_8B = 2 * 32 * 8 * 128 * 2  # llama-3.1-8b bf16


def _cluster(nodes, links=()):
    return build_cluster(ClusterConfig.model_validate({"nodes": nodes, "links": list(links)}), REG)


def test_link_types_carry_their_line_rates():
    def bw(name):
        return REG.build("links", {"type": name}, "x").bandwidth

    assert bw("ib_ndr") == 50e9 and bw("ib_xdr") == 100e9        # 400 / 800 Gb/s
    assert bw("roce_100g") == 12.5e9 and bw("roce_400g") == 50e9 and bw("roce_800g") == 100e9
    assert bw("pcie_gen5_x16") == pytest.approx(32e9 * 16 * 128 / 130 / 8)   # 63.0 GB/s
    assert bw("pcie_gen4_x16") == pytest.approx(16e9 * 16 * 128 / 130 / 8)   # 31.5 GB/s
    assert bw("nvlink4") == 450e9 and bw("ddr5_4800_8ch") == pytest.approx(8 * 4800e6 * 8)
    link = REG.build("links", {"type": "ib_ndr", "bandwidth_GBps": 40, "latency_us": 2}, "x")
    assert (link.bandwidth, link.latency) == (40e9, 2e-6)
    for name in REG.names("links"):
        assert REG.build("links", {"type": name}, "x").provenance


def test_hgx_h100_builds_a_dgx_h100():
    c = _cluster([{"name": "s", "type": "hgx_h100"}])
    g = c.graph
    assert c.devices("s") == [f"s/gpu{i}" for i in range(8)]
    assert c.ports["s"] == [f"s/nic{i}" for i in range(8)]
    assert sum(1 for n in c.groups["s"] if g.nodes[n]["kind"] == "memory") == 2
    assert g.nodes["s/dram0"]["capacity_bytes"] == 2**40
    # NVLink edges are the H100 device's own link figures (450 GB/s per direction)
    gpu = REG.build("devices", {"type": "gpu", "preset": "h100_sxm"}, "x")
    assert g.edges["s/gpu3", "s/nvswitch"]["bandwidth"] == gpu.link_bandwidth
    # GPU to GPU through the NVSwitch; GPU i to the fabric through its own PCIe switch and NIC i
    assert c.path("s/gpu0", "s/gpu5") == (gpu.link_bandwidth, 2 * gpu.link_latency)
    from hermes_core.network import route
    assert route(g, "s/gpu5", "s/nic5") == ["s/gpu5", "s/pcie5", "s/nic5"]


def test_cpu_host_and_pod():
    c = _cluster([{"name": "h", "type": "cpu_host", "nics": 2, "cxl_capacity_GiB": 256}])
    assert c.devices("h") == ["h/cpu0", "h/cpu1"]
    assert c.graph.nodes["h/cpu0"]["device"] == {"type": "cpu_socket", "preset": "xeon_8480p"}
    assert c.graph.nodes["h/cxl0"]["capacity_bytes"] == 256 * 2**30
    assert c.ports["h"] == ["h/nic0", "h/nic1"]
    p = _cluster([{"name": "pod", "type": "pod", "servers": 3, "fabric": "roce_400g"}])
    assert len(p.devices("pod")) == 24 and p.devices("pod/s1")[0] == "pod/s1/gpu0"
    assert p.ports["pod"] == ["pod/leaf"]
    assert p.graph.edges["pod/s2/nic7", "pod/leaf"]["bandwidth"] == 50e9


def test_rail_matched_and_switch_links():
    c = _cluster([{"name": "a", "type": "hgx_h100"}, {"name": "b", "type": "hgx_h100"}, {"name": "sw", "type": "switch"}],
                 [{"between": ["a", "b"], "type": "ib_ndr"}, {"between": ["a", "sw"], "type": "roce_400g"}])
    assert c.graph.has_edge("a/nic3", "b/nic3") and not c.graph.has_edge("a/nic3", "b/nic4")
    assert all(c.graph.has_edge(f"a/nic{i}", "sw") for i in range(8))


def _llama70b(place=None, tp=8, **extra):
    client = {"name": "m", "stage": {"type": "llm_serving", "model": "llama-3.1-70b", "parallelism": {"tp": tp}}}
    if place:
        client["place"] = place
    else:
        client["device"] = {"type": "gpu", "preset": "h100_sxm"}
    return {"name": "x", "workload": {"type": "closed_loop", "concurrency": 4, "num_requests": 12, "isl": 2000, "osl": 20},
            "clients": [client], **extra}


def test_a_client_placed_on_one_server_prices_as_an_unplaced_one():
    placed = run(_llama70b("s", cluster={"nodes": [{"name": "s", "type": "hgx_h100"}]})).summary
    alone = run(_llama70b()).summary
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "itl_ms"):
        assert placed[key] == alone[key]
    assert [d["device"] for d in placed["utilisation"]] == [f"s/gpu{i}" for i in range(8)]


def test_tp16_across_two_servers_is_priced_over_their_nics():
    from hermes_core.topology import Topology

    c = _cluster([{"name": "pod", "type": "pod", "servers": 2}])
    members = c.devices("pod")
    bw, lat = c.ring_allreduce_params(members)
    # the ring's slowest neighbour path crosses the servers: GPU -> PCIe -> NIC (50 GB/s) -> leaf
    assert bw == 50e9
    # ... and pays 6 link latencies: GPU-PCIe, PCIe-NIC, NIC-leaf, leaf-NIC, NIC-PCIe, PCIe-GPU, 0.5 us each
    assert lat == pytest.approx(6 * 0.5e-6)
    box = Topology.single_switch([f"g{i}" for i in range(16)], 450e9, 0.0)
    nbytes = 64 * 2**20
    assert c.allreduce_time(members, nbytes) > 5 * box.allreduce_time([f"g{i}" for i in range(16)], nbytes)
    pod = run(_llama70b("pod", tp=16, cluster={"nodes": [{"name": "pod", "type": "pod", "servers": 2}]})).summary
    box16 = run(_llama70b(tp=16)).summary
    assert pod["ttft_ms"]["p50"] > box16["ttft_ms"]["p50"]


def _pd(cluster, pre_place, dec_place):
    return {"name": "pd", "workload": {"type": "closed_loop", "concurrency": 1, "num_requests": 3, "isl": 1000,
                                       "osl": 4, "request_type": "pd"},
            "cluster": cluster,
            "clients": [{"name": "pre", "place": pre_place,
                         "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": "prefill"}},
                        {"name": "dec", "place": dec_place,
                         "stage": {"type": "llm_serving", "model": "llama-3.1-8b", "role": "decode"}}],
            "request_types": {"pd": ["pre", "dec"]}}


def test_kv_moves_between_servers_and_the_links_report_its_bytes():
    cluster = {"nodes": [{"name": "a", "type": "hgx_h100"}, {"name": "b", "type": "hgx_h100"},
                         {"name": "leaf", "type": "switch"}],
               "links": [{"between": ["a", "leaf"], "type": "ib_ndr"}, {"between": ["b", "leaf"], "type": "ib_ndr"}]}
    s = run(_pd(cluster, "a", "b")).summary
    nbytes = KV_PER_TOKEN_8B * 1000
    links = {r["link"]: r for r in s["transfers"]["links"]}
    # TP1 to TP1: one flow a/gpu0 -> a/pcie0 -> a/nic0 -> leaf -> b/nic0 -> b/pcie0 -> b/gpu0, 3 requests
    for link in ("a/gpu0->a/pcie0", "a/nic0->leaf", "leaf->b/nic0", "b/pcie0->b/gpu0"):
        assert links[link]["bytes"] == pytest.approx(3 * nbytes)
    assert s["transfers"]["transfers"] == 3 and s["transfers"]["flows"] == 3
    step = s["request_types"]["pd"]["steps"][1]
    # 6 links x 0.5 us (GPU-PCIe, PCIe-NIC, NIC-leaf twice, NIC-PCIe, PCIe-GPU) + the bytes at the
    # 50 GB/s NIC bottleneck
    assert step["transfer_ms"]["mean"] == pytest.approx((6 * 0.5e-6 + nbytes / 50e9) * 1e3)


BAD = [
    (lambda sc: sc["clients"][0].update(place="nowhere"), "clients[0].place: no cluster node or group 'nowhere'"),
    (lambda sc: sc["clients"][0].update(place="leaf"), "clients[0].place: ['leaf'] holds no devices"),
    (lambda sc: sc["clients"][0].update(place="a/gpu0") or sc["clients"][1].update(place="a/gpu0"),
     "clients[1].place (replica 0): device 'a/gpu0' is already placed for client 'pre'; two clients cannot share devices"),
    (lambda sc: sc["clients"][0]["stage"].update(parallelism={"tp": 16}),
     "clients[0].place (replica 0): needs 16 free"),
    (lambda sc: sc["cluster"]["links"].append({"between": ["a", "leaf"], "bandwidth_GBps": 0}),
     "cluster.links[2].bandwidth_GBps: Input should be greater than 0"),
    (lambda sc: sc["cluster"]["links"].append({"between": ["a", "ghost"], "type": "ib_ndr"}),
     "cluster.links[2].between[1]: no cluster node or group 'ghost'"),
    (lambda sc: sc["cluster"]["links"].append({"between": ["a", "leaf"], "type": "ib_ndr", "bandwidth_GBps": -1}),
     "cluster.links[2].bandwidth_GBps"),
    (lambda sc: sc["cluster"]["nodes"].append({"name": "a", "kind": "switch"}), "node names must be unique"),
    (lambda sc: sc["cluster"]["nodes"].append({"name": "z", "type": "hgx_h999"}),
     "cluster.nodes[3].type: unknown cluster node type 'hgx_h999'"),
    (lambda sc: sc.pop("cluster"), "clients[0].place: the scenario has no 'cluster' section"),
]


@pytest.mark.parametrize("patch, message", BAD)
def test_bad_cluster_input_names_the_yaml_path(patch, message):
    cluster = {"nodes": [{"name": "a", "type": "hgx_h100"}, {"name": "b", "type": "hgx_h100"},
                         {"name": "leaf", "type": "switch"}],
               "links": [{"between": ["a", "leaf"], "type": "ib_ndr"}, {"between": ["b", "leaf"], "type": "ib_ndr"}]}
    sc = _pd(cluster, "a", "b")
    patch(sc)
    with pytest.raises(ConfigError) as err:
        run(sc)
    assert message in str(err.value)
