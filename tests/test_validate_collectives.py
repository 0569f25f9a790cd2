"""``hermes validate collectives --format vidur-allreduce``: predictions checked by hand,
the accounting of rows a single-switch topology cannot model, bad input, and CLI runs on
real Vidur samples (``tests/data/vidur/network``, microsoft/vidur @ 7d47513, MIT) and on a
hand-made file."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hermes_core import ConfigError, WorkloadError
from hermes_plugins.validation.collectives import collectives_command, size_bucket, validate_vidur_collectives
from hermes_plugins.validation.ops import build_device

DATA = Path(__file__).parent / "data" / "vidur"
ALL_REDUCE = DATA / "network" / "a100_dgx_all_reduce.csv"
SEND_RECV = DATA / "network" / "a100_dgx_send_recv.csv"


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def links_yaml(tmp_path) -> Path:
    """A100 with round link figures: 300 GB/s * 0.5, 1 us per hop, 10 us per collective."""
    p = tmp_path / "a100_links.yaml"
    p.write_text("type: gpu\npreset: a100_sxm_80gb\nlink_bandwidth_efficiency: 0.5\nlink_latency_us: 1.0\n"
                 "collective_latency_us: 10.0\n")
    return p


def run(*args):
    return CliRunner().invoke(collectives_command, list(map(str, args)), catch_exceptions=False)


def test_rows_by_hand(links_yaml):
    rows = validate_vidur_collectives(ALL_REDUCE, "dgx_a100", build_device(str(links_yaml)), 8)
    bw, path_lat, coll = 150e9, 2e-6, 10e-6  # device -> switch -> device: two hops
    r = next(r for r in rows if r["num_workers"] == 4 and r["devices_per_node"] == 4 and r["size_bytes"] == 6684672)
    expected = 2 * 3 / 4 * 6684672 / bw + path_lat + coll  # ring bandwidth term, latency paid once
    assert r["predicted_ms"] == pytest.approx(expected * 1e3, rel=1e-12)
    assert r["size_bucket"] == "1 - 16 MiB" and r["nodes"] == 1
    sr = validate_vidur_collectives(SEND_RECV, "dgx_a100", build_device(str(links_yaml)), 8)
    p2p = next(r for r in sr if r["devices_per_node"] == 2 and r["size_bytes"] == 67108864)
    assert p2p["predicted_ms"] == pytest.approx((67108864 / bw + path_lat + coll) * 1e3, rel=1e-12)
    assert p2p["measured_ms"] == float(next(
        x for x in read(SEND_RECV) if x["devices_per_node"] == "2" and x["size"] == "67108864")["time_stats.send_recv.median"])


def test_multi_node_rows_are_counted_with_the_reason(links_yaml, tmp_path):
    out = tmp_path / "c.csv"
    res = run("--format", "vidur-allreduce", ALL_REDUCE, "--device", links_yaml, "-o", out)
    assert res.exit_code == 0, res.output
    rows = read(out)
    raw = read(ALL_REDUCE)
    assert len(rows) == len(raw) == 28
    multi = [r for r in raw if int(r["num_workers"]) > int(r["devices_per_node"])]
    skipped = [r for r in rows if r["predicted_ms"] == ""]
    assert len(skipped) == len(multi) == 16  # (2,1), (4,2), (8,4), (16,8) x 4 sizes
    assert {r["reason"] for r in skipped} == {
        f"spans 2 nodes (num_workers={n}, devices_per_node={n // 2}): a single-switch topology is one node"
        for n in (2, 4, 8, 16)}
    assert f"{len(multi)} rows not simulated" in res.output
    assert "a100_dgx_all_reduce.csv: 4 (lines 2-5): spans 2 nodes (num_workers=2, devices_per_node=1)" in res.output
    done = [r for r in rows if r["predicted_ms"]]
    assert sorted({int(r["num_workers"]) for r in done}) == [2, 4, 8]


def test_hand_made_file(tmp_path):
    """A file of the same format the project has never seen: H200 rows, other sizes, a
    collective hermes does not model, too many workers for one server."""
    p = tmp_path / "h200_collectives.csv"
    header = ["time_stats.all_reduce.median", "time_stats.all_gather.median", "num_workers", "size", "collective",
              "devices_per_node"]
    rows = [[0.012, "", 2, 4096, "all_reduce", 2], [0.030, "", 8, 2**22, "all_reduce", 8],
            [0.25, "", 8, 2**26, "all_reduce", 8], ["", 0.02, 4, 2**20, "all_gather", 4],
            [0.4, "", 16, 2**26, "all_reduce", 16]]
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    out = tmp_path / "o.csv"
    res = run("--format", "vidur-allreduce", p, "-o", out)  # topology from the name: hgx_h200
    assert res.exit_code == 0, res.output
    assert "on hgx_h200" in res.output
    got = read(out)
    assert [g["reason"] for g in got] == [
        "", "", "", "collective 'all_gather' is not modelled (hermes models all_reduce and send_recv)",
        "num_workers=16 exceeds the 8 GPUs of hgx_h200"]
    assert all(float(g["predicted_ms"]) > 0 for g in got[:3])


def test_size_buckets():
    assert [size_bucket(b) for b in (2048, 65536, 2**20, 2**24)] == ["< 64 KiB", "64 KiB - 1 MiB", "1 - 16 MiB", ">= 16 MiB"]


def test_wrong_format_and_missing_column(tmp_path):
    mlp = DATA / "a100" / "meta-llama_Meta-Llama-3-8B_mlp.csv"
    with pytest.raises(WorkloadError, match=r"meta-llama_Meta-Llama-3-8B_mlp\.csv: not in vidur-allreduce format"):
        validate_vidur_collectives(mlp, "dgx_a100", build_device("a100"), 8)
    raw = read(ALL_REDUCE)
    bad = tmp_path / "a100_cut.csv"
    cols = [c for c in raw[0] if c != "devices_per_node"]
    with open(bad, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(raw)
    with pytest.raises(WorkloadError, match=r"a100_cut\.csv: missing column 'devices_per_node'"):
        validate_vidur_collectives(bad, "dgx_a100", build_device("a100"), 8)


def test_topology_of_another_gpu_is_an_error(tmp_path):
    res = CliRunner().invoke(collectives_command, ["--format", "vidur-allreduce", str(ALL_REDUCE),
                                                   "--topology", "dgx_h100", "-o", str(tmp_path / "x.csv")])
    assert isinstance(res.exception, WorkloadError)
    assert "a100_dgx_all_reduce.csv: measured on a100" in str(res.exception)


def test_unknown_gpu_needs_a_topology(tmp_path):
    p = tmp_path / "cluster.csv"
    p.write_text(ALL_REDUCE.read_text())
    res = CliRunner().invoke(collectives_command, ["--format", "vidur-allreduce", str(p)])
    assert isinstance(res.exception, ConfigError)
    assert "cluster.csv: cannot tell which GPU it was measured on; pass --topology" in str(res.exception)


def test_cli_on_real_samples(tmp_path):
    out = tmp_path / "coll.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "hermes_core.cli", "validate", "collectives", "--format", "vidur-allreduce",
         str(ALL_REDUCE), str(SEND_RECV), "--topology", "dgx_a100", "--output", str(out)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("all_reduce", "send_recv", "num_workers", "size_bucket", "median APE %", "overall",
                 "rows not simulated", "wrote 36 rows"):
        assert word in proc.stdout
    rows = read(out)
    assert len(rows) == 36 and sum(1 for r in rows if r["predicted_ms"]) == 12 + 4


def test_a_row_with_a_bad_cell_is_listed_and_the_rest_used(tmp_path):
    p = tmp_path / "h200_collectives.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_stats.all_reduce.median", "num_workers", "size", "collective", "devices_per_node"])
        w.writerows([[0.012, 2, 4096, "all_reduce", 2], [0.03, "eight", 2**22, "all_reduce", 8],
                     [0.25, 8, 2**26, "all_reduce", 8]])
    out = tmp_path / "o.csv"
    res = run("--format", "vidur-allreduce", p, "-o", out)
    assert res.exit_code == 0, res.output
    got = read(out)
    assert got[1]["reason"] == f"{p}:3: column 'num_workers': not a number (got 'eight')"
    assert got[1]["predicted_ms"] == "" and float(got[0]["predicted_ms"]) > 0 and float(got[2]["predicted_ms"]) > 0
