"""Human-readable rendering of report.json (terminal tables)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


from snnc.health import health_summary
from snnc.html_report import si as _si


#: Resource-table columns: (header, key in a layer's "use" of Mapping.to_json()).
_RESOURCE_COLUMNS = (("neurons/core", "neurons"), ("input axons/core", "input_axons"),
                     ("output axons/core", "output_axons"), ("synaptic words/core", "synapse_words"))


def _use_cell(use: dict[str, Any] | None) -> str:
    """'max (pct of limit)' for one resource of one layer; '-' where the mapping did not record it."""
    if not use:
        return "-"
    pct = f" ({use['max_fraction']:.0%})" if "max_fraction" in use else ""
    return f"{use['max']}{pct}"


def render_mapping(mapping: dict[str, Any], console: Console) -> None:
    """The resource table of ``Mapping.to_json()``: per layer the block shape, cores and the most any
    core of it uses of each per-core resource, with the share of the target's limit."""
    tgt = mapping.get("target") or {}
    where = f" onto {tgt['name']} ({tgt.get('system') or 'target system'})" if tgt else ""
    first = next((layer.get("use") for layer in mapping["layers"] if layer.get("use")), None) or {}
    columns = _RESOURCE_COLUMNS if not first or "synapse_words" in first else (
        *_RESOURCE_COLUMNS[:3], ("synapses/core (not checked)", "synapses"))
    t = Table(title=f"Mapping{where}: {mapping['cores']} cores on {mapping['chips']} chip(s); "
                    f"most used per core (% of limit)")
    for col in ("layer", "block (c,h,w)", "cores", *(c for c, _ in columns)):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for layer in mapping["layers"]:
        use = layer.get("use") or {}
        block = layer.get("block")
        t.add_row(layer["name"], "x".join(map(str, block)) if block else "dense", str(layer["cores"]),
                  *(_use_cell(use.get(k)) for _, k in columns))
    totals = (mapping.get("totals") or {}).get("use") or {}
    t.add_row("all cores", "", str(mapping["cores"]), *(_use_cell(totals.get(k)) for _, k in columns))
    console.print(t)
    if tgt and tgt.get("limits", {}).get("synapse_words_per_core") is None:
        limits = tgt.get("limits", {})
        console.print(f"Per-core limits: {limits.get('neurons_per_core')} neurons, "
                      f"{limits.get('input_axons_per_core')} input axons, {limits.get('output_axons_per_core')} "
                      f"output axons, synaptic memory not public (not checked); {limits.get('cores_per_chip')} cores "
                      f"per chip, {limits.get('max_chips')} chips (sources: report.json mapping.target.sources).",
                      highlight=False)
    elif tgt:
        limits = tgt.get("limits", {})
        console.print(f"Per-core limits: {limits.get('neurons_per_core')} neurons, "
                      f"{limits.get('input_axons_per_core')} input axons, {limits.get('output_axons_per_core')} "
                      f"output axons, {limits.get('synapse_words_per_core')} synaptic words; "
                      f"{limits.get('cores_per_chip')} cores per chip, {limits.get('max_chips')} chips "
                      f"(sources: report.json mapping.target.sources).", highlight=False)


def _limit_value(row: dict[str, Any]) -> str:
    v = row["value"]
    if v is None:
        return "not public"
    if isinstance(v, list):
        return " x ".join(f"{x:,}" for x in v)
    return f"{v:,}" if isinstance(v, int) else str(v)


def render_target(section: dict[str, Any] | None, console: Console) -> None:
    """report.json ``target_limits``: every limit of the target with its value, whether snnc checks it
    and its source, then the board the mapped chips fit."""
    if not section:
        return
    t = Table(title=f"Target limits: {section['name']} ({section['chip']}; system {section['system']})",
              caption="each limit's source: report.json target_limits, and the page")
    for col in ("limit", "value", "unit", "status"):
        t.add_column(col, justify="right" if col == "value" else "left", overflow="fold")
    for row in section["limits"]:
        t.add_row(row["name"], _limit_value(row), row["unit"], row["status"])
    console.print(t)
    b = section.get("board") or {}
    if b.get("fits"):
        console.print(f"Placement: {b['chips_used']} chip(s): fits {b['name']} ({b['chips']:,} chip(s); {b['note']}).",
                      highlight=False)
    elif b:
        console.print(f"Placement: {b['chips_used']} chip(s): {b['note']}.", highlight=False)


