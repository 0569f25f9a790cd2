"""First-party workloads: trace replay, synthetic open-loop arrivals and a closed-loop client.

Registered components (``workload: {type: <name>, ...}`` in a scenario):

* ``azure_trace``: replay the Azure LLM inference trace 2023 (CSV), from a file or from the
  copies shipped with this package (``dataset: azure_conv_2023`` / ``azure_code_2023``).
* ``mooncake_trace``: replay a Mooncake trace (JSONL, with prefix ``hash_ids``).
* ``synthetic``: Poisson or gamma arrivals with fixed, uniform or lognormal lengths.
* ``closed_loop``: ``concurrency`` clients that each send the next request as soon as the
  previous one finishes (vLLM ``benchmark_serving --max-concurrency``, aiconfigurator).

Every workload keeps at most one arrival event pending on the simulator: the arrival callback
schedules the next one, so the event heap stays small however long the trace. Request ids are
``0 .. N-1`` in arrival order. Arrival times are relative to the simulated time at which
:meth:`~hermes_core.Workload.start` is called (0 in a normal run).

Trace files are read and checked completely when the workload is built, so a bad file fails
before the simulation starts, with one :class:`~hermes_core.WorkloadError` naming the file,
line and column.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hermes_core import Request, Simulator, Workload, WorkloadError, hookimpl
from hermes_core.engine import PRIORITY_ARRIVAL

__all__ = [
    "AzureTrace",
    "ClosedLoop",
    "LengthDist",
    "MooncakeTrace",
    "SyntheticWorkload",
    "hermes_register_workloads",
    "load_azure_csv",
    "load_azure_request_types",
    "load_mooncake_jsonl",
    "load_mooncake_request_types",
]

#: Folder of the data files shipped with the package (see ``data/SOURCES.md``).
DATA_DIR = Path(__file__).resolve().parent / "data"

#: ``azure_trace`` ``dataset`` names and their files in :data:`DATA_DIR`.
AZURE_DATASETS: dict[str, str] = {
    "azure_conv_2023": "azure_llm_trace_2023_conv.csv",
    "azure_code_2023": "azure_llm_trace_2023_code.csv",
}

#: Columns an Azure LLM inference trace CSV must have (others are ignored).
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

#: Synthetic workloads refuse to generate more requests than this (a typo guard: the arrays
#: are generated up front, ~20 bytes per request).
MAX_SYNTHETIC_REQUESTS = 10_000_000

_FINITE = {"allow_inf_nan": False}
#: Largest sequence length a workload may ask for (tokens): 10 million, beyond every model's
#: context window (the longest, Llama 4 Scout's, is 10M), so a typo such as 1e11 is refused
#: instead of building arrays until memory runs out.
MAX_TOKENS = 10_000_000


# ---------------------------------------------------------------------------------------
# Length distributions
# ---------------------------------------------------------------------------------------
#: Fields each LengthDist family requires, and those it accepts.
_DIST_NEEDS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "lognormal": ("mean", "sigma"),
}
_DIST_ALLOWED: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "lognormal": ("mean", "sigma", "min", "max"),
}


class LengthDist(BaseModel):
    """A distribution of sequence lengths in tokens (prompt or output).

    * ``{dist: fixed, value: N}``: always ``N`` tokens.
    * ``{dist: uniform, low: A, high: B}``: integers ``A..B``, both inclusive, equally likely.
    * ``{dist: lognormal, mean: M, sigma: S, min: 1, max: null}``: lengths whose mean is ``M``
      tokens; ``S`` is the standard deviation of the underlying normal (so
      ``mu = ln(M) - S**2 / 2``). Samples are rounded to the nearest integer and clipped to
      ``[min, max]``, which moves the mean slightly when the clip bites.

    Where a workload takes a ``LengthDist`` a plain integer ``N`` means ``{dist: fixed,
    value: N}``. Invalid combinations raise a pydantic ``ValidationError`` (the registry turns
    it into a :class:`~hermes_core.ConfigError` naming the field).
    """

    model_config = ConfigDict(extra="forbid")

    dist: Literal["fixed", "uniform", "lognormal"] = Field(
        description="Distribution family: fixed, uniform or lognormal."
    )
    value: int | None = Field(None, ge=1, le=MAX_TOKENS, description="fixed: the length (tokens, >= 1).")
    low: int | None = Field(None, ge=1, le=MAX_TOKENS, description="uniform: smallest length (tokens, >= 1, inclusive).")
    high: int | None = Field(None, ge=1, le=MAX_TOKENS, description="uniform: largest length (tokens, inclusive, >= low).")
    mean: float | None = Field(None, gt=0, le=MAX_TOKENS, **_FINITE, description="lognormal: mean length (tokens, > 0).")
    sigma: float | None = Field(
        None, ge=0, le=10, **_FINITE, description="lognormal: standard deviation of the underlying normal (0 to 10)."
    )
    min: int = Field(1, ge=1, le=MAX_TOKENS, description="lognormal: clip samples below this (tokens, default 1).")
    max: int | None = Field(None, ge=1, le=MAX_TOKENS,
                            description="lognormal: clip samples above this (tokens, default MAX_TOKENS).")

    @model_validator(mode="after")
    def _check_fields(self) -> LengthDist:
        needs = _DIST_NEEDS[self.dist]
        allowed = _DIST_ALLOWED[self.dist]
        missing = [f for f in needs if getattr(self, f) is None]
        if missing:
            raise ValueError(f"dist '{self.dist}' needs {' and '.join(repr(m) for m in missing)}")
        extra = sorted(f for f in self.model_fields_set if f != "dist" and f not in allowed)
        if extra:
            raise ValueError(
                f"{', '.join(repr(e) for e in extra)} does not apply to dist '{self.dist}' "
                f"(it takes {', '.join(allowed)})"
            )
        if self.dist == "uniform" and self.low > self.high:
            raise ValueError(f"uniform: low must be <= high (got low={self.low}, high={self.high})")
        if self.max is not None and self.min > self.max:
            raise ValueError(f"lognormal: min must be <= max (got min={self.min}, max={self.max})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (tokens, int64, each >= 1) drawn from ``rng``."""
        if self.dist == "fixed":
            return np.full(n, self.value, dtype=np.int64)
        if self.dist == "uniform":
            return rng.integers(self.low, self.high, size=n, endpoint=True, dtype=np.int64)
        mu = math.log(self.mean) - 0.5 * self.sigma**2
        x = np.rint(rng.lognormal(mu, self.sigma, size=n))
        hi = MAX_TOKENS if self.max is None else self.max
        return np.clip(x, self.min, hi).astype(np.int64)


