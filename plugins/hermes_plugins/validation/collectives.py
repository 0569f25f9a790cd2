"""``hermes validate collectives``: all-reduce and send/recv times, predicted by hermes's
interconnect model versus measured.

Format ``vidur-allreduce``: the collective profiles of microsoft/vidur
(``data/profiling/network/<system>/{all_reduce,send_recv}.csv``). One row per (message
``size`` in bytes, ``num_workers``, ``devices_per_node``); ``collective`` is ``all_reduce``
or ``send_recv`` and the time is ``time_stats.<collective>.{min,max,mean,median,std}`` in ms
(GPU time of the NCCL kernel, median of 11 back-to-back launches, fp16 buffers). The
measured value compared is the median.

Prediction: the topology preset is one server of identical GPUs behind one switch
(:meth:`hermes_core.Topology.single_switch`) with the gpu device's link figures
(``link_bandwidth``, which is the datasheet per-direction NVLink bandwidth times the fitted
``link_bandwidth_efficiency``, and ``link_latency``); an all-reduce over ``num_workers``
GPUs is :meth:`~hermes_core.Topology.allreduce_time` and a send/recv
:meth:`~hermes_core.Topology.p2p_time`, both with the device's ``collective_latency``.

Rows hermes cannot model are counted and listed with the reason, never dropped: a group of
workers spread over several nodes (``num_workers > devices_per_node``; a single-switch
topology is one node), more workers than the topology has GPUs, fewer than two workers, and
other collectives.

Device check: as for ``hermes validate ops``, the GPU family (a ``device`` column, or the
file's path such as ``a100_dgx_all_reduce.csv``) must match the topology's GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hermes_core import ConfigError, HardwareNode, Topology, WorkloadError

from .ops import _int, _measured_ms, _print_unsupported, build_device, check_device, compared, make_console, read_csv
from .report import ape_summary, print_summary, write_rows

FORMATS = ("vidur-allreduce",)
REQUIRED = ("num_workers", "size", "collective", "devices_per_node")
COLLECTIVES = ("all_reduce", "send_recv")


@dataclass(frozen=True)
class TopologyPreset:
    """One server: ``gpus`` devices of the gpu ``preset`` behind one switch."""

    name: str
    preset: str
    gpus: int
    description: str


TOPOLOGIES: dict[str, TopologyPreset] = {
    t.name: t for t in (
        TopologyPreset("dgx_a100", "a100_sxm_80gb", 8,
                       "NVIDIA DGX A100: 8x A100 SXM4 80GB, NVLink 3 through NVSwitch, 300 GB/s per direction per GPU"),
        TopologyPreset("dgx_h100", "h100_sxm", 8,
                       "NVIDIA DGX H100: 8x H100 SXM5 80GB, NVLink 4 through NVSwitch, 450 GB/s per direction per GPU"),
        TopologyPreset("hgx_h200", "h200_sxm", 8,
                       "NVIDIA HGX H200: 8x H200 SXM 141GB, NVLink 4 through NVSwitch, 450 GB/s per direction per GPU"),
        TopologyPreset("hgx_b200", "b200", 8,
                       "NVIDIA HGX B200: 8x B200, NVLink 5 through NVSwitch, 900 GB/s per direction per GPU"),
    )
}

#: Message-size buckets (bytes, upper bound exclusive) for the summary.
SIZE_BUCKETS = ((64 * 2**10, "< 64 KiB"), (2**20, "64 KiB - 1 MiB"), (16 * 2**20, "1 - 16 MiB"),
                (float("inf"), ">= 16 MiB"))


def size_bucket(nbytes: float) -> str:
    """The summary bucket of a message of ``nbytes`` bytes."""
    return next(label for hi, label in SIZE_BUCKETS if nbytes < hi)


def _topology_for(path: Path, header, rows) -> str | None:
    """The preset whose GPU family the file names (path or ``device`` column), if one."""
    from .ops import _families_in, known_families

    texts = [r.get("device") or "" for r in rows[:1]] if "device" in header else []
    texts += [Path(p).stem for p in reversed(path.resolve().parts[-4:])]
    fams = known_families()
    for text in texts:
        found = _families_in(text)
        if found:
            preset = fams[found[-1]]
            return next((t.name for t in TOPOLOGIES.values() if t.preset == preset), None)
    return None


def check_header(path: Path, header) -> None:
    """Raise :class:`WorkloadError` naming the file and the first missing column."""
    missing = [c for c in REQUIRED if c not in header]
    if len(missing) == len(REQUIRED):
        raise WorkloadError(
            f"{path}: not in vidur-allreduce format: no columns {', '.join(REQUIRED)} (expected Vidur's "
            "profiling/network/<system>/all_reduce.csv or send_recv.csv)")
    if missing:
        raise WorkloadError(f"{path}: missing column '{missing[0]}' (vidur-allreduce format needs "
                            f"{', '.join(REQUIRED)} and time_stats.<collective>.median)")
    if not any(c.startswith("time_stats.") and c.endswith(".median") for c in header):
        raise WorkloadError(f"{path}: missing column 'time_stats.<collective>.median' "
                            f"(vidur-allreduce format; e.g. time_stats.all_reduce.median)")


def validate_vidur_collectives(path: Path, topo_name: str, device: HardwareNode, gpus: int,
                               check: bool = True) -> list[dict[str, Any]]:
    """Per-row dicts: measured median and predicted time (ms), or ``predicted_ms = None``
    with a ``reason`` (a row with a cell hermes cannot read too, ``file:line: column ...``;
    the rest of the file is used)."""
    header, rows = read_csv(path)
    check_header(path, header)
    if not rows:
        raise WorkloadError(f"{path}: no data rows")
    if check:
        check_device(path, header, rows, device)
    names = [f"gpu{i}" for i in range(gpus)]
    topo = Topology.single_switch(names, device.link_bandwidth, device.link_latency)
    out = []
    for line, r in enumerate(rows, start=2):
        coll = (r.get("collective") or "").strip()
        col = f"time_stats.{coll}.median"
        try:
            n = _int(path, line, r, "num_workers")
            per_node = _int(path, line, r, "devices_per_node")
            nbytes = _int(path, line, r, "size")
            if coll in COLLECTIVES and col not in header:
                raise WorkloadError(f"{path}:{line}: missing column '{col}' for collective '{coll}'")
            meas = _measured_ms(path, line, r, col) if col in header else None
        except WorkloadError as exc:  # a row with a cell it cannot read is listed, the file still used
            out.append({"file": path.name, "line": line, "topology": topo_name, "collective": coll,
                        "num_workers": None, "devices_per_node": None, "nodes": None, "size_bytes": None,
                        "size_bucket": None, "measured_ms": None, "predicted_ms": None, "ape_pct": None,
                        "reason": str(exc)})
            continue
        row = {"file": path.name, "line": line, "topology": topo_name, "collective": coll, "num_workers": n,
               "devices_per_node": per_node, "nodes": -(-n // per_node) if per_node else None, "size_bytes": nbytes,
               "size_bucket": size_bucket(nbytes), "measured_ms": meas, "predicted_ms": None, "ape_pct": None,
               "reason": ""}
        if coll not in COLLECTIVES:
            row["reason"] = f"collective '{coll}' is not modelled (hermes models all_reduce and send_recv)"
        elif per_node < 1:
            row["reason"] = "devices_per_node < 1"
        elif n > per_node:
            row["reason"] = (f"spans {row['nodes']} nodes (num_workers={n}, devices_per_node={per_node}): "
                             "a single-switch topology is one node")
        elif n > gpus:
            row["reason"] = f"num_workers={n} exceeds the {gpus} GPUs of {topo_name}"
        elif n < 2:
            row["reason"] = "fewer than 2 workers"
        elif meas is None or meas <= 0:
            row["reason"] = "no measured median"
        else:
            if coll == "all_reduce":
                t = topo.allreduce_time(names[:n], float(nbytes), device.collective_latency,
                                        device.allreduce_algorithms)
            else:
                t = topo.p2p_time(names[0], names[1], float(nbytes), device.collective_latency)
            row["predicted_ms"] = float(t) * 1e3
            row["ape_pct"] = abs(row["predicted_ms"] - meas) / meas * 100.0
        out.append(row)
    return out


@click.command("collectives")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Format of FILE.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--topology", "topology", type=click.Choice(sorted(TOPOLOGIES)), default=None,
              help="Single-node topology preset; by default the one whose GPU the file names "
                   "(a100 -> dgx_a100, h100 -> dgx_h100, h200 -> hgx_h200).")
@click.option("--device", "device_spec", default=None, metavar="DEVICE",
              help="Device for the links instead of the topology's GPU preset: a gpu preset or a device YAML "
                   "(e.g. with fitted link_bandwidth_efficiency and collective_latency_us).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("validate-collectives.csv"), show_default=True, help="Per-row CSV (every row, including those not simulated and why).")
@click.option("--no-device-check", is_flag=True,
              help="Compare even when the file was measured on another GPU family than the topology's.")
def collectives_command(fmt: str, files: tuple[Path, ...], topology: str | None, device_spec: str | None,
                        output: Path, no_device_check: bool) -> None:
    """Compare measured collective times of FILE(s) with hermes's topology model.

    Prints median / mean / p90 absolute percentage error per collective, worker count and
    message-size bucket, lists the rows it cannot model and why, and writes every row to
    --output."""
    console = make_console()
    all_rows: list[dict[str, Any]] = []
    for path in files:
        name = topology
        if name is None:
            header, rows = read_csv(path)
            name = _topology_for(path, header, rows)
            if name is None:
                raise ConfigError(f"{path}: cannot tell which GPU it was measured on; pass --topology "
                                  f"({', '.join(sorted(TOPOLOGIES))})")
        preset = TOPOLOGIES[name]
        device = build_device(device_spec or preset.preset)
        rows = validate_vidur_collectives(path, name, device, preset.gpus, check=not no_device_check)
        all_rows += rows
        unsupported = [(f"{r['file']}:{r['line']}", r["reason"]) for r in rows if r["predicted_ms"] is None]
        algos = getattr(device, "allreduce_algorithms", None)
        extra = ("; all-reduce algorithms: " + ", ".join(
            f"{a} {share * device.link_bandwidth / 1e9:.0f} GB/s + {lat * 1e6:.2f} us" for a, (share, lat) in algos.items())
            if algos else "")
        console.print(f"[bold]{path.name}[/] on {name} ({preset.description}); links: "
                      f"{device.link_bandwidth / 1e9:.0f} GB/s per direction, "
                      f"{device.link_latency * 1e6:.2f} us per hop, "
                      f"{device.collective_latency * 1e6:.2f} us per collective{extra}", highlight=False)
        print_summary(console, f"{path.name}: predicted vs measured time (median, ms)",
                      ape_summary(compared(rows), ["collective", "num_workers", "size_bucket"]), unsupported)
        _print_unsupported(console, rows)
    write_rows(output, all_rows)
    console.print(f"wrote {len(all_rows)} rows to {output}")
