"""The speed study's headline, interpretation and Markdown section."""

from __future__ import annotations

from .. import harness as H
from .settings import TARGETS

def headline(rows: list[dict]) -> dict:
    it = [r for r in rows if r["part"] == "distill_iteration" and r["variant"] == "haba"]
    ep = [r for r in rows if r["part"] == "train_epoch" and r["variant"] == "haba-online"]
    co = [r for r in rows if r["part"] == "compose" and r["method"].startswith("per sample, grad")]
    worst_it = max(it, key=lambda r: r["ratio_vs_plain"]) if it else None
    worst_ep = max(ep, key=lambda r: r["ratio_vs_plain"]) if ep else None
    worst_co = min(co, key=lambda r: r["speedup_of_batched"]) if co else None
    out = {}
    if worst_it:
        out["haba_iteration_ratio"] = {
            "worst": worst_it["ratio_vs_plain"],
            "where": f"{worst_it['shape']} {worst_it['objective']} IPC {worst_it['ipc']} batch_real {worst_it['batch_real']}",
            "per_row": {f"{r['shape']} {r['objective']} IPC {r['ipc']} batch_real {r['batch_real']}":
                        round(r["ratio_vs_plain"], 3) for r in it},
            "target_max": TARGETS["haba_iteration_ratio_max"],
            "met_everywhere": all(r["ratio_vs_plain"] <= TARGETS["haba_iteration_ratio_max"] for r in it)}
    if worst_ep:
        out["online_overhead"] = {
            "worst": worst_ep["ratio_vs_plain"], "where": f"{worst_ep['shape']} IPC {worst_ep['ipc']}",
            "target_max": TARGETS["online_overhead_max"],
            "met_everywhere": all(r["ratio_vs_plain"] <= TARGETS["online_overhead_max"] for r in ep)}
    if worst_co:
        out["batched_compose_speedup"] = {
            "worst": worst_co["speedup_of_batched"], "where": f"{worst_co['shape']} IPC {worst_co['ipc']}",
            "target_min": TARGETS["batched_compose_speedup_min"],
            "met_everywhere": all(r["speedup_of_batched"] >= TARGETS["batched_compose_speedup_min"] for r in co)}
    return out


ANALYSIS = """\
**Where the time goes (profiler).** {profile_summary}

{notes}
"""

def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _span(values: list[float], fmt: str = "{:.2f}") -> str:
    values = sorted(values)
    if not values:
        return "–"
    return fmt.format(values[0]) if len(values) == 1 or fmt.format(values[0]) == fmt.format(values[-1]) else \
        f"{fmt.format(values[0])}–{fmt.format(values[-1])}"