def _length_shorthand(v: Any) -> Any:
    """Pydantic ``before`` validator: an int ``N`` means ``{dist: fixed, value: N}``."""
    if isinstance(v, int) and not isinstance(v, bool):
        return {"dist": "fixed", "value": v}
    if isinstance(v, (dict, LengthDist)):
        return v
    # pydantic appends the offending value ("(got 2.5)") when it reports the error.
    raise ValueError("expected a token count (int) or a mapping like {dist: lognormal, mean: 1024, sigma: 0.5}")


def _child_rngs(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``rng`` (one per random stream), so that e.g.
    changing the output-length distribution does not move the arrival times."""
    seeds = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


# ---------------------------------------------------------------------------------------
# Trace readers
# ---------------------------------------------------------------------------------------
def _is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (int or float)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nonneg_int(text: str) -> int | None:
    """``int(text)`` if ``text`` is a non-negative integer, else None."""
    try:
        v = int(text)
    except ValueError:
        return None
    return v if v >= 0 else None


def _read_cached(loader: Callable[..., Any], path: str | Path, display: str | None, *extra: Any) -> Any:
    """Call a cached loader keyed by path, modification time, size and ``extra`` (e.g. the
    request-type column); turn I/O and decoding errors into :class:`~hermes_core.WorkloadError`."""
    name = display or str(path)
    try:
        st = Path(path).stat()
        return loader(str(path), st.st_mtime_ns, st.st_size, name, *extra)
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{name}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise WorkloadError(f"{name}: cannot read the file: {exc.strerror or exc}") from None


def load_azure_csv(path: str | Path, display: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an Azure LLM inference trace 2023 CSV.

    Returns ``(times_s, prompt_tokens, output_tokens)``: float64 seconds since the first row,
    and int64 token counts, one entry per row, as read-only numpy arrays. The file needs the
    columns ``TIMESTAMP`` (``2023-11-16 18:15:46.6805900``; any ISO-8601 form numpy reads),
    ``ContextTokens`` and ``GeneratedTokens`` in any order; other columns are ignored; blank
    lines are skipped.

    Raises :class:`~hermes_core.WorkloadError` as ``<display>:<line>: column <name>: ...``
    for an empty file, a missing column, a row with the wrong number of fields, a token count
    that is not a non-negative integer, a zero prompt or output, an unreadable timestamp, or a
    timestamp earlier than the row before it (the trace must be sorted; hermes does not sort
    it for you), and for a file that cannot be read or is not UTF-8. ``display`` is the name
    used in messages (default: ``path``). Parsed files are cached by path, size and
    modification time.
    """
    return _read_cached(_load_azure_cached, path, display, None)[:3]


def load_azure_request_types(path: str | Path, column: str, display: str | None = None) -> tuple[str, ...]:
    """The value of CSV column ``column`` in each row of an Azure trace (what
    :func:`load_azure_csv` reads, same rows, same order), stripped of surrounding blanks.

    Raises :class:`~hermes_core.WorkloadError` for everything :func:`load_azure_csv` does,
    and as ``<display>:<header line>: no column '<column>' ...`` listing the file's columns,
    or ``<display>:<line>: column <column>: empty ...`` for an empty value. Cached with the
    trace, keyed by the column too."""
    return _read_cached(_load_azure_cached, path, display, column)[3]


AzureData = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...] | None]


