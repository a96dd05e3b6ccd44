"""report.html: the report as one self-contained page (inline SVG charts, no script, no network).

The page reads report.json's sections and the raw counts they were priced from (spike raster,
activity over time, core map), so it shows the same numbers as ``snn-report`` prints.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:   # the page module itself needs neither torch nor the counting code (snnc.report imports it)
    from snnc.hwsim.counts import DetailedCounts

RASTER_NEURONS = 256    # neurons drawn per layer in the raster (evenly spaced if more)
CORE_TABLE_ROWS = 512   # per-core rows in the table (all cores stay in report.json)


def _svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG with real text (searchable, selectable)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "snnc", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def _integer_steps(ax: Any) -> None:
    """Timesteps are integers: no 2.5 on the axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def raster_svg(counts: DetailedCounts, inputs: np.ndarray, sample: int = 0) -> str:
    """Spike raster of one sample: the input and every layer stacked, time on the x axis."""
    plt = _plt()
    trains = [("input", inputs[sample] != 0)] + [(n, s[sample]) for n, s in counts.spikes.items()]
    fig, axes = plt.subplots(len(trains), 1, figsize=(8, 1.1 + 0.9 * len(trains)), sharex=True, squeeze=False)
    for ax, (name, tr) in zip(axes[:, 0], trains):
        n = tr.shape[1]
        keep = np.unique(np.linspace(0, n - 1, min(n, RASTER_NEURONS)).astype(int))
        t, i = np.nonzero(tr[:, keep])
        ax.scatter(t + 1, i, s=2, marker="|", color="black", linewidths=0.8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_ylim(-1, len(keep))
        ax.set_yticks([])
        shown = f"{len(keep)} of {n}" if len(keep) < n else f"{n}"
        ax.text(1.0, 1.0, f"{shown} neurons, {int(tr.sum())} spikes", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7)
    axes[-1, 0].set_xlabel("timestep")
    axes[-1, 0].set_xlim(0.5, counts.timesteps + 0.5)
    _integer_steps(axes[-1, 0])
    return _svg(fig)


def activity_svg(report: dict[str, Any]) -> str:
    """Mean spikes per neuron per step of every layer over time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    for layer in report["activity"]["layers"]:
        rate = np.asarray(layer["spikes_per_step"]) / max(1, layer["neurons"])
        ax.plot(np.arange(1, rate.size + 1), rate, label=layer["name"], lw=1.4)
    ax.set_xlabel("timestep")
    _integer_steps(ax)
    ax.set_ylabel("spikes per neuron")
    ax.legend(frameon=False, fontsize=7, ncol=4)
    return _svg(fig)


def energy_svg(report: dict[str, Any]) -> str | None:
    """Energy per inference of every layer, stacked by category; None when nothing is priced."""
    layers = report["energy"]["layers"]
    cats = [c for c in (layers[0]["energy_j"] if layers else {})
            if any(layer["energy_j"][c] for layer in layers)]
    if not cats:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.4 * len(layers)))
    left = np.zeros(len(layers))
    names = [layer["name"] for layer in layers]
    for c in cats:
        vals = np.array([(layer["energy_j"][c] or 0.0) * 1e9 for layer in layers])
        ax.barh(names, vals, left=left, label=c.replace("_", " "))
        left += vals
    ax.invert_yaxis()
    ax.set_xlabel("nJ per inference (dynamic)")
    ax.legend(frameon=False, fontsize=7, ncol=len(cats), loc="lower right")
    return _svg(fig)


def latency_svg(report: dict[str, Any]) -> str | None:
    """Step time over the run and the share of samples whose decision is final by each step."""
    lat = report["latency"]
    if lat.get("per_step_mean_s") is None:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.6))
    steps = np.arange(1, lat["timesteps"] + 1)
    a1.plot(steps, np.asarray(lat["per_step_mean_s"]) * 1e6, color="tab:blue")
    a1.set_xlabel("timestep")
    _integer_steps(a1)
    a1.set_ylabel("µs per step (mean)")
    a2.step(steps, lat["time_to_decision"]["final_by_step"], where="post", color="tab:green")
    a2.set_ylim(0, 1.02)
    a2.set_xlabel("timestep")
    _integer_steps(a2)
    a2.set_ylabel("decisions final")
    return _svg(fig)


def core_map_svg(report: dict[str, Any], cores_per_tile: int, mesh: tuple[int, int]) -> str:
    """Every chip's tile grid with its cores, coloured by layer, shaded by busy time per step."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    cores = report["energy"]["cores"]
    chips = max((c["chip"] for c in cores), default=0) + 1
    shown = min(chips, 4)
    layer_names = list(dict.fromkeys(c["layer"] for c in cores))
    colours = plt.get_cmap("tab10")
    busy = [c["busy_s_per_step"] or 0.0 for c in cores]
    top = max(busy) or 1.0
    w, h = mesh
    fig, axes = plt.subplots(1, shown, figsize=(4.2 * shown, 2.6), squeeze=False)
    side = int(np.ceil(np.sqrt(cores_per_tile)))
    for chip, ax in enumerate(axes[0]):
        for tx in range(w):
            for ty in range(h):
                ax.add_patch(Rectangle((tx, ty), 0.96, 0.96, fill=False, lw=0.6, ec="#999"))
        for c, b in zip(cores, busy):
            if c["chip"] != chip:
                continue
            k = c["core"] % cores_per_tile
            x = c["tile_x"] + 0.06 + (k % side) * 0.44
            y = c["tile_y"] + 0.06 + (k // side) * 0.44
            ax.add_patch(Rectangle((x, y), 0.4, 0.4, color=colours(layer_names.index(c["layer"]) % 10),
                                   alpha=0.35 + 0.65 * b / top))
        ax.set_xlim(-0.1, w)
        ax.set_ylim(h, -0.1)
        ax.set_aspect("equal")
        ax.set_xticks(np.arange(w) + 0.48, [str(i) for i in range(w)])
        ax.set_yticks(np.arange(h) + 0.48, [str(i) for i in range(h)])
        ax.set_title(f"chip {chip}", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(layer_names))]
    fig.legend(handles, layer_names, frameon=False, fontsize=7, ncol=min(6, len(layer_names)),
               loc="lower center", bbox_to_anchor=(0.5, -0.08))
    note = f" (first {shown} of {chips} chips)" if shown < chips else ""
    fig.suptitle(f"Tiles (east-west x north-south), {cores_per_tile} cores each; darker = busier{note}",
                 fontsize=9)
    return _svg(fig)


def training_svg(report: dict[str, Any]) -> str | None:
    """Loss, and train and test accuracy, per epoch of the training log (report.json 'training')."""
    epochs = (report.get("training") or {}).get("epochs") or []
    if not epochs:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.6))
    x = [e["epoch"] for e in epochs]

    def series(key: str) -> list[float]:
        return [np.nan if e.get(key) is None else e[key] for e in epochs]

    marker = "o" if len(x) < 30 else None
    a1.plot(x, series("loss"), color="tab:red", marker=marker, ms=3)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.xaxis.set_major_locator(MaxNLocator(integer=True))
    a2.plot(x, 100 * np.asarray(series("train_accuracy")), label="train", color="tab:blue", marker=marker, ms=3)
    a2.plot(x, 100 * np.asarray(series("test_accuracy")), label="test", color="tab:green", marker=marker, ms=3)
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.set_ylim(0, 101)
    a2.xaxis.set_major_locator(MaxNLocator(integer=True))
    a2.legend(frameon=False, fontsize=7)
    return _svg(fig)