def notes(rows: list[dict], meta: dict, prof: list[dict]) -> str:
    """The interpretation under the tables; numbers are taken from this run's rows."""
    s = meta["settings"]
    br = s["batch_real"]
    it = [r for r in rows if r["part"] == "distill_iteration"]
    big = max(s["ipcs"]) if s["ipcs"] else None
    out = ["*Reading the numbers.*", ""]
    comp = [p["share_pct"] for pr in prof for p in pr["phases"] if p["phase"].startswith("①")
            and pr["target"]["parameterization"] == "haba"]
    lean = [r["ratio_vs_plain"] for r in it if r["variant"] == "haba, no adversary, 1 h/step"]
    out.append(f"* **The factorization itself is cheap.** Composing the images (① in the profiles) takes "
               f"{_span(comp)}% of a haba iteration, and a haba DM iteration without the adversary and with one "
               f"hallucinator per step (as many composed images as bases) runs at {_span(lean)}× plain.")
    dm = {v: _find(it, shape=next(iter(s["shapes"])), objective="dm", ipc=big, batch_real=br, variant=v)
          for v in ("haba", "haba, no adversary", "haba, no adversary, 1 h/step")}
    if all(dm.values()):
        out.append(
            f"* **What makes a haba iteration slower is two design choices of the method, not the composition.** "
            f"(a) Every basis goes through `hallucinators_per_step` = 2 hallucinators per iteration, so at IPC {big} "
            f"L_DD sees {dm['haba']['images_per_step']} composed images where plain sees "
            f"{_find(it, objective='dm', ipc=big, batch_real=br, variant='plain')['images_per_step']} (MTT now "
            f"recomposes each unrolled step, one hallucination per basis, as the paper's code; its `pairs` row "
            f"unrolls over all the pairs and pays for them). (b) The adversarial contrastive "
            f"constraint runs the adversary (the same ConvNet) forward and backward over those images twice per "
            f"iteration: for L_cos (gradients to the images) and for its own update (L_con + L_task). On DM "
            f"({next(iter(s['shapes']))}, IPC {big}, `batch_real` {br}) the ratio to plain goes "
            f"{dm['haba, no adversary, 1 h/step']['ratio_vs_plain']:.2f}× → "
            f"{dm['haba, no adversary']['ratio_vs_plain']:.2f}× with 2 hallucinators per step → "
            f"{dm['haba']['ratio_vs_plain']:.2f}× with the adversary, and the peak memory "
            f"{fmt_b(dm['haba, no adversary']['peak_bytes'])} → {fmt_b(dm['haba']['peak_bytes'])}. Knobs for users: "
            f"`hallucinators_per_step=1`, `lambda_cos=lambda_con=lambda_task=0` (the paper's Tab. 4 ablation). "
            f"At IPC 2 (one basis per class) none of this matters: every objective is within "
            f"{max([r['ratio_vs_plain'] for r in it if r['variant'] == 'haba' and r['ipc'] == min(s['ipcs'])] or [1]):.2f}× of plain.")
    for shape, objective, ipc, b in s.get("batch_real_checks", ()):
        hi = _find(it, shape=shape, objective=objective, ipc=ipc, batch_real=b, variant="haba")
        lo = _find(it, shape=shape, objective=objective, ipc=ipc, batch_real=br, variant="haba")
        if hi and lo:
            out.append(f"* **The real batch dilutes the overhead**: with the papers' `batch_real` {b} the {objective} "
                       f"ratio at IPC {ipc} is {hi['ratio_vs_plain']:.2f}× instead of {lo['ratio_vs_plain']:.2f}× with our "
                       f"{br}; the `batch_real` {br} rows are upper bounds for the papers' settings.")
    ep = [r for r in rows if r["part"] == "train_epoch" and r["variant"] == "haba-online"]
    if ep:
        share = [100 * r["sample_epoch_ms"] / r["mean"] for r in ep]
        out.append(f"* **Downstream training** with online composition runs at {_span([r['ratio_vs_plain'] for r in ep])}× "
                   f"plain tensors of the same count; the only extra work, composing the epoch (`sample_epoch`), is "
                   f"{_span(share, '{:.1f}')}% of an epoch, so deviations beyond that are load noise (see the ± and "
                   f"`load` columns). Materializing the |H|·|B| images once buys nothing measurable and costs "
                   f"|H|× the memory for the images: online composition is the right default.")
    co = [r for r in rows if r["part"] == "compose" and r["method"].startswith("per sample, grad")]
    if co:
        per = "; ".join(f"{r['shape']} IPC {r['ipc']}: {r['speedup_of_batched']:.1f}×" for r in co)
        out.append(
            "* **Composition micro-benchmark** (" + per + "). On CPU a hallucinator's 3×3 convolutions over "
            "3 channels cost about the same per image batched or not (~9 µs per 32×32 image either way: oneDNN "
            "has nothing to vectorise over with so few channels), so batching removes only per-call overhead; "
            "with 1-channel MNIST-like bases that overhead dominates and the target is met, with 3-channel "
            "CIFAR-like ones it is not. On a GPU (an H200, session 9) batching is 82–460× faster than per "
            "sample (BENCHMARKS.md, issue 19 section). One grouped convolution per layer with per-sample weights gathered from the bank "
            "(`HallucinatorBank.grouped`, issue 19) gives the same tensors; it is the path off CPU (no Python loop, "
            "no host synchronisation) but on CPU it is no faster than one call per hallucinator from ~100 images "
            "(BENCHMARKS.md, issue 19 section), so CPU keeps the loop; turning oneDNN off did not help either.")
    th = [r for r in rows if r["part"] == "threads"]
    if len(th) > 1:
        one = next(r for r in th if r["threads"] == 1)
        many = next(r for r in th if r["threads"] != 1)
        per_seed = ", ".join(f"{m / o:.2f}×" for o, m in zip(one["values"], many["values"]))
        out.append(f"* **What we changed**: the harness runs torch with one intra-op thread by default (`--threads 1`). "
                   f"In part 0, {many['threads']} threads vs 1 took {per_seed} the time, seed by seed: faster while "
                   f"the machine is idle, several times slower as soon as another job competes for the cores "
                   f"(OpenMP threads spin-wait for each other). With other agents' jobs running (load 7–9), "
                   f"2 threads made the width-128 DM iteration 2–3× slower and the tiny `--quick` settings "
                   f"2× to over 100× slower.")
    return "\n".join(out)