@functools.lru_cache(maxsize=8)
def _load_azure_cached(path: str, _mtime_ns: int, _size: int, name: str, type_column: str | None) -> AzureData:
    """The parsed trace; with ``type_column``, also that column's value per row (interned:
    one string object per distinct value)."""
    expected = ", ".join(AZURE_COLUMNS)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        for row in reader:
            if any(cell.strip() for cell in row):
                header = [cell.strip() for cell in row]
                break
        if header is None:
            raise WorkloadError(f"{name}: file is empty; expected a CSV header with columns {expected}")
        header_line = reader.line_num
        missing = [c for c in AZURE_COLUMNS if c not in header]
        if missing:
            raise WorkloadError(
                f"{name}:{header_line}: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; an Azure LLM trace needs columns {expected} "
                f"(found: {', '.join(header)})"
            )
        i_ts, i_in, i_out = (header.index(c) for c in AZURE_COLUMNS)
        i_type = -1
        types: list[str] = []
        distinct: dict[str, str] = {}
        if type_column is not None:
            if type_column not in header:
                raise WorkloadError(
                    f"{name}:{header_line}: no column '{type_column}' (request_type_field); "
                    f"found: {', '.join(header)}"
                )
            i_type = header.index(type_column)
        width = len(header)
        stamps: list[str] = []
        prompts: list[int] = []
        outputs: list[int] = []
        lines: list[int] = []
        for row in reader:
            if len(row) != width:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                raise WorkloadError(
                    f"{name}:{reader.line_num}: expected {width} comma-separated fields "
                    f"({', '.join(header)}), got {len(row)}"
                )
            line = reader.line_num
            p = _nonneg_int(row[i_in])
            o = _nonneg_int(row[i_out])
            if p is None or p == 0:
                where = f"{name}:{line}: column ContextTokens"
                if p is None:
                    raise WorkloadError(f"{where}: expected a non-negative integer, got {row[i_in]!r}")
                raise WorkloadError(f"{where}: prompt must be >= 1 token, got 0")
            for col, v in (("ContextTokens", p), ("GeneratedTokens", o)):
                if v is not None and v > MAX_TOKENS:
                    raise WorkloadError(f"{name}:{line}: column {col}: {v} tokens is more than {MAX_TOKENS:,} "
                                        "(beyond every model's context window)")
            if o is None or o == 0:
                where = f"{name}:{line}: column GeneratedTokens"
                if o is None:
                    raise WorkloadError(f"{where}: expected a non-negative integer, got {row[i_out]!r}")
                raise WorkloadError(
                    f"{where}: output must be >= 1 token (a request generates at least one token), got 0"
                )
            if i_type >= 0:
                value = row[i_type].strip()
                if not value:
                    raise WorkloadError(
                        f"{name}:{line}: column {type_column}: empty value; request_type_field needs "
                        "a request type name on every row"
                    )
                types.append(distinct.setdefault(value, value))
            stamps.append(row[i_ts])
            prompts.append(p)
            outputs.append(o)
            lines.append(line)
    if not stamps:
        raise WorkloadError(f"{name}: no requests after the header on line {header_line}")

    def bad_stamp(k: int) -> WorkloadError:
        return WorkloadError(
            f"{name}:{lines[k]}: column TIMESTAMP: expected a date and time like "
            f"'2023-11-16 18:15:46.6805900', got {stamps[k]!r}"
        )

    # numpy reads a bare number as a year ('12' is the year 12): a trace in seconds would
    # silently become years apart, so a stamp must be a date
    for k, st in enumerate(stamps):
        if "-" not in st and _is_number(st):
            raise WorkloadError(
                f"{name}:{lines[k]}: column TIMESTAMP: {st!r} is not a date; the Azure LLM trace format "
                "has UTC dates and times like '2023-11-16 18:15:46.6805900' (for arrivals in seconds, "
                "write a synthetic workload or convert the column to dates)")
    # a UTC offset of zero ('+00:00', 'Z') is dropped: numpy warns on time zones
    if any(st.endswith(("+00:00", "Z")) for st in stamps):
        stamps = [st[:-6] if st.endswith("+00:00") else st[:-1] if st.endswith("Z") else st for st in stamps]
    try:
        ts = np.array(stamps, dtype="datetime64[ns]")
    except (ValueError, OverflowError):
        for k, s in enumerate(stamps):
            try:
                np.datetime64(s, "ns")
            except (ValueError, OverflowError):
                raise bad_stamp(k) from None
        raise  # pragma: no cover - numpy rejected the column but no single value
    nat = np.flatnonzero(np.isnat(ts))
    if nat.size:
        raise bad_stamp(int(nat[0]))
    # nanosecond datetimes hold 1678-2262 only, and numpy wraps a date outside silently
    # ('9999-11-16' becomes 1816): check each stamp's year at microsecond resolution
    years = np.array(stamps, dtype="datetime64[us]").astype("datetime64[Y]").astype(np.int64) + 1970
    out_of_range = np.flatnonzero((years < 1678) | (years > 2261))
    if out_of_range.size:
        k = int(out_of_range[0])
        raise WorkloadError(f"{name}:{lines[k]}: column TIMESTAMP: {stamps[k]!r} is outside the years 1678-2261 "
                            "that hermes reads")
    ns = ts.view(np.int64)
    back = np.flatnonzero(np.diff(ns) < 0)
    if back.size:
        k = int(back[0]) + 1
        raise WorkloadError(
            f"{name}:{lines[k]}: column TIMESTAMP: {stamps[k]!r} is earlier than {stamps[k - 1]!r} "
            f"on line {lines[k - 1]}; the trace must be sorted by TIMESTAMP"
        )
    times = (ns - ns[0]).astype(np.float64) / 1e9
    out = (times, np.asarray(prompts, dtype=np.int64), np.asarray(outputs, dtype=np.int64))
    for a in out:
        a.setflags(write=False)
    return (*out, tuple(types) if type_column is not None else None)


#: ``(times_s, prompt_tokens, output_tokens, hash_ids)`` as returned by :func:`load_mooncake_jsonl`.
MooncakeData = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[tuple[int, ...] | None, ...]]
#: :data:`MooncakeData` plus each line's request type (``None`` without a type key).
_MooncakeTyped = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[tuple[int, ...] | None, ...], tuple[str, ...] | None]