CONFUSION_LABELS = 20   # counts written into the cells up to this many classes


def confusion_svg(report: dict[str, Any]) -> str | None:
    """The compiled network's decisions (hwsim) against the labels of the report's samples; vector
    cells (pcolormesh), no embedded image."""
    conf = report.get("confusion")
    if not conf:
        return None
    plt = _plt()
    m = np.asarray(conf["matrix"], dtype=np.int64)
    k = m.shape[0]
    side = min(7.0, 2.2 + 0.3 * k)
    fig, ax = plt.subplots(figsize=(side + 0.8, side))
    mesh = ax.pcolormesh(np.arange(k + 1) - 0.5, np.arange(k + 1) - 0.5, m, cmap="Blues",
                         vmin=0, vmax=max(1, int(m.max())), edgecolors="#eee", linewidth=0.3)
    ax.set_xlim(-0.5, k - 0.5)
    ax.set_ylim(k - 0.5, -0.5)
    ax.set_aspect("equal")
    step = max(1, k // 20)
    ax.set_xticks(range(0, k, step))
    ax.set_yticks(range(0, k, step))
    ax.set_xlabel("decision (hwsim)")
    ax.set_ylabel("true label")
    if k <= CONFUSION_LABELS:
        top = max(1, int(m.max()))
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] > top / 2 else "black")
    from matplotlib.ticker import MaxNLocator

    top = max(1, int(m.max()))    # few colour levels: matplotlib rasterizes a colorbar of 50 or more
    bar = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label="samples",
                       boundaries=np.linspace(0, top, min(top, 10) + 1))
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(fig)


def si(x: float | None, unit: str) -> str:
    """3 significant digits with an SI prefix; 'not priced' for an unknown."""
    if x is None:
        return "not priced"
    if x == 0:
        return f"0 {unit}"
    for factor, prefix in ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")):
        if abs(x) < factor * 1000:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    """The page's jinja2 template, compiled once per process."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("snnc", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    env.filters["si"] = si
    return env.get_template("report.html.j2")


def preload() -> None:
    """Load what the page needs (matplotlib, fonts, the compiled template) ahead of :func:`write_page`
    (snnc.background's helper does this while its parent compiles)."""
    _template()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1, 1))      # fonts and the SVG backend loaded once, here
    ax.set_xlabel("t")
    _svg(fig)


def write_page(path: Path, report: dict[str, Any], counts: DetailedCounts, inputs: np.ndarray, *,
               title: str, cores_per_tile: int, mesh: tuple[int, int]) -> None:
    """report.html at ``path`` (:func:`render_html`)."""
    path.write_text(render_html(report, counts, inputs, title=title, cores_per_tile=cores_per_tile, mesh=mesh),
                    encoding="utf-8")


def render_html(report: dict[str, Any], counts: DetailedCounts, inputs: np.ndarray, *,
                title: str, cores_per_tile: int, mesh: tuple[int, int]) -> str:
    """The whole page as one string (no timestamp: the same artifact gives the same bytes)."""
    from snnc.health import health_summary

    charts = {"raster": raster_svg(counts, inputs), "activity": activity_svg(report),
              "energy": energy_svg(report), "latency": latency_svg(report),
              "core_map": core_map_svg(report, cores_per_tile, mesh), "training": training_svg(report),
              "confusion": confusion_svg(report)}
    mapping_cores = {m["name"]: m["cores"] for m in report["mapping"]["layers"]}
    energy_by_layer = {e["name"]: e for e in report["energy"]["layers"]}
    return _template().render(
        r=report, title=title, charts=charts, cores_of=mapping_cores, energy_of=energy_by_layer,
        unwell=health_summary(report), findings=sorted(report.get("findings") or [], key=lambda f: not f.get("health")),
        core_rows=report["energy"]["cores"][:CORE_TABLE_ROWS], core_rows_total=len(report["energy"]["cores"]))