def fmt_b(n: float | None) -> str:
    return H.fmt_bytes(n)


def render_markdown(rows: list[dict], meta: dict, prof: list[dict] | dict | None) -> str:
    if isinstance(prof, dict):
        prof = [prof]
    s = meta["settings"]
    info = meta["machine"]
    for r in rows:
        if r.get("peak_bytes") is not None:
            r["peak_h"] = H.fmt_bytes(r["peak_bytes"])
        if r.get("shape") in s["shapes"]:
            r["data"] = f"{r['shape']} " + "×".join(str(v) for v in s["shapes"][r["shape"]])
    lines = ["## Speed", "",
             f"*{meta['date']}* · machine: {H.machine_line(info)} · device `{info['device']}`",
             "", f"Command: `{meta['command']}` (from the repo root with PYTHONPATH=.; "
             f"{'niceness ' + str(info['niceness']) if info.get('niceness') else 'not niced'})", "",
             f"Load average (1/5/15 min) at start {tuple(meta['load_start'])}, at end {tuple(meta['load_end'])}; "
             f"the machine's {info['cpu_cores_usable']} cores were shared with other jobs, so absolute times are "
             f"inflated and noisy — the `load` column is the mean 1-min load while each row was measured; compare "
             f"the paired ratios (haba and plain measured back-to-back per seed). Wall time of the study: "
             f"{meta['wall_minutes']:.1f} min.", "",
             f"Settings: synthetic random data (10 classes, {s['per_class']} images per class; "
             + ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in s["shapes"].items())
             + f"), ConvNet width {s['net_width']} depth {s['net_depth']} with instance norm "
             f"{'(the standard distillation network)' if (s['net_width'], s['net_depth']) == (128, 3) else '(quick mode)'}"
             f", {len(meta['seeds'])} seeds; each seed builds fresh data, synthetic set and networks and runs "
             f"1 warm-up (discarded) + {s['timed_iterations']} timed iteration(s) ({s.get('scaling_timed_iterations', 1)} in "
             f"parts 0 and 4). Smaller than the papers to fit "
             f"≤ 60 min on 2 CPU cores: `batch_real` {s['batch_real']} real images per class (papers 256), "
             f"DC/DSA inner loop {s['dc_inner']} (paper 50; outer loop {s['dc_outer']}), MTT "
             f"{s['mtt_syn_steps']} unrolled steps (MTT code: 30–80) on a random "
             f"1-expert trajectory (MTT's cost does not depend on the trajectory values). Budgets: the toolkit's "
             f"default `exact` rule ({budget_text(rows)}), other knobs at their defaults "
             f"(`hallucinators_per_step` 2, adversary on). Stored bytes count bases + hallucinators "
             f"(+ MTT's learned lr) as float32; IPC-eq = stored numbers / (10·c·h·w).", ""]

    hl = meta["headline"]
    lines += ["### Targets", "",
              "| target | measured (worst case) | where | met |", "|---|---|---|---|"]
    if "haba_iteration_ratio" in hl:
        h = hl["haba_iteration_ratio"]
        lines.append(f"| haba iteration ≤ {h['target_max']}× plain (same objective, same IPC) | {h['worst']:.2f}× | "
                     f"{h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")
    if "online_overhead" in hl:
        h = hl["online_overhead"]
        lines.append(f"| online composition epoch ≤ {h['target_max']}× plain tensors of the same count | "
                     f"{h['worst']:.3f}× | {h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")
    if "batched_compose_speedup" in hl:
        h = hl["batched_compose_speedup"]
        lines.append(f"| batched no-grad composition ≥ {h['target_min']}× faster than per-sample with grad | "
                     f"{h['worst']:.1f}× | {h['where']} | {'yes' if h['met_everywhere'] else 'no'} |")

    if "haba_iteration_ratio" in hl:
        lines += ["", "haba / plain iteration time per row: " + "; ".join(
            f"{k.replace(' batch_real ' + str(s['batch_real']), '')}: {v:.2f}×"
            for k, v in hl["haba_iteration_ratio"]["per_row"].items()) + "."]
    th_rows = [r for r in rows if r["part"] == "threads"]
    if th_rows:
        lines += ["", "### 0. CPU threads (why the study runs with `--threads 1`)", "",
                  "The same DM haba iteration with 1 torch thread and with one thread per core, back to back per "
                  "seed. On a CPU shared with other jobs, OpenMP threads spin-wait for each other and lose; this "
                  "row decides the harness default (`--threads 1`).", "",
                  H.markdown_table(th_rows, [("data", "data"), ("objective", "objective"), ("variant", "param"),
                                             ("ipc", "IPC budget"), ("threads", "threads"),
                                             ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                             ("value", "ms / iteration"), ("ratio_value", "vs 1 thread"),
                                             ("load", "load")])]
    it_rows = [r for r in rows if r["part"] == "distill_iteration"]
    lines += ["", "### 1. Distillation iteration time per objective (and 3. peak memory)", "",
              "`images/step` = composed images through L_DD per iteration (MTT: per unrolled step; its `haba` row "
              "composes each step's bases through one random hallucinator each, the same work per step as the "
              "paper's reference code, and `pairs` is the toolkit's default before issue 19). Times are CPU "
              "seconds of the process on CPU (wall seconds on CUDA). Peak memory = growth of the "
              f"resident set during the timed iterations ({it_rows[0]['peak_method'] if it_rows else ''}).", "",
              H.markdown_table(it_rows, [("data", "data"), ("objective", "objective"), ("variant", "param"),
                                         ("ipc", "IPC budget"), ("batch_real", "batch_real"), ("bpc", "BPC"),
                                         ("hallucinators", "|H|"), ("images_per_step", "images/step"),
                                         ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                         ("value", "ms / iteration"), ("it_per_s", "it/s"),
                                         ("ratio_value", "haba / plain"), ("peak_h", "peak memory"),
                                         ("load", "load")])]
    ep_rows = [r for r in rows if r["part"] == "train_epoch"]
    lines += [] if not ep_rows else ["", "### 2. Downstream training epoch: online composition vs plain tensors (and 3. peak memory)", "",
              f"One epoch of `train_on_synthetic` (SGD, batch 256, DSA on), ConvNet width {s['net_width']}, "
              f"{s['eval_epochs']} timed epochs per seed after a warm-up epoch. `plain` holds as many images as "
              "the haba set has bases (equal count per epoch; it stores fewer bytes, shown). `haba-online` "
              "composes every basis through a random hallucinator each epoch (no grad, batched); "
              "`haba-materialized` composes all |H|·|B| images once and indexes them each epoch. "
              "`sample_epoch` = the composition step alone.", "",
              H.markdown_table(ep_rows, [("data", "data"), ("ipc", "IPC budget"), ("variant", "variant"),
                                         ("images_per_epoch", "images/epoch"), ("stored_bytes", "stored bytes"),
                                         ("ipc_equivalent", "IPC-eq"), ("value", "ms / epoch"),
                                         ("ratio_value", "vs plain"), ("sample_epoch_ms", "sample_epoch ms"),
                                         ("peak_h", "peak memory"), ("note", "note"), ("load", "load")])]
    mem_rows = []
    for r in it_rows:
        if r["variant"] != "plain":
            p = next(x for x in it_rows if x["variant"] == "plain" and all(
                x[k] == r[k] for k in ("shape", "objective", "ipc", "batch_real")))
            mem_rows.append({"what": f"distill iteration, {r['objective']}, {r['variant']}"
                             + (f", batch_real {r['batch_real']}" if r["batch_real"] != s["batch_real"] else ""),
                             "data": r["data"], "ipc": r["ipc"],
                             "plain": H.fmt_bytes(p["peak_bytes"]), "haba": H.fmt_bytes(r["peak_bytes"]),
                             "ratio": (r["peak_bytes"] / p["peak_bytes"]) if p["peak_bytes"] else None,
                             "plain_bytes": p["stored_bytes"], "haba_bytes": r["stored_bytes"]})
    for r in ep_rows:
        if r["variant"] != "plain":
            p = next(x for x in ep_rows if x["variant"] == "plain" and x["shape"] == r["shape"] and x["ipc"] == r["ipc"])
            mem_rows.append({"what": f"train epoch, {r['variant']}", "data": r["data"], "ipc": r["ipc"],
                             "plain": H.fmt_bytes(p["peak_bytes"]), "haba": H.fmt_bytes(r["peak_bytes"]),
                             "ratio": (r["peak_bytes"] / p["peak_bytes"]) if p["peak_bytes"] else None,
                             "plain_bytes": p["stored_bytes"], "haba_bytes": r["stored_bytes"]})
    lines += ["", "### 3. Peak memory, haba vs plain", "",
              "Mean over seeds of the peak extra memory (CPU: resident-set growth, see `benchmarks/harness.py`; "
              "CUDA: `max_memory_allocated`). Small numbers are dominated by allocator effects.", "",
              H.markdown_table(mem_rows, [("what", "measurement"), ("data", "data"), ("ipc", "IPC budget"),
                                          ("plain_bytes", "plain stored bytes"), ("haba_bytes", "haba stored bytes"),
                                          ("plain", "plain peak"), ("haba", "haba peak"), ("ratio", "haba / plain")])]
    sc_rows = [r for r in rows if r["part"] == "scaling"]
    if sc_rows:
        b0, h0, z0 = s["scaling_base"]
        lines += ["", "### 4. Scaling of the haba DM iteration", "",
                  f"One factor at a time around BPC {b0}, |H| {h0}, image 3×{z0}×{z0} (random CIFAR-like data, "
                  f"explicit BPC rather than an IPC budget, DM with `batch_real` {s['batch_real']}, adversary on). "
                  f"`relative` = time / time at the base point. Each iteration composes every basis through "
                  f"`hallucinators_per_step` = min(2, |H|) hallucinators, so beyond 2 the number of hallucinators "
                  f"only adds stored bytes, not time; what drives the cost is images/step = BPC × 10 × that, "
                  f"and the image size." + (" The `(all per step)` rows compose every hallucinator each iteration."
                                           if s["scaling_all_h"] else ""), "",
                  H.markdown_table(sc_rows, [("varied", "varied"), ("shape", "image"), ("bpc", "BPC"),
                                             ("hallucinators", "|H|"), ("hallucinators_per_step", "|H| per step"),
                                             ("images_per_step", "images/step"), ("stored_bytes", "stored bytes"),
                                             ("ipc_equivalent", "IPC-eq"), ("value", "ms / iteration"),
                                             ("relative", "relative"), ("peak_h", "peak memory"), ("load", "load")])]
    co_rows = [r for r in rows if r["part"] == "compose"]
    lines += [] if not co_rows else ["", "### 5. Composition: batched no-grad vs per sample", "",
              "Composing every basis once through a random hallucinator (one epoch's worth of images).", "",
              H.markdown_table(co_rows, [("data", "data"), ("ipc", "IPC budget"), ("images", "images"),
                                         ("stored_bytes", "stored bytes"), ("ipc_equivalent", "IPC-eq"),
                                         ("method", "method"), ("value", "ms"),
                                         ("speedup_value", "batched is faster by ×"), ("load", "load")])]
    for i, pr in enumerate(prof or []):
        t = pr["target"]
        if i == 0:
            lines += ["", "### 6. Profiles", "",
                      "torch.profiler (CPU activities) over one iteration after a warm-up iteration. Phases are "
                      "`record_function` ranges opened by the loop's own phase hook (`distill(phase_hook=...)`; "
                      "one phase at a time, so a backward inside the adversary update counts for the adversary); "
                      "shares are of the iteration's wall time."]
        lines += ["", f"**{pr.get('why', 'profiled')}: {t['shape']} {t['objective']} {t['parameterization']} "
                      f"IPC {t['ipc']}** ({pr['iteration_ms']:.0f} ms under the profiler)", "",
                  H.markdown_table(pr["phases"], [("phase", "phase"), ("cpu_ms", "CPU ms"),
                                                  ("share_pct", "% of iteration"), ("calls", "calls")]),
                  "", "Top ops by self CPU time:", "",
                  H.markdown_table(pr["top_ops"][:8], [("op", "op"), ("self_cpu_ms", "self CPU ms"),
                                                       ("self_cpu_pct", "% of self CPU"), ("calls", "calls")])]
    if prof:
        lines += ["", ANALYSIS.format(profile_summary=profile_summary(prof), notes=notes(rows, meta, prof))]
    for r in rows:
        r.pop("peak_h", None)
    return "\n".join(lines)