def load_mooncake_jsonl(path: str | Path, display: str | None = None) -> MooncakeData:
    """Read a Mooncake trace: one JSON object per line,
    ``{"timestamp": ms, "input_length": int, "output_length": int, "hash_ids": [int, ...]}``.

    Returns ``(times_s, prompt_tokens, output_tokens, hash_ids)``: float64 seconds since the
    first line's timestamp, int64 token counts, and per line a tuple of block hash ids (one per
    512-token block; equal ids mean a shared prefix) or None when the line has no
    ``hash_ids``. Blank lines are skipped.

    Raises :class:`~hermes_core.WorkloadError` as ``<display>:<line>: ...`` for an empty file,
    invalid JSON (with its column), a line that is not an object, a missing key, a timestamp
    that is not a finite number or is earlier than the line before, a token count that is not a
    non-negative integer, a zero prompt or output, or ``hash_ids`` that is not a list of
    integers, and for a file that cannot be read or is not UTF-8. ``display`` is the name used
    in messages (default: ``path``). Parsed files are cached by path, size and modification
    time.
    """
    return _read_cached(_load_mooncake_cached, path, display, None)[:4]


def load_mooncake_request_types(path: str | Path, key: str, display: str | None = None) -> tuple[str, ...]:
    """The string value of JSON key ``key`` on each line of a Mooncake trace (what
    :func:`load_mooncake_jsonl` reads, same lines, same order).

    Raises :class:`~hermes_core.WorkloadError` for everything :func:`load_mooncake_jsonl`
    does, and as ``<display>:<line>: missing key '<key>' ...`` listing the line's keys, or
    ``<display>:<line>: key '<key>': expected a non-empty string ...``. Cached with the
    trace, keyed by ``key`` too."""
    return _read_cached(_load_mooncake_cached, path, display, key)[4]


