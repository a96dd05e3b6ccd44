"""Raw counts -> energy and latency per inference, under a named, cited cost model (docs/energy.md).

Cost models are data, not constants in code: JSON files shipped in ``cost_models/`` (Loihi 1 from
Davies et al. 2018 Table 2; Loihi 1 as SANA-FE's silicon-calibrated model prices it, Boyle et al.
2025; Loihi 2 with no public coefficients, so counts only; the conventional 45 nm figures of
Horowitz 2014 for the ANN comparison), or a user's JSON/YAML file of the same shape. A coefficient
may be ``null``: that term is then reported as unpriced, never as zero.

Two neuromorphic shapes: ``neuromorphic`` (Davies' per-operation table: a synaptic op, an active or
inactive neuron update, a message within a tile or per tile hop, a barrier interpolated in tiles)
and ``neuromorphic-sanafe`` (SANA-FE's event model: every mapped neuron pays a base cost per step,
plus an increment when updated and another when it fires; synaptic events by synapse kind; a
message out per distinct destination core and a message in; a barrier looked up by tile count; its
``simple`` timing model: the slowest core's neuron or message processing plus the barrier). The
counts each prices are in ``snnc.hwsim.counts``; docs/energy.md says where each figure comes from.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snnc.errors import InputFileError

if TYPE_CHECKING:    # annotations only: snn-run reads the cost-model names without the counting code
    from snnc.compiler.mapping import Mapping
    from snnc.compiler.placement import Placement
    from snnc.hwsim.counts import DetailedCounts, InputEvents, LayerCounts
    from snnc.hwsim.sim import HwSimResult
    from snnc.models.readout import Readout

DEFAULT_COST_MODEL = "loihi1-davies2018"
CALIBRATED_COST_MODEL = "loihi1-sanafe2025"
ANN_COST_MODEL = "ann-horowitz2014-45nm"
SANAFE_KIND = "neuromorphic-sanafe"

#: The coefficients each kind of cost model may give (J per operation, s per operation).
ENERGY_TERMS = {
    "neuromorphic": ("synaptic_op", "neuron_update_active", "neuron_update_inactive", "spike_within_tile",
                     "tile_hop_ew", "tile_hop_ns", "spike_cross_chip"),
    "ann": ("mac_fp32", "ac_fp32", "mac_int8", "ac_int32", "sram_read_64bit"),
    # SANA-FE's terms (its Loihi file's attributes in docs/energy.md): per synaptic event by synapse
    # kind; per mapped neuron and step, +updated, +fired; per message out and in; per tile hop
    SANAFE_KIND: ("synaptic_event_dense", "synaptic_event_sparse", "synaptic_event_conv", "neuron_step",
                  "neuron_updated", "neuron_fired", "message_out", "message_in", "tile_hop_ew", "tile_hop_ns",
                  "spike_cross_chip"),
}
TIME_TERMS = ("synaptic_op", "neuron_update_active", "neuron_update_inactive", "spike_within_tile",
              "tile_hop_ew", "tile_hop_ns", "barrier_1_tile", "barrier_32_tiles", "barrier_multi_chip")
#: SANA-FE's times; its ``simple`` timing model adds no hop latency (its ``detailed`` one does)
SANAFE_TIME_TERMS = (*ENERGY_TERMS[SANAFE_KIND][:-1], "barrier_multi_chip")
#: the timing models snnc computes for a ``neuromorphic-sanafe`` model (SANA-FE's schedule.cpp)
TIMING_MODELS = ("simple",)
#: Energy categories of a neuromorphic estimate and the counts they price.
CATEGORIES = ("synaptic_ops", "neuron_updates", "spike_messages", "tile_hops", "cross_chip")


@dataclass(frozen=True)
class CostModel:
    """Coefficients (None where unknown), where they come from, and what they leave out."""

    name: str
    title: str
    source: str
    kind: str = "neuromorphic"
    energy_j: dict[str, float | None] = field(default_factory=dict)
    time_s: dict[str, float | None] = field(default_factory=dict)
    static_w_per_chip: float | None = None
    caveats: list[str] = field(default_factory=list)
    path: str = "(shipped)"
    barrier_by_tiles: dict[int, float | None] = field(default_factory=dict)   # neuromorphic-sanafe
    timing_model: str | None = None                                          # neuromorphic-sanafe

    def e(self, key: str) -> float | None:
        return self.energy_j.get(key)

    def t(self, key: str) -> float | None:
        return self.time_s.get(key)


def shipped_cost_models() -> list[str]:
    """Names of the cost models shipped with snnc."""
    root = resources.files("snnc.hwsim") / "cost_models"
    return sorted(p.name[:-5].replace("_", "-") for p in root.iterdir() if p.name.endswith(".json"))


def load_cost_model(name_or_path: str | Path = DEFAULT_COST_MODEL) -> CostModel:
    """A shipped cost model by name, or a user's JSON/YAML file (checked key by key)."""
    text = str(name_or_path)
    if text in shipped_cost_models():
        ref = resources.files("snnc.hwsim") / "cost_models" / (text.replace("-", "_") + ".json")
        return _validated(json.loads(ref.read_text()), "(shipped)")
    path = Path(text)
    takes = f"Pass a shipped name ({', '.join(shipped_cost_models())}) or a JSON/YAML file (docs/energy.md)."
    if path.is_dir():
        raise InputFileError(f"cost model '{text}': is a directory, not a cost model file. {takes}")
    if not path.is_file():
        raise InputFileError(f"cost model '{text}': no such shipped model ({', '.join(shipped_cost_models())}) "
                        f"and no such file. Pass a shipped name or a JSON/YAML file (docs/energy.md).")
    import yaml

    from snnc.models.checkpoint import sniff_content

    try:
        content = sniff_content(path)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__}). {takes}") from None
    if content.kind not in ("text", "json"):
        model = "; model files go to snn-compile" if content.kind in ("torch", "pickle", "hdf5", "onnx") else ""
        raise InputFileError(f"{path}: not a JSON/YAML cost model: {content.clause}{model}. {takes}")
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        raw = path.read_text()
        data = yaml.safe_load(raw) if yaml_file else json.loads(raw)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        what = "YAML" if yaml_file else "JSON (use .yaml or .yml for YAML)"
        why = " ".join(str(exc).split())[:200]
        raise InputFileError(f"{path}: not a readable {what} cost model ({type(exc).__name__}: {why}).") from None
    return _validated(data, str(path))