def render_energy_models(em: dict[str, Any] | None, console: Console) -> None:
    """The same counts priced under each Loihi 1 cost model (pre-silicon Davies 2018 and the
    silicon-calibrated SANA-FE figures), side by side (report.json energy_models)."""
    if not em:
        return
    t = Table(title="The same activity under each cost model (per inference)")
    for col in ("cost model", "dynamic", "static", "total", "latency per step"):
        t.add_column(col, justify="left" if col == "cost model" else "right")
    for name, m in em["models"].items():
        t.add_row(name + (" (primary)" if name == em["primary"] else ""), _si(m["dynamic_j"], "J"),
                  _si(m["static_j"], "J"), _si(m["energy_j"], "J"), _si(m["latency_per_step_s"], "s"))
    console.print(t)
    ratio = em.get("ratio") or {}
    if ratio.get("dynamic_j") is not None:
        console.print(f"{ratio['of']} / {ratio['to']}: dynamic energy x{ratio['dynamic_j']:.2f}, total x"
                      f"{ratio['energy_j']:.2f}, latency per step x{ratio['latency_per_step_s']:.2f} "
                      f"({em['note']})", highlight=False)


def render_numerics(numerics: dict[str, Any], console: Console) -> None:
    """Per layer: what quantization did to a float model's numbers, and how much of the 24-bit state
    the observed inputs used (snnc.compiler.numerics)."""
    t = Table(title=f"Numerics: quantization, and state observed on {numerics['samples']} samples")
    for col in ("layer", "weights clipped", "weights rounded", "vth (exact -> stored)", "peak |u|, |v| bits",
                "overflows", "Lava vs silicon"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for name, layer in numerics["layers"].items():
        q, st = layer.get("quantization"), layer["state"]
        if q is None:
            cells = ["-", "-", "-"]
        else:
            w, th = q["weights"], q.get("threshold")
            vth = f"{th['exact']:.6g} -> {th['stored']}" if th else "non-spiking"
            # a hardware-exact model computes with the stored integers: its float weights are latent
            cells = (["as trained", "as trained", vth] if q["in_model"] else
                     [f"{w['clipped']}/{w['count']}", f"{w['rounded']}/{w['count']}", vth])
        t.add_row(name, *cells, f"{st['bits_used']}/24", str(st["events"]), _silicon_cell(layer.get("silicon")))
    console.print(t)


def _silicon_cell(silicon: dict[str, Any] | None) -> str:
    """A layer's silicon-divergence verdict (snnc.hwsim.divergence) with the regimes it entered."""
    if not silicon:
        return "-"
    regimes = silicon.get("regimes") or []
    return silicon["verdict"] + (f" ({', '.join(regimes)})" if regimes else "")


def render(report: dict[str, Any], console: Console | None = None) -> None:
    """Print per-layer activity, energy, latency, mapping and verification, with the caveats."""
    con = console or Console()
    energy = {layer["name"]: layer for layer in report["energy"]["layers"]}
    cores = {m["name"]: m["cores"] for m in report["mapping"]["layers"]}
    act = report["activity"]
    t = Table(title=f"Per inference (mean of {act['samples']} samples, {act['timesteps']} timesteps)")
    for col in ("layer", "neurons", "synapses", "cores", "synops", "neuron updates", "spikes", "energy"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for layer in act["layers"]:
        n = layer["name"]
        t.add_row(n + ("*" if layer.get("recurrent") else ""), str(layer["neurons"]), str(layer["synapses"]), str(cores[n]), f"{layer['synops']:.0f}",
                  f"{layer['neuron_updates']:.0f}", f"{layer['spikes']:.1f}", _si(energy[n]["total_j"], "J"))
    t.add_row("total", "", "", str(report["mapping"]["cores"]), f"{act['synops']:.0f}",
              f"{act['neuron_updates']:.0f}", f"{act['spikes']:.1f}",
              _si(report["energy"].get("dynamic_j", report["energy"]["total_j"]), "J"))
    con.print(t)
    loops = [f"{x['name']} ({', '.join(x['recurrent'])})" for x in act["layers"] if x.get("recurrent")]
    if loops:
        con.print(f"* recurrent: synapses inside a cycle, a spike of step t acting at t+1: {'; '.join(loops)}",
                  highlight=False)
    lat, e = report["latency"], report["energy"]
    con.print(f"Energy model: [bold]{e['model']}[/] ({e['source']})", highlight=False)
    if "dynamic_j" in e:
        con.print(f"Energy per inference: {_si(e['dynamic_j'], 'J')} dynamic + {_si(e['static_j'], 'J')} static "
                  f"= {_si(e['total_j'], 'J')}", highlight=False)
    if e.get("target_mismatch"):
        con.print(f"[bold yellow]Cost model for another chip:[/] {escape(e['target_mismatch'])}", highlight=False)
    if e.get("not_priced_for_target"):
        con.print(f"[yellow]Not priced:[/] {escape(e['not_priced_for_target'])}", highlight=False)
    for m in e.get("measured_context") or []:
        con.print(f"  measured system-level context (not a per-operation model): {m['what']}: {m['value']} "
                  f"({m['source']})", highlight=False)
    if e.get("unpriced"):
        con.print(f"[yellow]Not priced[/] (unknown coefficients, never taken as zero): {', '.join(e['unpriced'])}; "
                  f"supply them with snn-report ARTIFACT --cost-model FILE.", highlight=False)
    render_energy_models(report.get("energy_models"), con)
    con.print(f"Latency: {_si(lat['per_step_s'], 's')} per timestep, {_si(lat['per_inference_s'], 's')} per "
              f"inference of {lat['timesteps']} steps; {report['mapping']['cores']} cores on "
              f"{report['mapping']['chips']} chip(s).", highlight=False)
    ttd = lat.get("time_to_decision")
    if ttd:
        secs = f", {_si(ttd['s']['mean'], 's')}" if ttd.get("s") else ""
        con.print(f"Time to decision: {ttd['steps']['mean']:.1f} steps mean{secs} (p95 {ttd['steps']['p95']:.0f} "
                  f"steps): the first step from which the output's decision no longer changes"
                  f"{'; ' + format(ttd['undecided_fraction'], '.0%') + ' still tied at T' if ttd.get('undecided_fraction') else ''}.",
                  highlight=False)
    cores = e.get("cores") or []
    if cores and cores[0].get("busy_s_per_step") is not None:
        busiest = max(cores, key=lambda c: c["busy_s_per_step"])
        con.print(f"Busiest core: {busiest['core']} ('{busiest['layer']}', chip {busiest['chip']}, tile "
                  f"({busiest['tile_x']}, {busiest['tile_y']})), {_si(busiest['busy_s_per_step'], 's')} per step "
                  f"(report.json energy.cores has every core).", highlight=False)
    render_mapping(report["mapping"], con)
    render_target(report.get("target_limits"), con)
    if "accuracy" in report:
        a = report["accuracy"]
        con.print(f"Accuracy ({a['engine']}, {a['samples']} test samples): {a['value']:.1%}")
    if report.get("numerics"):
        render_numerics(report["numerics"], con)
        silicon = report["numerics"].get("silicon")
        if silicon and silicon["verdict"] == "unchecked":
            con.print(f"Lava vs silicon: unchecked: {silicon.get('reason', '')} (docs/reliability.md).",
                      highlight=False)
        elif silicon:
            con.print(f"Lava vs silicon-tested semantics (nengo-loihi's emulator): {silicon['verdict']}"
                      + (f" in {', '.join(silicon['layers_diverging'])}: see the silicon_divergence findings"
                         if silicon["layers_diverging"] else " on every layer: no regime where they differ was entered")
                      + " (docs/reliability.md).", highlight=False)
    nb = report.get("neurobench")
    if nb:
        m, ops = nb["metrics"], nb["metrics"]["SynapticOperations"]
        mem = m.get("MembraneUpdates")
        con.print(f"NeuroBench ({nb['source']['package'].split(' (')[0]}; per sample): footprint {m['Footprint']:,} B, "
                  f"{m['ParameterCount']:,} parameters, connection sparsity {m['ConnectionSparsity']:.4f}, activation "
                  f"sparsity {m['ActivationSparsity']:.4f}, synaptic ops {ops['Effective_ACs']:,.1f} ACs + "
                  f"{ops['Effective_MACs']:,.1f} MACs (dense {ops['Dense']:,.0f}), membrane updates "
                  f"{'not computed' if mem is None else format(mem, ',.1f')} (report.json neurobench).", highlight=False)
    agree = (report.get("quantization") or {}).get("float_agreement")
    if agree:
        worst = min(agree, key=agree.get)
        con.print(f"Quantization: compiled spikes equal the float model's on "
                  f"{min(agree.values()):.2%} of (sample, step, neuron) in the worst layer ('{worst}'); "
                  f"see report.json quantization.float_agreement.", highlight=False)
    training = report.get("training")
    if training and training.get("epochs"):
        last = training["epochs"][-1]
        test = last.get("test_accuracy")
        con.print(f"Training ({training['log']}): {len(training['epochs'])} epochs; last: loss "
                  f"{_num(last.get('loss'), '.4f')}, train accuracy {_num(last.get('train_accuracy'), '.1%')}, "
                  f"test accuracy {_num(test, '.1%')}; report.html draws the curves.", highlight=False)
    unwell = health_summary(report)
    v = report["verification"]
    if v.get("samples"):
        status = "[green]PASS[/]" if v["passed"] else "[red]FAIL[/]"
        but = ""
        if v["passed"] and unwell:      # engines agreeing on a dead network is no 'all is well'
            status, but = "[yellow]PASS[/]", f" [bold red]The engines agree, but {unwell}: see the findings below.[/]"
        pairs = ", ".join(f"{p}: {sum(per.values())}" for p, per in v["mismatches"].items())
        con.print(f"Verification {status}: {v['samples']} samples x {v['timesteps']} steps, engines "
                  f"{', '.join(v['engines'])}; mismatched spikes {pairs}.{but}", highlight=False)
        for engine, why in (v.get("not_run") or {}).items():
            con.print(f"  {engine}: not run: {why}", highlight=False)
        for engine, x in (v.get("expected_mismatches") or {}).items():
            con.print(f"  {engine}: {x['mismatches']} mismatched spikes, expected: {x['reason']}", highlight=False)
    else:
        con.print("Verification: not run (use --verify N)." + (f" [bold red]Health: {unwell}: see the findings "
                                                               f"below.[/]" if unwell else ""), highlight=False)
    con.print("Caveats (energy and latency are estimates, bit-exact to Lava's Loihi fixed-point models):")
    for c in report["energy"]["caveats"]:
        con.print(f"  - {c}", highlight=False)
    render_findings(report, con)


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def render_findings(report: dict[str, Any], console: Console) -> None:
    """Every finding, health first (a network that does not work), last in the output so it is seen."""
    found = report.get("findings") or []
    if not found:
        return
    unwell = [f for f in found if f.get("health")]
    console.print(f"[bold]Findings[/] ({len(found)}; report.json findings"
                  f"{', snn-compile --strict refuses health and numerical ones' if unwell else ''}):")
    for f in sorted(found, key=lambda f: not f.get("health")):
        tag = "[bold red]health[/]" if f.get("health") else "[yellow]warning[/]"
        console.print(f"{tag} " + escape(f"[{f['rule']}] {f['message']}"), highlight=False)