def budget_text(rows: list[dict]) -> str:
    seen = {}
    for r in rows:
        if r["part"] == "distill_iteration" and r.get("variant") == "haba":
            seen.setdefault((r["shape"], r["ipc"]), (r["bpc"], r["hallucinators"]))
    return "; ".join(f"{shape} IPC {ipc} → {b} bases/class + {h} hallucinators"
                     for (shape, ipc), (b, h) in seen.items()) or "see the rows"


def profile_summary(prof: list[dict] | dict | None) -> str:
    if isinstance(prof, dict):
        prof = [prof]
    out = []
    for pr in prof or []:
        t = pr["target"]
        ph = sorted((p for p in pr["phases"] if p["share_pct"] >= 1), key=lambda p: p["share_pct"], reverse=True)
        parts = ", ".join(f"{p['phase'][2:]} {p['share_pct']:.0f}%" for p in ph[:4])
        ops = ", ".join(f"`{o['op']}` {o['self_cpu_pct']:.0f}%" for o in pr["top_ops"][:4])
        comp = next((p["share_pct"] for p in pr["phases"] if p["phase"].startswith("①")), None)
        out.append(f"{t['objective']} {t['parameterization']} IPC {t['ipc']} ({t['shape']}): {parts}; top ops {ops}"
                   + (f"; composing the images takes {comp:.2f}%." if comp is not None else "."))
    return " ".join(out) if out else "(no profile)"