def _number(where: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    try:   # float() of an int beyond 1e308 (JSON and YAML allow them) raises OverflowError
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise InputFileError(f"{where}: '{key}' must be a non-negative number or null, got {str(value)[:40]}.")
    return number


def _validated(data: Any, where: str) -> CostModel:
    """A CostModel from parsed JSON/YAML; every error names the file and the key."""
    if not isinstance(data, dict):
        raise InputFileError(f"{where}: a cost model is a mapping with name, title, source, kind, energy_j, ...")
    allowed = {"name", "title", "source", "kind", "energy_j", "time_s", "static_w_per_chip", "caveats",
               "barrier_s_by_tiles", "timing_model"}
    if not all(isinstance(k, str) for k in data):   # YAML allows any key: numbers, lists, null
        raise InputFileError(f"{where}: every key of a cost model is a string; allowed: {sorted(allowed)}.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputFileError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}.")
    for key in ("name", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise InputFileError(f"{where}: '{key}' is required (a non-empty string): every figure names its source.")
    kind = data.get("kind", "neuromorphic")
    if not isinstance(kind, str) or kind not in ENERGY_TERMS:
        raise InputFileError(f"{where}: kind '{str(kind)[:80]}' is not one of {sorted(ENERGY_TERMS)}.")
    if kind != SANAFE_KIND:
        only = sorted({"barrier_s_by_tiles", "timing_model"} & set(data))
        if only:
            raise InputFileError(f"{where}: {only} belong to kind '{SANAFE_KIND}', not '{kind}'.")
    times = {"neuromorphic": TIME_TERMS, SANAFE_KIND: SANAFE_TIME_TERMS}.get(kind, ())
    tables: dict[str, dict[str, float | None]] = {}
    for table, terms in (("energy_j", ENERGY_TERMS[kind]), ("time_s", times)):
        given = data.get(table) or {}
        if not isinstance(given, dict):
            raise InputFileError(f"{where}: '{table}' must be a mapping of coefficient -> number or null.")
        if not all(isinstance(k, str) for k in given):
            raise InputFileError(f"{where}: {table} keys must be coefficient names, one of {list(terms)}.")
        bad = sorted(set(given) - set(terms))
        if bad:
            raise InputFileError(f"{where}: {table} has unknown coefficients {bad}; a '{kind}' model takes "
                            f"{list(terms)} (missing ones count as unknown, not zero).")
        tables[table] = {k: _number(where, f"{table}.{k}", given.get(k)) for k in terms}
    caveats = data.get("caveats") or []
    if not isinstance(caveats, list) or not all(isinstance(c, str) for c in caveats):
        raise InputFileError(f"{where}: 'caveats' must be a list of strings.")
    barriers: dict[int, float | None] = {}
    timing = None
    if kind == SANAFE_KIND:
        barriers = _barrier_table(where, data.get("barrier_s_by_tiles"))
        timing = data.get("timing_model", "simple")
        if timing not in TIMING_MODELS:
            raise InputFileError(f"{where}: timing_model '{str(timing)[:40]}' is not one snnc computes "
                                 f"({', '.join(TIMING_MODELS)}).")
    return CostModel(name=data["name"], title=str(data.get("title") or data["name"]), source=data["source"],
                     kind=kind, energy_j=tables["energy_j"], time_s=tables["time_s"],
                     static_w_per_chip=_number(where, "static_w_per_chip", data.get("static_w_per_chip")),
                     caveats=list(caveats), path=where, barrier_by_tiles=barriers, timing_model=timing)


def _barrier_table(where: str, table: Any) -> dict[int, float | None]:
    """SANA-FE's barrier table, tile count -> seconds (JSON keys are strings); missing: unknown."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise InputFileError(f"{where}: 'barrier_s_by_tiles' must map a tile count to seconds, e.g. {{1: 0.6e-6}}.")
    out: dict[int, float | None] = {}
    for key, value in table.items():
        text = str(key)
        if isinstance(key, bool) or not text.isdigit() or int(text) < 1:
            raise InputFileError(f"{where}: barrier_s_by_tiles key '{text[:20]}' is not a tile count (1, 2, ...).")
        out[int(text)] = _number(where, f"barrier_s_by_tiles.{text}", value)
    return dict(sorted(out.items()))


# --- statistics --------------------------------------------------------------------------------------

def distribution(x: np.ndarray) -> dict[str, float]:
    """Mean, spread and percentiles of per-sample values (what an average alone hides)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {}
    p5, p50, p95 = np.percentile(x, [5, 50, 95])
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "p5": float(p5),
            "p50": float(p50), "p95": float(p95), "max": float(x.max())}


def _times(x: np.ndarray, coeff: float | None) -> np.ndarray | None:
    """Counts x price; an unknown price is a hole (None) unless the count is zero everywhere."""
    if coeff is None:
        return None if np.any(x) else np.zeros(np.shape(x))
    return x * coeff


def _uses(counts: DetailedCounts, chips: int) -> dict[str, float]:
    """How often each coefficient is needed by these counts (a coefficient nobody uses cannot leave
    a hole in the estimate, so it is not reported as unpriced)."""
    tot = {"synaptic_op": 0.0, "neuron_update_active": 0.0, "neuron_update_inactive": 0.0,
           "spike_within_tile": float(counts.input_traffic["within_tile"].sum()), "tile_hop_ew": 0.0,
           "tile_hop_ns": 0.0, "spike_cross_chip": 0.0}
    for lc in counts.layers:
        tot["synaptic_op"] += float(lc.synops.sum())
        tot["neuron_update_active"] += float(lc.active.sum())
        tot["neuron_update_inactive"] += float((lc.neurons_per_core[None, None, :] - lc.active).sum())
        tot["spike_within_tile"] += float(lc.traffic["within_tile"].sum() + lc.traffic["to_host"].sum())
        tot["tile_hop_ew"] += float(lc.traffic["ew_hops"].sum())
        tot["tile_hop_ns"] += float(lc.traffic["ns_hops"].sum())
        tot["spike_cross_chip"] += float(lc.traffic["cross_chip"].sum())
    times = {k: v for k, v in tot.items() if k != "spike_cross_chip"}
    times["spike_within_tile"] = float(sum(lc.messages.sum() for lc in counts.layers))
    barrier = {"barrier_multi_chip": 1.0} if chips > 1 else {"barrier_1_tile": 1.0, "barrier_32_tiles": 1.0}
    return {**tot, **{f"time:{k}": v for k, v in {**times, **barrier}.items()}}


def _add(*parts: np.ndarray | None) -> np.ndarray | None:
    """Sum of priced parts; None if any is unpriced (an unknown is never taken as zero)."""
    if any(p is None for p in parts):
        return None
    return sum(parts[1:], parts[0])  # type: ignore[arg-type,return-value]


# --- energy ------------------------------------------------------------------------------------------

def _layer_energy(lc: LayerCounts, cm: CostModel) -> dict[str, np.ndarray | None]:
    """Per category, (batch,) joules of one layer (None: that coefficient is unknown)."""
    inactive = lc.neurons_per_core[None, None, :] - lc.active
    tr = lc.traffic
    return {
        "synaptic_ops": _times(lc.synops.sum(axis=(1, 2)), cm.e("synaptic_op")),
        "neuron_updates": _add(_times(lc.active.sum(axis=(1, 2)), cm.e("neuron_update_active")),
                               _times(inactive.sum(axis=(1, 2)), cm.e("neuron_update_inactive"))),
        # a message priced once: within its tile, or by the tile hops it makes (Table 2's two rows)
        "spike_messages": _times(tr["within_tile"] + tr["to_host"], cm.e("spike_within_tile")),
        "tile_hops": _add(_times(tr["ew_hops"], cm.e("tile_hop_ew")), _times(tr["ns_hops"], cm.e("tile_hop_ns"))),
        "cross_chip": _times(tr["cross_chip"], cm.e("spike_cross_chip")),
    }


def _core_energy(lc: LayerCounts, cm: CostModel) -> np.ndarray | None:
    """(cores,) mean joules per inference of each core's own work (synops and neuron updates)."""
    inactive = lc.neurons_per_core[None, None, :] - lc.active
    parts = _add(_times(lc.synops.sum(axis=1), cm.e("synaptic_op")),
                 _times(lc.active.sum(axis=1), cm.e("neuron_update_active")),
                 _times(inactive.sum(axis=1), cm.e("neuron_update_inactive")))
    return None if parts is None else parts.mean(axis=0)


# --- latency -----------------------------------------------------------------------------------------

def barrier_time(cm: CostModel, cores: int, chips: int, cores_per_tile: int) -> float | None:
    """Mesh barrier per step: linear in tiles between the 1-tile and 32-tile figures of one chip;
    across chips the multi-chip figure if the model has one, else the full-chip one (a lower bound)."""
    lo, hi = cm.t("barrier_1_tile"), cm.t("barrier_32_tiles")
    if chips > 1:
        multi = cm.t("barrier_multi_chip")
        return multi if multi is not None else hi
    if lo is None or hi is None:
        return None
    tiles = min(max(1, ceil(cores / cores_per_tile)), 32)
    return lo + (hi - lo) * (tiles - 1) / 31


def _core_time(lc: LayerCounts, cm: CostModel) -> np.ndarray | None:
    """(batch, T, cores) seconds each core is busy per step: its operations, then its messages out."""
    inactive = lc.neurons_per_core[None, None, :] - lc.active
    return _add(_times(lc.synops, cm.t("synaptic_op")), _times(lc.active, cm.t("neuron_update_active")),
                _times(inactive, cm.t("neuron_update_inactive")), _times(lc.messages, cm.t("spike_within_tile")))


def _route_time(lc: LayerCounts, placement: Placement, cm: CostModel) -> np.ndarray | None:
    """(batch, T) the longest route a message of this layer takes in each step (tile hops)."""
    r = placement.routes()
    lo = placement.offset[lc.name]
    mine = slice(lo, lo + lc.cores)
    ew_s = _times(np.where(lc.reach, r["ew_hops"][mine], 0), cm.t("tile_hop_ew"))
    ns_s = _times(np.where(lc.reach, r["ns_hops"][mine], 0), cm.t("tile_hop_ns"))
    if ew_s is None or ns_s is None:
        return None
    hop_s = (ew_s + ns_s).max(axis=1, initial=0.0)
    sending = lc.messages > 0
    return np.where(sending, hop_s[None, None, :], 0.0).max(axis=2)


def step_times(counts: DetailedCounts, mapping: Mapping, placement: Placement, cm: CostModel,
               cores_per_tile: int) -> tuple[np.ndarray | None, float | None]:
    """(batch, T) seconds per step of every sample, and the barrier in it. A step ends when the
    slowest core has done its work and sent its spikes, the farthest message has arrived, and the
    mesh barrier has passed."""
    barrier = barrier_time(cm, mapping.cores, mapping.chips, cores_per_tile)
    if barrier is None:
        return None, None
    busy = np.zeros((counts.batch, counts.timesteps))
    route = np.zeros_like(busy)
    for lc in counts.layers:
        ct, rt = _core_time(lc, cm), _route_time(lc, placement, cm)
        if ct is None or rt is None:
            return None, barrier
        busy = np.maximum(busy, ct.max(axis=2))
        route = np.maximum(route, rt)
    return busy + route + barrier, barrier


def _decided(scores: np.ndarray) -> np.ndarray:
    """argmax over the last axis, or -1 where the top score is shared (no spike yet is a tie)."""
    best = scores.argmax(axis=-1)
    top = np.take_along_axis(scores, best[..., None], axis=-1)
    return np.where((scores == top).sum(axis=-1) > 1, -1, best)


def decision_steps(readout: Readout, counts: DetailedCounts, output: str) -> tuple[np.ndarray, np.ndarray]:
    """(batch,) timesteps until each sample's decision is final: the first t from which the decision
    made on steps 1..t equals the decision made on all T steps, at every later t too. A prefix whose
    top score is tied (no output spike yet) has no decision; a sample still tied after T steps is
    undecided and counted as needing all T. Also returns the (batch,) undecided mask."""
    steps = counts.timesteps
    if readout.kind == "membrane":
        per_t = _decided(counts.output_v)                                  # (batch, T)
    else:
        cum = np.cumsum(counts.spikes[output], axis=1, dtype=np.int64)    # (batch, T, n)
        b = cum.shape[0]
        per_t = _decided(cum.reshape(b, steps, -1, readout.voters).sum(axis=-1))
    undecided = per_t[:, -1] < 0
    differs = per_t != per_t[:, -1:]
    last_diff = np.where(differs.any(axis=1), steps - 1 - np.argmax(differs[:, ::-1], axis=1), -1)
    return np.where(undecided, steps, last_diff + 2), undecided   # 1-based step after the last change


def _stable_curve(ttd: np.ndarray, steps: int) -> list[float]:
    """Fraction of samples whose decision is final by step 1..T."""
    return [float((ttd <= t).mean()) for t in range(1, steps + 1)]


# --- the report sections -----------------------------------------------------------------------------

def _priced(x: np.ndarray | None) -> float | None:
    return None if x is None else float(np.mean(x))


@dataclass(frozen=True)
class _Priced:
    """One cost model's prices of the counts, before the report's sections are assembled."""

    per_layer: dict[str, dict[str, np.ndarray | None]]   # layer -> category -> (batch,) joules
    by_cat: dict[str, np.ndarray | None]                 # category -> (batch,) joules, input included
    unpriced: list[str]
    times: np.ndarray | None                             # (batch, T) seconds per step
    barrier: float | None
    cores: list[dict[str, Any]]
    traffic: dict[str, float]
    input_messages: float
    energy_extra: dict[str, Any] = field(default_factory=dict)
    latency_extra: dict[str, Any] = field(default_factory=dict)


def _price_per_op(counts: DetailedCounts, mapping: Mapping, placement: Placement, cm: CostModel,
                  cores_per_tile: int) -> _Priced:
    """Davies' shape (``neuromorphic``): the per-operation table over snnc's own counts."""
    per_layer = {lc.name: _layer_energy(lc, cm) for lc in counts.layers}
    input_e = _times(counts.input_traffic["within_tile"], cm.e("spike_within_tile"))
    coeffs = {**cm.energy_j, **{f"time:{k}": v for k, v in cm.time_s.items()}}
    unpriced = sorted(k for k, n in _uses(counts, mapping.chips).items() if n > 0 and coeffs.get(k) is None)
    by_cat: dict[str, np.ndarray | None] = {}
    for cat in CATEGORIES:
        parts = [e[cat] for e in per_layer.values()]
        by_cat[cat] = _add(*parts)
    by_cat["spike_messages"] = _add(by_cat["spike_messages"], input_e)
    times, barrier = step_times(counts, mapping, placement, cm, cores_per_tile)
    cores = []
    for lc in counts.layers:
        ce = _core_energy(lc, cm)
        ct = _core_time(lc, cm)
        lo = placement.offset[lc.name]
        for k in range(lc.cores):
            g = lo + k
            cores.append(_core_row(placement, lc, k, g, lc.synops, lc.active, lc.messages, ce, ct))
    return _Priced(per_layer=per_layer, by_cat=by_cat, unpriced=unpriced, times=times, barrier=barrier,
                   cores=cores,
                   traffic={k: float(sum(lc.traffic[k].mean() for lc in counts.layers))
                            for k in counts.layers[0].traffic},
                   input_messages=float(counts.input_traffic["within_tile"].mean()))


# --- SANA-FE's event model (kind neuromorphic-sanafe) ------------------------------------------------

def _events(lc: LayerCounts) -> EventCounts:
    if lc.events is None:
        raise ValueError(f"{lc.name}: no SANA-FE event counts (made by snnc.hwsim.counts.count)")
    return lc.events


def _total(x: np.ndarray) -> np.ndarray:
    """(batch, ...) -> (batch,) sums."""
    return x.sum(axis=tuple(range(1, x.ndim)))


def _sanafe_layer_energy(lc: LayerCounts, cm: CostModel, steps: int) -> dict[str, np.ndarray | None]:
    """Per category, (batch,) joules of one layer under SANA-FE's terms: its cores' synaptic events,
    every neuron's step (+updated, +fired), the messages it sends and receives, its messages' hops."""
    ev = _events(lc)
    neurons = np.full(ev.updated.shape[0], int(lc.neurons_per_core.sum()) * steps, dtype=np.int64)
    return {
        "synaptic_ops": _add(_times(_total(ev.events_dense), cm.e("synaptic_event_dense")),
                             _times(_total(ev.events_conv), cm.e("synaptic_event_conv"))),
        "neuron_updates": _add(_times(neurons, cm.e("neuron_step")), _times(_total(ev.updated), cm.e("neuron_updated")),
                               _times(_total(lc.spikes), cm.e("neuron_fired"))),
        "spike_messages": _add(_times(_total(ev.messages_out), cm.e("message_out")),
                               _times(_total(ev.messages_in), cm.e("message_in"))),
        "tile_hops": _add(_times(_total(ev.hops_ew), cm.e("tile_hop_ew")), _times(_total(ev.hops_ns), cm.e("tile_hop_ns"))),
        "cross_chip": _times(_total(ev.cross_chip), cm.e("spike_cross_chip")),
    }


def _sanafe_core_energy(lc: LayerCounts, cm: CostModel, steps: int) -> np.ndarray | None:
    """(cores,) mean joules per inference of each core's own work: synaptic events and neuron steps."""
    ev = _events(lc)
    parts = _add(_times(ev.events_dense.sum(axis=1), cm.e("synaptic_event_dense")),
                 _times(ev.events_conv.sum(axis=1), cm.e("synaptic_event_conv")),
                 _times(np.broadcast_to(lc.neurons_per_core * steps, (ev.updated.shape[0], lc.cores)),
                        cm.e("neuron_step")),
                 _times(ev.updated.sum(axis=1), cm.e("neuron_updated")),
                 _times(lc.spikes.sum(axis=1), cm.e("neuron_fired")))
    return None if parts is None else parts.mean(axis=0)


def _sanafe_core_time(lc: LayerCounts, cm: CostModel) -> np.ndarray | None:
    """(batch, T, cores) seconds each core is busy per step in SANA-FE's simple model: the larger of
    its neuron processing (every neuron's step, +updated, +fired, +each message out; chip.cpp
    process_neuron) and its message processing (each message in, +its synaptic events; process_message)."""
    ev = _events(lc)
    neuron = _add(_times(np.broadcast_to(lc.neurons_per_core, ev.updated.shape), cm.t("neuron_step")),
                  _times(ev.updated, cm.t("neuron_updated")), _times(lc.spikes, cm.t("neuron_fired")),
                  _times(ev.messages_out, cm.t("message_out")))
    message = _add(_times(ev.messages_in, cm.t("message_in")), _times(ev.events_dense, cm.t("synaptic_event_dense")),
                   _times(ev.events_conv, cm.t("synaptic_event_conv")))
    return None if neuron is None or message is None else np.maximum(neuron, message)


def sanafe_barrier(cm: CostModel, tiles: int, chips: int) -> float | None:
    """SANA-FE's barrier: the table's value at the largest tile count <= ``tiles`` (below the first
    key, the first value; utils.hpp LookupTable::get); on several chips the model's multi-chip figure."""
    if chips > 1:
        return cm.t("barrier_multi_chip")
    table = cm.barrier_by_tiles
    if not table:
        return None
    keys = [k for k in table if k <= tiles]
    return table[max(keys)] if keys else table[min(table)]


def tiles_in_use(placement: Placement, inputs: InputEvents | None) -> tuple[int, int]:
    """Mapped tiles and chips: the network's cores and the input units' (SANA-FE's ``mapped_tiles``)."""
    chip, tile = placement.chip, placement.tile
    if inputs is not None:
        chip, tile = np.concatenate([chip, inputs.chip]), np.concatenate([tile, inputs.tile])
    return len(set(zip(chip.tolist(), tile.tolist()))), int(chip.max(initial=0)) + 1


def _sanafe_uses(counts: DetailedCounts) -> dict[str, float]:
    """How often each coefficient of the SANA-FE shape is needed by these counts."""
    uses: dict[str, float] = {}

    def add(key: str, x: np.ndarray, timed: bool = True) -> None:
        for k in ((key, f"time:{key}") if timed else (key,)):
            uses[k] = uses.get(k, 0.0) + float(x.sum())

    for lc in counts.layers:
        ev = _events(lc)
        add("synaptic_event_dense", ev.events_dense)
        add("synaptic_event_conv", ev.events_conv)
        add("neuron_step", lc.neurons_per_core)
        add("neuron_updated", ev.updated)
        add("neuron_fired", lc.spikes)
        add("message_out", ev.messages_out)
        add("message_in", ev.messages_in)
        add("tile_hop_ew", ev.hops_ew, timed=False)     # the simple timing model adds no hop latency
        add("tile_hop_ns", ev.hops_ns, timed=False)
        add("spike_cross_chip", ev.cross_chip, timed=False)
    inp = counts.input_events
    if inp is not None:
        add("message_out", inp.messages_out)
        add("tile_hop_ew", inp.hops_ew, timed=False)
        add("tile_hop_ns", inp.hops_ns, timed=False)
        add("spike_cross_chip", inp.cross_chip, timed=False)
    return uses


def _price_sanafe(counts: DetailedCounts, mapping: Mapping, placement: Placement, cm: CostModel,
                  cores_per_tile: int) -> _Priced:
    """SANA-FE's shape: its event terms over snnc's counts under its definitions (hwsim/counts.py),
    its ``simple`` timing model (schedule.cpp schedule_messages_timestep_simple): per step, the
    largest neuron- or message-processing time of any core (input units' too), plus the barrier
    looked up by the number of mapped tiles (chip.cpp sim_timestep_sync)."""
    del cores_per_tile, mapping   # SANA-FE's tiles and chips are counted from the placement itself
    steps = counts.timesteps
    inp = counts.input_events
    per_layer = {lc.name: _sanafe_layer_energy(lc, cm, steps) for lc in counts.layers}
    by_cat: dict[str, np.ndarray | None] = {cat: _add(*[e[cat] for e in per_layer.values()]) for cat in CATEGORIES}
    tiles, chips = tiles_in_use(placement, inp)
    barrier = sanafe_barrier(cm, tiles, chips)
    barrier_key = "time:barrier_multi_chip" if chips > 1 else "time:barrier_s_by_tiles"
    coeffs = {**cm.energy_j, **{f"time:{k}": v for k, v in cm.time_s.items()}}
    unpriced = sorted(k for k, n in _sanafe_uses(counts).items() if n > 0 and coeffs.get(k) is None)
    if barrier is None:
        unpriced.append(barrier_key)
    busy: np.ndarray | None = np.zeros((counts.batch, steps))
    input_cores: list[dict[str, Any]] = []
    in_msgs = 0.0
    if inp is not None:
        by_cat["spike_messages"] = _add(by_cat["spike_messages"], _times(_total(inp.messages_out), cm.e("message_out")))
        by_cat["tile_hops"] = _add(by_cat["tile_hops"], _times(_total(inp.hops_ew), cm.e("tile_hop_ew")),
                                   _times(_total(inp.hops_ns), cm.e("tile_hop_ns")))
        by_cat["cross_chip"] = _add(by_cat["cross_chip"], _times(_total(inp.cross_chip), cm.e("spike_cross_chip")))
        in_msgs = float(_total(inp.messages_out).mean())
        in_time = _times(inp.messages_out, cm.t("message_out"))   # input units: no soma cost in SANA-FE's Loihi
        busy = None if in_time is None else np.maximum(busy, in_time.max(axis=2, initial=0.0))  # type: ignore[arg-type]
        for k in range(inp.core.size):
            input_cores.append({
                "core": int(inp.core[k]), "chip": int(inp.chip[k]), "tile_x": int(inp.tile_x[k]),
                "tile_y": int(inp.tile_y[k]), "neurons": int(inp.neurons_per_core[k]),
                "messages": float(inp.messages_out[:, :, k].sum(axis=1).mean()),
                "busy_s_per_step": None if in_time is None else float(in_time[:, :, k].mean()),
                "busy_s_per_step_max": None if in_time is None else float(in_time[:, :, k].max())})
    cores = []
    for lc in counts.layers:
        ev = _events(lc)
        ce = _sanafe_core_energy(lc, cm, steps)
        ct = _sanafe_core_time(lc, cm)
        busy = None if busy is None or ct is None else np.maximum(busy, ct.max(axis=2))
        lo = placement.offset[lc.name]
        for k in range(lc.cores):
            g = lo + k
            cores.append({**_core_row(placement, lc, k, g, ev.events_dense + ev.events_conv, ev.updated,
                                      ev.messages_out, ce, ct),
                          "messages_in": float(ev.messages_in[:, :, k].sum(axis=1).mean())})
    times = None if busy is None or barrier is None else busy + barrier
    mean = lambda key: sum(float(_total(getattr(_events(lc), key)).mean()) for lc in counts.layers)  # noqa: E731
    # the Davies shape's keys, counted SANA-FE's way (the output sends nothing: no synapse), and its own
    traffic = {"within_tile": mean("within_tile"), "ew_hops": mean("hops_ew"), "ns_hops": mean("hops_ns"),
               "cross_chip": mean("cross_chip"), "to_host": 0.0, "messages_out": mean("messages_out") + in_msgs,
               "messages_in": mean("messages_in")}
    if inp is not None:
        for key, x in (("ew_hops", inp.hops_ew), ("ns_hops", inp.hops_ns), ("cross_chip", inp.cross_chip)):
            traffic[key] += float(_total(x).mean())
    return _Priced(per_layer=per_layer, by_cat=by_cat, unpriced=unpriced, times=times, barrier=barrier, cores=cores,
                   traffic=traffic, input_messages=in_msgs,
                   energy_extra={"input_cores": input_cores, "mapped_tiles": tiles},
                   latency_extra={"timing_model": cm.timing_model, "mapped_tiles": tiles})


def _core_row(placement: Placement, lc: LayerCounts, k: int, g: int, synops: np.ndarray, active: np.ndarray,
              messages: np.ndarray, ce: np.ndarray | None, ct: np.ndarray | None) -> dict[str, Any]:
    """report.json ``energy.cores`` entry of core ``g`` (the ``k``-th of layer ``lc``): where it is, and
    per inference (mean over samples) its counts of (sample, step, core) arrays, energy and busy time."""
    def per_inference(x: np.ndarray) -> float:
        return float(x[:, :, k].sum(axis=1).mean())

    return {"core": g, "layer": lc.name, "chip": int(placement.chip[g]), "tile_x": int(placement.tile_x[g]),
            "tile_y": int(placement.tile_y[g]), "neurons": int(lc.neurons_per_core[k]),
            "synops": per_inference(synops), "active_updates": per_inference(active),
            "spikes": per_inference(lc.spikes), "messages": per_inference(messages),
            "energy_j": None if ce is None else float(ce[k]),
            "busy_s_per_step": None if ct is None else float(ct[:, :, k].mean()),
            "busy_s_per_step_max": None if ct is None else float(ct[:, :, k].max())}


def estimate(counts: DetailedCounts, mapping: Mapping, placement: Placement, cm: CostModel,
             readout: Readout, output: str, cores_per_tile: int) -> dict[str, Any]:
    """Energy (per category, layer and core; mean and distribution over samples) and latency (per
    step, per inference, time to decision) of one batch of counts under ``cm``."""
    price = _price_sanafe if cm.kind == SANAFE_KIND else _price_per_op
    priced = price(counts, mapping, placement, cm, cores_per_tile)
    unpriced = list(priced.unpriced)
    if cm.static_w_per_chip is None:
        unpriced.append("static_w_per_chip")
    by_cat = priced.by_cat
    dynamic = _add(*[by_cat[c] for c in CATEGORIES])
    times, barrier = priced.times, priced.barrier
    per_inf_s = None if times is None else times.sum(axis=1)
    static = None
    if cm.static_w_per_chip is not None and per_inf_s is not None:
        static = cm.static_w_per_chip * mapping.chips * per_inf_s
    total = _add(dynamic, static)        # an unknown static power leaves the total unknown, too
    layers = []
    for lc in counts.layers:
        e = priced.per_layer[lc.name]
        tot = _add(*e.values())
        layers.append({"name": lc.name, "energy_j": {k: _priced(v) for k, v in e.items()}, "total_j": _priced(tot)})
    ttd, undecided = decision_steps(readout, counts, output)
    latency: dict[str, Any] = {
        "model": cm.name, "timesteps": counts.timesteps, "barrier_s": barrier,
        "per_step_s": None if times is None else float(times.mean()),
        "per_step_max_s": None if times is None else float(times.max()),
        "per_inference_s": None if per_inf_s is None else float(per_inf_s.mean()),
        "per_inference_distribution_s": {} if per_inf_s is None else distribution(per_inf_s),
        "per_step_mean_s": None if times is None else times.mean(axis=0).tolist(),
        "time_to_decision": {
            "definition": "first timestep from which the decision on steps 1..t equals the decision on all T "
                          "steps, at every later step too; a tied top score (no output spike yet) is no "
                          "decision, and a sample still tied at T counts as needing all T steps",
            "steps": distribution(ttd),
            "s": {} if times is None else distribution(
                np.take_along_axis(np.cumsum(times, axis=1), (ttd - 1)[:, None], axis=1)[:, 0]),
            "final_by_step": _stable_curve(np.where(undecided, counts.timesteps + 1, ttd), counts.timesteps),
            "undecided_fraction": float(undecided.mean()),
        },
        **priced.latency_extra,
    }
    energy = {
        "model": cm.name, "title": cm.title, "source": cm.source, "file": cm.path, "caveats": cm.caveats,
        "unpriced": unpriced,
        "total_j": _priced(total), "dynamic_j": _priced(dynamic), "static_j": _priced(static),
        "breakdown_j": {**{c: _priced(v) for c, v in by_cat.items()}, "static": _priced(static)},
        "distribution_j": {} if total is None else distribution(total),
        "layers": layers, "cores": priced.cores,
        "traffic": priced.traffic,
        "input_messages": priced.input_messages,
        **priced.energy_extra,
    }
    return {"energy": energy, "latency": latency}


#: the models every report prices the same counts under, beside the one asked for (report.json energy_models)
COMPARED_MODELS = (DEFAULT_COST_MODEL, CALIBRATED_COST_MODEL)
TIMING = {"neuromorphic": "per step: the slowest core's operations and messages out, the longest route, and the "
                          "mesh barrier interpolated in tiles (docs/energy.md)",
          SANAFE_KIND: "SANA-FE's simple timing model: per step, the largest neuron- or message-processing time "
                       "of any core, plus the barrier looked up by mapped tiles (docs/energy.md)"}


def compared_models(primary: CostModel, names: tuple[str, ...] = COMPARED_MODELS) -> list[CostModel]:
    """``primary`` and the shipped models ``names`` (default: the Loihi 1 ones), each once (by name)."""
    out = {primary.name: primary}
    for name in names:
        if name not in out:
            out[name] = load_cost_model(name)
    return list(out.values())


def target_mismatch(cm: CostModel, target_name: str, chip: str) -> str | None:
    """A label when a shipped Loihi 1 table prices a network mapped for another chip (Loihi 2): allowed
    when asked for explicitly (``--cost-model loihi1-...``), never the default, and always said."""
    if cm.path == "(shipped)" and cm.name.startswith("loihi1-") and chip != "Loihi 1":
        return (f"{cm.name} holds Loihi 1 coefficients (14 nm, its synapse and neuron pipeline) and prices here a "
                f"network mapped for {chip} (--target {target_name}): these figures are Loihi 1's cost of these "
                f"counts, not a {chip} estimate. No per-operation {chip} table is public (docs/energy.md).")
    return None


#: What the report says for a target with no public per-operation energy table (Loihi 2).
UNPRICED_TARGET_NOTE = ("energy and latency per operation are not priced for {chip}: no per-operation table is "
                        "public (Intel publishes system-level measurements only, listed as measured context). The "
                        "counts (synaptic ops, neuron updates, spikes and messages) are exact for this mapping; "
                        "supply coefficients with --cost-model FILE (docs/energy.md).")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def energy_models(primary: str, priced: list[tuple[CostModel, dict[str, Any]]],
                  note: str | None = None) -> dict[str, Any]:
    """The same counts under each model, side by side: energy per inference, latency per step and per
    inference, and the calibrated model's figures over the pre-silicon model's."""
    models = {}
    for cm, est in priced:
        e, lat = est["energy"], est["latency"]
        models[cm.name] = {
            "title": cm.title, "source": cm.source, "kind": cm.kind, "file": cm.path,
            "timing": TIMING.get(cm.kind), "energy_j": e["total_j"], "dynamic_j": e["dynamic_j"],
            "static_j": e["static_j"], "breakdown_j": e["breakdown_j"], "latency_per_step_s": lat["per_step_s"],
            "latency_per_inference_s": lat["per_inference_s"], "barrier_s": lat["barrier_s"], "unpriced": e["unpriced"]}
    out: dict[str, Any] = {"primary": primary, "models": models}
    a, b = models.get(CALIBRATED_COST_MODEL), models.get(DEFAULT_COST_MODEL)
    if a is not None and b is not None:
        out["ratio"] = {"of": CALIBRATED_COST_MODEL, "to": DEFAULT_COST_MODEL,
                        **{k: _ratio(a[k], b[k]) for k in ("energy_j", "dynamic_j", "latency_per_step_s")}}
    out["note"] = note or ("the same bit-exact counts priced under each model: Davies et al. 2018's pre-silicon "
                           "per-operation figures with measured static power, and SANA-FE's silicon-calibrated event "
                           "model (Boyle et al. 2025), which has no static power (docs/energy.md)")
    return out


def activity_summary(result: HwSimResult) -> dict[str, Any]:
    """Counts per inference (averaged over the batch), per layer and in total."""
    b = result.batch
    layers = [{"name": a.name, "neurons": a.neurons, "synapses": a.synapses,
               "synops": float(a.synops.sum()) / b, "spikes": float(a.spikes.sum()) / b,
               "neuron_updates": float(a.updates.sum()) / b,
               "active_neuron_updates": float(a.active_updates.sum()) / b,
               "spikes_per_step": (a.spikes / b).tolist(),
               "synops_per_step": (a.synops / b).tolist()} for a in result.activity]
    return {"samples": b, "timesteps": result.timesteps, "layers": layers,
            "synops": sum(x["synops"] for x in layers), "spikes": sum(x["spikes"] for x in layers),
            "neuron_updates": sum(x["neuron_updates"] for x in layers)}


def activity_distribution(counts: DetailedCounts) -> dict[str, Any]:
    """Per-sample distributions of the per-inference counts, per layer and in total."""
    out: dict[str, Any] = {"layers": {}}
    tot = {"synops": 0, "spikes": 0, "active_neuron_updates": 0}
    for lc in counts.layers:
        per = {"synops": lc.synops.sum(axis=(1, 2)), "spikes": lc.spikes.sum(axis=(1, 2)),
               "active_neuron_updates": lc.active.sum(axis=(1, 2))}
        out["layers"][lc.name] = {k: distribution(v) for k, v in per.items()}
        for k in tot:
            tot[k] = tot[k] + per[k]
    out["total"] = {k: distribution(v) for k, v in tot.items()}
    return out


def ann_comparison(mapping: Mapping, activity: dict[str, Any], cm: CostModel) -> dict[str, Any]:
    """The same network as a dense ANN (one pass, every synapse a MAC) beside the SNN run on the same
    conventional hardware (every synaptic op an accumulate), compute-only and with memory, and the
    spike rate at which the two break even (docs/energy.md)."""
    e = cm.energy_j
    macs = float(sum(lm.synapses for lm in mapping.layers))
    synops, updates = float(activity["synops"]), float(activity["neuron_updates"])
    read = e["sram_read_64bit"]
    rows = {
        "ann_fp32": {"ops": macs, "compute_j": macs * e["mac_fp32"],
                     "with_memory_j": macs * e["mac_fp32"] + macs / 2 * read},
        "ann_int8": {"ops": macs, "compute_j": macs * e["mac_int8"],
                     "with_memory_j": macs * e["mac_int8"] + macs / 8 * read},
        "snn_fp32": {"ops": synops, "compute_j": synops * e["ac_fp32"],
                     "with_memory_j": synops * e["ac_fp32"] + synops / 2 * read + updates * 2 * read},
    }
    inputs_spikes = synops / macs if macs else 0.0
    return {"model": cm.name, "title": cm.title, "source": cm.source, "caveats": cm.caveats, "rows": rows,
            "synops_per_mac": inputs_spikes,
            "break_even_synops_per_mac_compute": e["mac_fp32"] / e["ac_fp32"],
            "note": "synops_per_mac is the mean number of spikes each synapse carries per inference (over T "
                    "steps); the SNN's compute beats the fp32 ANN's only below break_even_synops_per_mac_compute"}