@functools.lru_cache(maxsize=8)
def _load_mooncake_cached(path: str, _mtime_ns: int, _size: int, name: str, type_key: str | None) -> _MooncakeTyped:
    """The parsed trace; with ``type_key``, also that key's value per line (interned)."""
    types: list[str] = []
    distinct: dict[str, str] = {}
    stamps: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    hashes: list[tuple[int, ...] | None] = []
    prev_ts = -math.inf
    prev_line = 0
    with open(path, encoding="utf-8-sig") as f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise WorkloadError(f"{name}:{line_no}: column {exc.colno}: invalid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise WorkloadError(f"{name}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            for key in ("timestamp", "input_length", "output_length"):
                if key not in obj:
                    raise WorkloadError(
                        f"{name}:{line_no}: missing key '{key}'; each line needs timestamp (ms), "
                        f"input_length and output_length (hash_ids optional)"
                    )
            t = obj["timestamp"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise WorkloadError(
                    f"{name}:{line_no}: key 'timestamp': expected a finite number of milliseconds, got {t!r}"
                )
            if t < prev_ts:
                raise WorkloadError(
                    f"{name}:{line_no}: key 'timestamp': {t!r} is earlier than {prev_ts!r} on line "
                    f"{prev_line}; the trace must be sorted by timestamp"
                )
            prev_ts, prev_line = t, line_no
            vals = []
            for key, kind in (("input_length", "prompt"), ("output_length", "output")):
                v = obj[key]
                if type(v) is not int or v < 0:
                    raise WorkloadError(f"{name}:{line_no}: key '{key}': expected a non-negative integer, got {v!r}")
                if v > MAX_TOKENS:
                    raise WorkloadError(f"{name}:{line_no}: key '{key}': {v} tokens is more than {MAX_TOKENS:,} "
                                        "(beyond every model's context window)")
                if v == 0:
                    if kind == "output":
                        raise WorkloadError(
                            f"{name}:{line_no}: key '{key}': output must be >= 1 token "
                            "(a request generates at least one token), got 0"
                        )
                    raise WorkloadError(f"{name}:{line_no}: key '{key}': prompt must be >= 1 token, got 0")
                vals.append(v)
            h = obj.get("hash_ids")
            if h is not None:
                if not isinstance(h, list) or not all(type(x) is int for x in h):
                    raise WorkloadError(f"{name}:{line_no}: key 'hash_ids': expected a list of integers, got {h!r}")
                h = tuple(h)
            if type_key is not None:
                if type_key not in obj:
                    raise WorkloadError(
                        f"{name}:{line_no}: missing key '{type_key}' (request_type_field); "
                        f"the line has keys {', '.join(obj)}"
                    )
                v = obj[type_key]
                if not isinstance(v, str) or not v.strip():
                    raise WorkloadError(
                        f"{name}:{line_no}: key '{type_key}': expected a non-empty string (a request type "
                        f"name), got {v!r}"
                    )
                v = v.strip()
                types.append(distinct.setdefault(v, v))
            stamps.append(t)
            prompts.append(vals[0])
            outputs.append(vals[1])
            hashes.append(h)
    if not stamps:
        raise WorkloadError(f"{name}: file is empty; expected one JSON object per line")
    ms = np.asarray(stamps, dtype=np.float64)
    times = (ms - ms[0]) / 1000.0
    arrays = (times, np.asarray(prompts, dtype=np.int64), np.asarray(outputs, dtype=np.int64))
    for a in arrays:
        a.setflags(write=False)
    return (*arrays, tuple(hashes), tuple(types) if type_key is not None else None)


# ---------------------------------------------------------------------------------------
# Replay of precomputed arrivals (traces and synthetic)
# ---------------------------------------------------------------------------------------
class _ArrivalReplay(Workload):
    """Base of workloads whose arrivals are known when built: keeps one pending event."""

    _times: list[float]
    _prompts: list[int]
    _outputs: list[int]
    _hashes: list[tuple[int, ...] | None] | None
    _types: list[str] | None

    def _set_arrivals(self, times: np.ndarray, prompts: np.ndarray, outputs: np.ndarray,
                      hashes: list[tuple[int, ...] | None] | None = None,
                      types: list[str] | None = None) -> None:
        # Plain Python lists: the arrival callback indexes them once per request, and Python
        # floats compare faster than numpy scalars in the event heap.
        self._times = np.asarray(times, dtype=np.float64).tolist()
        self._prompts = np.asarray(prompts, dtype=np.int64).tolist()
        self._outputs = np.asarray(outputs, dtype=np.int64).tolist()
        self._hashes = hashes
        self._types = types
        self._sim: Simulator | None = None
        self._submit: Callable[[Request], None] | None = None
        self._t0 = 0.0

    def start(self, sim: Simulator, submit: Callable[[Request], None]) -> None:
        """Schedule the first arrival; each arrival schedules the next (one pending event)."""
        self._sim = sim
        self._submit = submit
        self._t0 = sim.now
        if self._times:
            sim.schedule_at(self._t0 + self._times[0], self._arrive, 0, priority=PRIORITY_ARRIVAL)

    def _arrive(self, i: int) -> None:
        t = self._t0 + self._times[i]
        nxt = i + 1
        if nxt < len(self._times):
            self._sim.schedule_at(self._t0 + self._times[nxt], self._arrive, nxt, priority=PRIORITY_ARRIVAL)
        h = self._hashes[i] if self._hashes is not None else None
        rt = self._types[i] if self._types is not None else ""
        self._submit(Request(i, t, self._prompts[i], self._outputs[i], h, request_type=rt))

    def expected_requests(self) -> int | None:
        """Number of requests this workload sends."""
        return len(self._times)

    def request_types(self) -> set[str] | None:
        """The distinct ``request_type`` values of the requests (``request_type_field``), or None."""
        return set(self._types) if self._types is not None else None

    def horizon_s(self) -> float | None:
        """Arrival time of the last request (s after start)."""
        return self._times[-1] if self._times else None


class _TraceOptions(BaseModel):
    """Options shared by the trace-replay workloads."""

    model_config = ConfigDict(extra="forbid")

    max_requests: int | None = Field(
        None, ge=1, description="Replay at most this many requests (the first ones in the window). Default: all."
    )
    duration_s: float | None = Field(
        None, gt=0, **_FINITE,
        description="Replay only requests arriving in the first duration_s simulated seconds "
        "(after time_scale). Default: the whole trace.",
    )
    time_scale: float = Field(
        1.0, gt=0, **_FINITE,
        description="Multiplies every inter-arrival time: 0.5 replays at twice the rate, 2 at half. Default 1.",
    )
    start_offset_s: float = Field(
        0.0, ge=0, **_FINITE,
        description="Skip the first start_offset_s seconds of the trace (trace time from its first "
        "row, before time_scale); arrival times are then measured from that point. Default 0.",
    )
    request_type_field: str | None = Field(
        None, min_length=1,
        description="Column (azure_trace: CSV column; mooncake_trace: JSON key) whose value is each "
        "request's request type (a name in the scenario's request_types). Default: untyped.",
    )


def _window(kind: str, opts: _TraceOptions, name: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rows to replay and their arrival times (s after start)."""
    rel = (times - opts.start_offset_s) * opts.time_scale
    keep = times >= opts.start_offset_s
    if opts.duration_s is not None:
        keep &= rel < opts.duration_s
    idx = np.flatnonzero(keep)
    if opts.max_requests is not None:
        idx = idx[: opts.max_requests]
    if idx.size == 0:
        raise WorkloadError(
            f"{kind}: no requests of {name} fall in the window start_offset_s={opts.start_offset_s}, "
            f"duration_s={opts.duration_s} (time_scale={opts.time_scale}); the trace spans "
            f"{float(times[-1]):.3f} s"
        )
    return idx, rel[idx]


def _resolve(kind: str, path: str, base_dir: Path) -> Path:
    """``path`` resolved against ``base_dir``; WorkloadError if it is not an existing file."""
    p = Path(path).expanduser()
    full = p if p.is_absolute() else Path(base_dir) / p
    hint = "" if p.is_absolute() else f" (resolved to '{full}')"
    if not full.exists():
        raise WorkloadError(f"{kind}.path: file '{path}' does not exist{hint}")
    if not full.is_file():
        raise WorkloadError(f"{kind}.path: '{path}' is not a file{hint}")
    return full


class AzureTrace(_ArrivalReplay):
    """Replay an Azure LLM inference trace 2023 (Splitwise, ISCA'24) CSV.

    Each row becomes one request: ``ContextTokens`` prompt tokens, ``GeneratedTokens`` output
    tokens, arriving at its ``TIMESTAMP`` minus the first row's (the first request arrives at
    t = 0), times ``time_scale``. See :class:`AzureTrace.Config` for the window options and
    :func:`load_azure_csv` for the format. With ``request_type_field`` set, each request's
    :attr:`~hermes_core.Request.request_type` is that CSV column's value on its row (read
    once when the workload is built, :func:`load_azure_request_types`).

    Raises :class:`~hermes_core.WorkloadError` (naming file, line and column) when the file is
    missing or malformed, or when no request falls in the window.
    """

    class Config(_TraceOptions):
        """``azure_trace`` options. Exactly one of ``path`` and ``dataset``."""

        path: str | None = Field(
            None, description="CSV file; a relative path is resolved against the scenario's folder."
        )
        dataset: Literal["azure_conv_2023", "azure_code_2023"] | None = Field(
            None,
            description="A trace shipped with hermes: azure_conv_2023 (conversation, 19,366 requests, "
            "1 h) or azure_code_2023 (coding, 8,819 requests). CC-BY-4.0; cite Splitwise (ISCA'24).",
        )

        @model_validator(mode="after")
        def _one_source(self) -> AzureTrace.Config:
            if (self.path is None) == (self.dataset is None):
                raise ValueError(
                    "set exactly one of 'path' (a CSV file) or 'dataset' "
                    f"({', '.join(AZURE_DATASETS)})"
                )
            return self

    def __init__(self, config: AzureTrace.Config, rng: np.random.Generator, base_dir: Path):
        """Read and check the trace. ``rng`` is unused (replay is deterministic); relative
        paths are resolved against ``base_dir``. Raises :class:`~hermes_core.WorkloadError`."""
        self.config = config
        if config.dataset is not None:
            fname = AZURE_DATASETS[config.dataset]
            full, display = DATA_DIR / fname, fname
        else:
            full, display = _resolve("azure_trace", config.path, base_dir), config.path
        times, prompts, outputs, types = _read_cached(_load_azure_cached, full, display, config.request_type_field)
        idx, arrivals = _window("azure_trace", config, display, times)
        self._set_arrivals(arrivals, prompts[idx], outputs[idx],
                           types=[types[i] for i in idx.tolist()] if types is not None else None)


class MooncakeTrace(_ArrivalReplay):
    """Replay a Mooncake (Kimi, FAST'25) JSONL trace, with prefix-sharing block ids.

    Each line becomes one request: ``input_length`` prompt tokens, ``output_length`` output
    tokens, ``hash_ids`` as :attr:`Request.hash_ids` (a tuple), arriving at its ``timestamp``
    (ms) minus the first line's, times ``time_scale``. See :func:`load_mooncake_jsonl`.
    With ``request_type_field`` set, each request's :attr:`~hermes_core.Request.request_type`
    is that JSON key's (string) value on its line (:func:`load_mooncake_request_types`).

    Raises :class:`~hermes_core.WorkloadError` (naming file, line and key) when the file is
    missing or malformed, or when no request falls in the window.
    """

    class Config(_TraceOptions):
        """``mooncake_trace`` options."""

        path: str = Field(description="JSONL file; a relative path is resolved against the scenario's folder.")

    def __init__(self, config: MooncakeTrace.Config, rng: np.random.Generator, base_dir: Path):
        """Read and check the trace. ``rng`` is unused; relative paths are resolved against
        ``base_dir``. Raises :class:`~hermes_core.WorkloadError`."""
        self.config = config
        full = _resolve("mooncake_trace", config.path, base_dir)
        times, prompts, outputs, hashes, types = _read_cached(_load_mooncake_cached, full, config.path,
                                                              config.request_type_field)
        idx, arrivals = _window("mooncake_trace", config, config.path, times)
        rows = idx.tolist()
        self._set_arrivals(arrivals, prompts[idx], outputs[idx], [hashes[i] for i in rows],
                           types=[types[i] for i in rows] if types is not None else None)


class SyntheticWorkload(_ArrivalReplay):
    """Open-loop synthetic arrivals: Poisson or gamma inter-arrival times, with prompt and
    output lengths drawn from :class:`LengthDist` distributions.

    The first request arrives at t = 0; the gaps between arrivals are exponential with mean
    ``1 / rate_rps`` (``poisson``) or gamma with the same mean and coefficient of variation
    ``cv`` (``gamma``; shape ``1 / cv**2``: ``cv > 1`` is burstier than Poisson, ``cv < 1``
    more regular). Generation stops after ``num_requests`` requests or at ``duration_s``,
    whichever comes first.

    All randomness comes from ``rng``, split into three independent streams (arrivals,
    prompt lengths, output lengths): the same seed gives the same requests, and changing one
    length distribution does not move the arrival times. Requests are generated when the
    workload is built. Raises :class:`~hermes_core.WorkloadError` if more than
    :data:`MAX_SYNTHETIC_REQUESTS` would be generated.
    """

    class Config(BaseModel):
        """``synthetic`` options."""

        model_config = ConfigDict(extra="forbid")

        arrival: Literal["poisson", "gamma"] = Field(
            "poisson", description="Inter-arrival distribution: poisson (exponential gaps) or gamma."
        )
        rate_rps: float = Field(gt=0, le=1e6, **_FINITE,
                                description="Mean arrival rate (requests per second, 1e-6 to 1e6).")
        cv: float | None = Field(
            None, ge=1e-3, le=1e3, **_FINITE,
            description="gamma only (required there): coefficient of variation of the inter-arrival "
            "times (std / mean, > 0; 1 is Poisson).",
        )
        num_requests: int | None = Field(None, ge=1, description="Number of requests to send.")
        duration_s: float | None = Field(
            None, gt=0, **_FINITE, description="Send only requests arriving before this time (s)."
        )
        isl: LengthDist = Field(
            description="Prompt length (input sequence length, tokens): an int or a LengthDist mapping."
        )
        osl: LengthDist = Field(
            description="Output length (output sequence length, tokens): an int or a LengthDist mapping."
        )

        @field_validator("rate_rps")
        @classmethod
        def _rate_floor(cls, v: float) -> float:
            if v < 1e-6:
                raise ValueError(f"must be at least 1e-6 requests/s (one request in 11.6 days), got {v!r}")
            return v

        @field_validator("isl", "osl", mode="before")
        @classmethod
        def _lengths(cls, v: Any) -> Any:
            return _length_shorthand(v)

        @model_validator(mode="after")
        def _check(self) -> SyntheticWorkload.Config:
            if self.num_requests is None and self.duration_s is None:
                raise ValueError("set num_requests, duration_s or both (generation stops at whichever comes first)")
            if self.arrival == "gamma" and self.cv is None:
                raise ValueError("arrival 'gamma' needs 'cv' (coefficient of variation of the inter-arrival times)")
            if self.arrival == "poisson" and self.cv is not None:
                raise ValueError("'cv' applies only to arrival 'gamma' (Poisson arrivals have cv = 1)")
            return self

    _CHUNK = 8192

    def __init__(self, config: SyntheticWorkload.Config, rng: np.random.Generator, base_dir: Path):
        """Generate the requests from ``rng``. ``base_dir`` is unused. Raises
        :class:`~hermes_core.WorkloadError` for a run of more than
        :data:`MAX_SYNTHETIC_REQUESTS` requests."""
        self.config = config
        c = config
        by_time = c.rate_rps * c.duration_s if c.duration_s is not None else math.inf
        by_count = c.num_requests if c.num_requests is not None else math.inf
        if min(by_time, by_count) > MAX_SYNTHETIC_REQUESTS:
            what = (f"num_requests ({by_count:,})" if by_count <= by_time
                    else f"rate_rps * duration_s (about {int(by_time):,} requests)")
            raise WorkloadError(
                f"synthetic: {what} exceeds the limit of {MAX_SYNTHETIC_REQUESTS:,} requests; "
                "set a smaller num_requests or a shorter duration_s"
            )
        arr_rng, isl_rng, osl_rng = _child_rngs(rng, 3)
        if c.arrival == "poisson":
            draw = lambda n: arr_rng.exponential(1.0 / c.rate_rps, n)  # noqa: E731
        else:
            shape = 1.0 / c.cv**2
            draw = lambda n: arr_rng.gamma(shape, 1.0 / (c.rate_rps * shape), n)  # noqa: E731
        chunks: list[np.ndarray] = []
        total = 0
        nxt = 0.0  # arrival time of the next request
        while True:
            gaps = draw(self._CHUNK)
            cum = np.cumsum(gaps)
            arr = np.empty(self._CHUNK)
            arr[0] = nxt
            arr[1:] = nxt + cum[:-1]
            nxt = nxt + float(cum[-1])
            done = False
            if c.duration_s is not None:
                cut = int(np.searchsorted(arr, c.duration_s, side="left"))
                if cut < arr.size:
                    arr, done = arr[:cut], True
            if c.num_requests is not None and total + arr.size >= c.num_requests:
                arr, done = arr[: c.num_requests - total], True
            chunks.append(arr)
            total += arr.size
            if done:
                break
        times = np.concatenate(chunks)
        self._set_arrivals(times, c.isl.sample(isl_rng, times.size), c.osl.sample(osl_rng, times.size))


#: Prompt block size of ``closed_loop`` datasets (tokens per hash id), and the id stride per
#: dataset entry (entry ``e``'s blocks are ``e * stride + j``).
_HASH_BLOCK = 512
_IDS_PER_PROMPT = 1 << 24


def _pick_entries(how: str, k: int, n: int, rng: np.random.Generator) -> list[int]:
    """The dataset entry (``0 <= e < k``) of each of ``n`` requests: ``shuffle`` (a fresh
    permutation per pass over the ``k`` entries, aiperf's ``ShuffleSampler``),
    ``sequential`` (``i mod k``) or ``random`` (uniform, with replacement)."""
    if how == "sequential":
        return [i % k for i in range(n)]
    if how == "random":
        return rng.integers(0, k, size=n).tolist()
    out: list[int] = []
    while len(out) < n:
        out.extend(rng.permutation(k).tolist())
    return out[:n]


class ClosedLoop(Workload):
    """A closed-loop benchmark client (vLLM ``benchmark_serving --max-concurrency``,
    aiconfigurator's serving points): ``concurrency`` requests start at t = 0, and each time
    one finishes (or is dropped) the next is sent at once, with no think time, until
    ``num_requests`` were sent. So exactly ``concurrency`` requests are outstanding until the
    last ones drain.

    Prompt and output lengths come from ``isl`` / ``osl`` (an int, or a :class:`LengthDist`
    drawn from ``rng`` with one independent stream each). Several completions at the same
    instant are answered by one arrival event.

    With ``num_prompts`` set, requests draw from a dataset of that many distinct prompts, as
    benchmark clients do (aiperf ``--num-dataset-entries``, default 100; vLLM
    ``benchmark_serving --num-prompts``): each entry has its own lengths and its own prompt
    block ids (:attr:`Request.hash_ids`, 512-token blocks), so an engine with prefix caching
    finds a repeated prompt in its cache. ``prompt_sampling`` picks the entry of each
    request: ``shuffle`` (aiperf's default for synthetic prompts: a new random permutation of
    the dataset each pass), ``sequential`` (entry ``i mod num_prompts``) or ``random`` (with
    replacement).

    With ``drain_after_warmup``, the first ``warmup_requests`` requests run at
    ``concurrency`` and the rest wait until all of them have finished, then start as one
    burst: aiperf's separate warm-up phase ("waits for all warmup responses before starting
    profiling", aiperf docs/tutorials/warmup.md).
    """

    class Config(BaseModel):
        """``closed_loop`` options."""

        model_config = ConfigDict(extra="forbid")

        concurrency: int = Field(ge=1, description="Number of requests kept in flight (clients, >= 1).")
        isl: LengthDist = Field(
            description="Prompt length (input sequence length, tokens): an int or a LengthDist mapping."
        )
        osl: LengthDist = Field(
            description="Output length (output sequence length, tokens): an int or a LengthDist mapping."
        )
        num_requests: int | None = Field(
            None, ge=1, description="Total requests to send (default 10 * concurrency)."
        )
        num_prompts: int | None = Field(
            None, ge=1,
            description="Distinct prompts the requests draw from (a benchmark's dataset entries; "
            "repeats hit an engine's prefix cache). Default: every request has its own prompt.",
        )
        prompt_sampling: Literal["shuffle", "sequential", "random"] = Field(
            "shuffle",
            description="How requests pick a dataset entry when num_prompts is set: shuffle (a new "
            "permutation each pass, aiperf's default), sequential, or random (with replacement).",
        )
        warmup_requests: int = Field(
            0, ge=0,
            description="How many of the first requests are warm-up: simulated like every other "
            "request but left out of the summary's metrics (default 0).",
        )
        drain_after_warmup: bool = Field(
            False,
            description="Wait until every warm-up request has finished before sending the rest, "
            "which then start as one burst of `concurrency` requests (aiperf's warm-up phase). "
            "Default false: no pause.",
        )

        @field_validator("isl", "osl", mode="before")
        @classmethod
        def _lengths(cls, v: Any) -> Any:
            return _length_shorthand(v)

        @model_validator(mode="after")
        def _check(self) -> ClosedLoop.Config:
            n = self.total_requests
            if self.warmup_requests >= n:
                raise ValueError(f"warmup_requests ({self.warmup_requests}) must be less than num_requests ({n})")
            return self

        @property
        def total_requests(self) -> int:
            """``num_requests``, or ``10 * concurrency`` when unset."""
            return self.num_requests if self.num_requests is not None else 10 * self.concurrency

    def __init__(self, config: ClosedLoop.Config, rng: np.random.Generator, base_dir: Path):
        """Draw the request lengths from ``rng``. ``base_dir`` is unused."""
        self.config = config
        self._n = config.total_requests
        isl_rng, osl_rng = _child_rngs(rng, 2)
        self._hash_ids: list[tuple[int, ...]] | None = None
        if config.num_prompts is None:
            self._prompts = config.isl.sample(isl_rng, self._n).tolist()
            self._outputs = config.osl.sample(osl_rng, self._n).tolist()
        else:
            (pick_rng,) = _child_rngs(rng, 1)
            k = config.num_prompts
            isl = config.isl.sample(isl_rng, k).tolist()
            osl = config.osl.sample(osl_rng, k).tolist()
            ids = [tuple(e * _IDS_PER_PROMPT + j for j in range(-(-p // _HASH_BLOCK)))
                   for e, p in enumerate(isl)]
            entry = _pick_entries(config.prompt_sampling, k, self._n, pick_rng)
            self._prompts = [isl[e] for e in entry]
            self._outputs = [osl[e] for e in entry]
            self._hash_ids = [ids[e] for e in entry]
        self._next = 0
        self._in_flight: set[int] = set()
        self._to_send = 0  # sends owed by the pending arrival event
        self._sim: Simulator | None = None
        self._submit: Callable[[Request], None] | None = None

    def start(self, sim: Simulator, submit: Callable[[Request], None]) -> None:
        """Schedule the first ``min(concurrency, num_requests)`` requests at the current time."""
        self._sim = sim
        self._submit = submit
        c = self.config
        first = min(c.concurrency, self._n)
        if c.drain_after_warmup and c.warmup_requests:
            first = min(first, c.warmup_requests)
        self._owe(first)

    def _owe(self, k: int) -> None:
        if self._to_send == 0:
            self._sim.schedule_at(self._sim.now, self._send, priority=PRIORITY_ARRIVAL)
        self._to_send += k

    def _send(self) -> None:
        k, self._to_send = self._to_send, 0
        now = self._sim.now
        for _ in range(k):
            i = self._next
            if i >= self._n:
                break
            self._next = i + 1
            self._in_flight.add(i)
            ids = self._hash_ids[i] if self._hash_ids is not None else None
            self._submit(Request(i, now, self._prompts[i], self._outputs[i], hash_ids=ids,
                                 hash_block_tokens=_HASH_BLOCK, warmup=i < self.config.warmup_requests))

    def on_request_done(self, request: Request) -> None:
        """Send the next request (at the current simulated time) if any are left. Unknown or
        repeated notifications are ignored."""
        if request.id not in self._in_flight:
            return
        self._in_flight.discard(request.id)
        c = self.config
        if c.drain_after_warmup and self._next <= c.warmup_requests:
            # warm-up phase: hold the measured requests until the warm-up has drained
            if self._next + self._to_send < c.warmup_requests:
                self._owe(1)
            elif not self._in_flight and self._to_send == 0:
                self._owe(min(c.concurrency, self._n - self._next))
            return
        if self._next + self._to_send < self._n:
            self._owe(1)

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet reported done."""
        return len(self._in_flight)

    def expected_requests(self) -> int | None:
        """``num_requests``."""
        return self._n


@hookimpl
def hermes_register_workloads(register):
    """Register ``azure_trace``, ``mooncake_trace``, ``synthetic`` and ``closed_loop``."""
    register("azure_trace", AzureTrace, source="Azure LLM inference trace 2023 (CSV)")
    register("mooncake_trace", MooncakeTrace, source="Mooncake FAST'25 trace (JSONL)")
    register("synthetic", SyntheticWorkload, source="Poisson / gamma arrivals")
    register("closed_loop", ClosedLoop, source="fixed-concurrency benchmark client")
