"""Attention-mass compensation (issue 18) on the grounding model: choose its parameters on validation, compare paired.

Three subcommands, all CPU, one thread by default (the machine is shared):

    # 1. choose `by` / `source` / `values` on the VALIDATION split (never test): every candidate at 28 kept
    #    tokens for d2pruner and fastv, batched generate through tokcompress.attach; per-question results
    #    as JSONL, a summary and the counting confusion matrices
    python benchmarks/compensation_study.py val --n 1000 --out runs/compensation-val

    # 2. the test-set table comes from `tokcompress ablate compensation --threads 1` (the suite in the grounding
    #    plugin); paired comparisons (exact McNemar) of each compensated spec against the same spec uncompensated,
    #    over / under-counting, markdown tables and the figure (docs/results/compensation/, docs/figures/)
    python benchmarks/compensation_study.py paired runs/compensation/results.sqlite --out runs/compensation/paired

    # 3. which layers need the bias: a diagnostic that applies it only in some layers >= K (validation)
    python benchmarks/compensation_study.py layers --n 1000 --out runs/compensation-val

McNemar: two-sided exact binomial test on the discordant pairs (questions one config gets right and
the other wrong), p = min(1, 2 * P[X <= min(b, c)]) for X ~ Bin(b + c, 1/2).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

COUNT_WORDS = ("zero", "one", "two", "three", "four")
METHODS = ("d2pruner", "fastv", "divprune", "uniform")
CONTROLS = ("random", "pool")  # uncompensated controls of the suite: rows in the tables, not in the figure


# -- statistics -------------------------------------------------------------------------------------
def mcnemar(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """(a right & b wrong, a wrong & b right, exact two-sided p) over paired outcomes."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes differ in length: {len(a)} vs {len(b)}")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    if n == 0:
        return only_a, only_b, 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return only_a, only_b, min(1.0, 2 * tail)


def count_errors(pairs: list[tuple[str, str]]) -> dict[str, int]:
    """Counting answers against truth: right, over (a larger count word), under, other (not a count word)."""
    out = Counter()
    for truth, answer in pairs:
        answer = answer.strip().lower()
        if answer == truth:
            out["right"] += 1
        elif answer in COUNT_WORDS:
            out["over" if COUNT_WORDS.index(answer) > COUNT_WORDS.index(truth) else "under"] += 1
        else:
            out["other"] += 1
    return {k: out[k] for k in ("right", "over", "under", "other")}


# -- validation: batched evaluation through attach -------------------------------------------------------
def candidates(method: str) -> dict[str, dict | None]:
    """Every compensation setting tried on validation for `method` (None: the method as shipped)."""
    in_llm = method in ("d2pruner", "fastv")
    out: dict[str, dict | None] = {"plain": None}
    sources = [("cosine", {"by": "cosine"}), ("position", {"by": "position"})]
    if in_llm:
        sources.insert(1, ("cosine-keys", {"by": "cosine", "source": "keys"}))
    for name, by in sources:
        out[f"{name}"] = {**by, "values": "keep"}
        out[f"{name}+mean"] = {**by, "values": "mean"}
        out[f"{name}+mean-nobias"] = {**by, "values": "mean", "bias": "none"}
    return out


def evaluate(model, processor, samples, spec, keep: int, batch: int = 32) -> list[str]:
    import tokcompress
    from tokcompress_grounding.evaluate import predict

    if spec is None:
        return predict(model, processor, samples, batch_size=batch)
    with tokcompress.attach(model, spec, keep=keep):
        return predict(model, processor, samples, batch_size=batch)


def summarise(samples, answers) -> dict:
    from tokcompress_grounding.evaluate import is_correct

    ok = [is_correct(s, a) for s, a in zip(samples, answers)]
    g = [o for s, o in zip(samples, ok) if s.task == "grounding"]
    c = [o for s, o in zip(samples, ok) if s.task == "counting"]
    errors = count_errors([(s.answer, a) for s, a in zip(samples, answers) if s.task == "counting"])
    return {"grounding": sum(g) / max(1, len(g)), "counting": sum(c) / max(1, len(c)), "n_grounding": len(g),
            "n_counting": len(c), **{f"count_{k}": v for k, v in errors.items()}, "correct": ok}


def confusion(samples, answers) -> dict[str, dict[str, int]]:
    """truth -> answer -> questions, counting only."""
    out: dict[str, Counter] = defaultdict(Counter)
    for s, a in zip(samples, answers):
        if s.task == "counting":
            out[s.answer][a.strip().lower()] += 1
    return {t: dict(out[t]) for t in COUNT_WORDS}


def run_grid(args, configs: list[tuple[str, str, dict | None, int]], name: str) -> None:
    """Evaluate `configs` (method, label, spec, keep) on the validation split; write JSONL + summary."""
    import torch

    from tokcompress_grounding import load_default_model
    from tokcompress_grounding.data import make_sample

    torch.set_num_threads(args.threads)
    model, processor = load_default_model()
    samples = [make_sample(0, "val", i) for i in range(args.n)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / f"{name}.jsonl"
    done = {}
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            rec = json.loads(line)
            done[(rec["method"], rec["label"], rec["keep"])] = rec
    reference = done.get(("none", "unpruned", 256))
    with rows_path.open("a") as fh:
        if reference is None:
            t0 = time.perf_counter()
            answers = evaluate(model, processor, samples, None, 256)
            reference = {"method": "none", "label": "unpruned", "keep": 256, "spec": None, "answers": answers,
                         "seconds": time.perf_counter() - t0}
            fh.write(json.dumps(reference) + "\n")
            fh.flush()
        for method, label, spec, keep in configs:
            if (method, label, keep) in done:
                continue
            t0 = time.perf_counter()
            answers = evaluate(model, processor, samples, spec, keep)
            rec = {"method": method, "label": label, "keep": keep, "spec": spec, "answers": answers,
                   "seconds": time.perf_counter() - t0}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            s = summarise(samples, answers)
            print(f"{method:9s} {label:22s} keep {keep:3d}: grounding {s['grounding']:.3f} counting {s['counting']:.3f} "
                  f"(over {s['count_over']}, under {s['count_under']}) {rec['seconds']:.0f} s", flush=True)
    write_val_summary(samples, rows_path, out / f"{name}.md")


def write_val_summary(samples, rows_path: Path, md_path: Path) -> None:
    """Markdown: accuracy, over/under-counting and McNemar against the plain method, per config."""
    recs = [json.loads(line) for line in rows_path.read_text().splitlines()]
    ref = next(r for r in recs if r["method"] == "none")
    plain = {(r["method"], r["keep"]): summarise(samples, r["answers"]) for r in recs if r["label"] == "plain"}
    counting = [s.task == "counting" for s in samples]
    lines = [f"Validation split, first {len(samples)} questions ({sum(counting)} counting). "
             "McNemar p against the same method uncompensated (counting / grounding).", "",
             "| method | setting | keep | grounding % | counting % | over | under | counting p | grounding p |",
             "|---|---|---|---|---|---|---|---|---|"]
    r0 = summarise(samples, ref["answers"])
    lines.append(f"| unpruned | | 256 | {100 * r0['grounding']:.1f} | {100 * r0['counting']:.1f} | {r0['count_over']} | "
                 f"{r0['count_under']} | | |")
    for r in recs:
        if r["method"] == "none":
            continue
        s = summarise(samples, r["answers"])
        base = plain.get((r["method"], r["keep"]))
        pc = pg = ""
        if base is not None and r["label"] != "plain":
            c = [o for o, is_c in zip(s["correct"], counting) if is_c]
            cb = [o for o, is_c in zip(base["correct"], counting) if is_c]
            g = [o for o, is_c in zip(s["correct"], counting) if not is_c]
            gb = [o for o, is_c in zip(base["correct"], counting) if not is_c]
            pc, pg = f"{mcnemar(c, cb)[2]:.2g}", f"{mcnemar(g, gb)[2]:.2g}"
        lines.append(f"| {r['method']} | {r['label']} | {r['keep']} | {100 * s['grounding']:.1f} | {100 * s['counting']:.1f} | "
                     f"{s['count_over']} | {s['count_under']} | {pc} | {pg} |")
    md_path.write_text("\n".join(lines) + "\n")
    print(f"wrote {md_path}")


def cmd_val(args) -> int:
    configs = []
    for method in args.methods:
        for label, merger in candidates(method).items():
            spec = method if merger is None else {"extends": method, "merger": {"name": "assign", **merger}}
            configs.append((method, label, spec, args.keep))
    run_grid(args, configs, "val-grid")
    return 0


# -- which layers need the bias --------------------------------------------------------------------------
def cmd_layers(args) -> int:
    """The bias in a subset of the layers >= K only (a diagnostic: the other layers keep the unbiased mask)."""
    import torch

    import tokcompress.hf.placements.base as base
    from tokcompress_grounding import load_default_model
    from tokcompress_grounding.data import make_sample

    torch.set_num_threads(args.threads)
    model, processor = load_default_model()
    samples = [make_sample(0, "val", i) for i in range(args.n)]
    from tokcompress.hf.placements.layer import LayerStrategy

    original, layer_mask = base.Strategy.biased_mask, LayerStrategy._layer_mask
    active: set[int] = set()

    def only_some(self, i, mask, hidden, cache):
        return original(self, i, mask, hidden, cache) if i in active else mask

    def per_layer(self, i, hidden, padding, cache):  # the layer masks are shared by layer type: rebuild per layer
        memo = self.handle.state.memo
        for key in [k for k in memo if isinstance(k, tuple) and k[0] in ("mask", "bias")]:
            del memo[key]
        return layer_mask(self, i, hidden, padding, cache)

    lines = ["| method | values | bias in layers | keep | grounding % | counting % | over | under |",
             "|---|---|---|---|---|---|---|---|"]
    base.Strategy.biased_mask, LayerStrategy._layer_mask = only_some, per_layer
    try:
        for method in args.methods:
            for values in ("keep", "mean"):
                spec = {"extends": method, "merger": {"name": "assign", "by": "cosine", "values": values}}
                for layers in ({2, 3}, {2}, {3}):
                    active.clear()
                    active.update(layers)
                    s = summarise(samples, evaluate(model, processor, samples, spec, args.keep))
                    lines.append(f"| {method} | {values} | {', '.join(map(str, sorted(layers)))} | {args.keep} | "
                                 f"{100 * s['grounding']:.1f} | {100 * s['counting']:.1f} | {s['count_over']} | "
                                 f"{s['count_under']} |")
                    print(lines[-1], flush=True)
    finally:
        base.Strategy.biased_mask, LayerStrategy._layer_mask = original, layer_mask
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "layers.md").write_text("\n".join(lines) + "\n")
    return 0


# -- paired comparisons of an ablate run -----------------------------------------------------------------
def load_rows(db: Path) -> dict[tuple[str, str], dict[str, dict]]:
    """(spec label, budget) -> sample id -> {task, correct, text}, from a results database: the rows the
    report would show (the latest settings and spec definitions, `tokcompress.study.aggregate.latest_config`)."""
    from tokcompress.study.aggregate import latest_config
    from tokcompress.study.db import ResultsDB

    with ResultsDB(db, create=False) as results:
        rows, _ = latest_config(results.rows())
    out: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        m, o = r["metrics"], r["output"]
        if m.get("grounding_acc") is not None:
            task, correct = "grounding", bool(m["grounding_acc"])
        else:
            task, correct = "counting", bool(m.get("exact_match"))
        out[(r["spec"], r["budget"])][r["sample"]] = {"task": task, "correct": correct, "text": o.get("text", "")}
    return out


def truths(db: Path) -> dict[str, str]:
    """Counting sample id -> true count word (the generator's sample ids)."""
    from tokcompress_grounding.data import make_sample

    out = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ids = sorted({row[0] for row in con.execute("SELECT DISTINCT sample FROM results")})
    con.close()
    for sid in ids:
        split, index = sid.rsplit("-", 1)
        s = make_sample(0, split, int(index))
        if s.task == "counting":
            out[sid] = s.answer
    return out


def cmd_paired(args) -> int:
    rows = load_rows(Path(args.db))
    truth = truths(Path(args.db))
    labels = sorted({spec for spec, _ in rows})
    budgets = sorted({b for _, b in rows if b.startswith("keep=")}, key=lambda b: -int(b.split("=")[1]))
    ref_key = next(k for k in rows if k[0] in ("unpruned", "none", "reference"))
    ids = sorted(set.intersection(*(set(table) for table in rows.values())))  # questions every config has run
    if len(ids) < len(rows[ref_key]):
        print(f"{len(ids)} of {len(rows[ref_key])} questions have every configuration (a run still in progress?)",
              file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def acc(table, task):
        vals = [table[i]["correct"] for i in ids if table[i]["task"] == task]
        return 100 * sum(vals) / len(vals), vals

    results = {}
    for (spec, budget), table in rows.items():
        g, gv = acc(table, "grounding")
        c, cv = acc(table, "counting")
        errs = count_errors([(truth[i], table[i]["text"]) for i in ids if i in truth])
        results[(spec, budget)] = {"grounding": g, "counting": c, "g": gv, "c": cv, **errs}
    n_c = sum(1 for i in ids if i in truth)
    lines = [f"{len(ids)} test questions ({len(ids) - n_c} grounding, {n_c} counting). Each compensated row is paired "
             "with the same method and budget uncompensated: b = questions only it gets right, c = only the "
             "uncompensated one does, p = exact two-sided McNemar.", "",
             "| spec | budget | grounding % | counting % | over / under / other | counting b / c, p | grounding b / c, p |",
             "|---|---|---|---|---|---|---|"]
    r = results[ref_key]
    lines.append(f"| unpruned | all | {r['grounding']:.1f} | {r['counting']:.1f} | {r['over']} / {r['under']} / {r['other']} | | |")
    for method in METHODS + CONTROLS:
        for budget in budgets:
            for suffix in ("", "+bias", "+bias+mean"):
                key = (method + suffix, budget)
                if key not in results:
                    continue
                r = results[key]
                pc = pg = ""
                base = results.get((method, budget))
                if suffix and base is not None:
                    b1, c1, p1 = mcnemar(r["c"], base["c"])
                    b2, c2, p2 = mcnemar(r["g"], base["g"])
                    pc, pg = f"{b1} / {c1}, {p1:.2g}", f"{b2} / {c2}, {p2:.2g}"
                lines.append(f"| {method + suffix} | {budget} | {r['grounding']:.1f} | {r['counting']:.1f} | "
                             f"{r['over']} / {r['under']} / {r['other']} | {pc} | {pg} |")
    (out / "compensation-table.md").write_text("\n".join(lines) + "\n")
    compact = ["| spec | counting % at 64 / 28 / 16 | grounding % at 64 / 28 / 16 | counting over / under at 28 | "
               "McNemar p at 28 vs off (counting / grounding) |", "|---|---|---|---|---|"]
    r = results[ref_key]
    compact.append(f"| unpruned (256) | {r['counting']:.1f} | {r['grounding']:.1f} | {r['over']} / {r['under']} | |")
    order = budgets
    for method in METHODS + CONTROLS:
        for suffix, name in (("", ""), ("+bias", " + bias"), ("+bias+mean", " + bias + mean")):
            cells = [results.get((method + suffix, b)) for b in order]
            if any(c is None for c in cells):
                continue
            at28 = results[(method + suffix, "keep=28")]
            p = ""
            if suffix:
                base = results[(method, "keep=28")]
                p = f"{mcnemar(at28['c'], base['c'])[2]:.2g} / {mcnemar(at28['g'], base['g'])[2]:.2g}"
            counting = " / ".join(f"{c['counting']:.1f}" for c in cells)
            grounding = " / ".join(f"{c['grounding']:.1f}" for c in cells)
            compact.append(f"| {method}{name} | {counting} | {grounding} | {at28['over']} / {at28['under']} | {p} |")
    (out / "compensation-compact.md").write_text("\n".join(compact) + "\n")
    (out / "compensation-summary.json").write_text(json.dumps(
        {f"{s}|{b}": {k: v for k, v in r.items() if k not in ("g", "c")} for (s, b), r in results.items()}, indent=1))
    print("\n".join(lines))
    figure(results, budgets, ref_key, out / "compensation-accuracy.png")
    return 0


def figure(results, budgets, ref_key, path: Path) -> None:
    """Counting and grounding accuracy against kept tokens, per method, off / bias / bias + mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def kept(budget: str) -> int:
        return int(float(budget.split("=")[-1]))

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharex=True)
    colours = dict(zip(METHODS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    styles = {"": ("-", "o", "off"), "+bias": ("--", "s", "log-size bias"), "+bias+mean": (":", "^", "bias + value mean")}
    for ax, task in zip(axes, ("counting", "grounding")):
        ax.axhline(results[ref_key][task], color="grey", lw=1, label="unpruned (256)")
        for method in METHODS:
            for suffix, (ls, marker, name) in styles.items():
                pts = sorted((kept(b), results[(method + suffix, b)][task]) for b in budgets
                             if (method + suffix, b) in results)
                if pts:
                    ax.plot(*zip(*pts), ls=ls, marker=marker, color=colours[method], label=f"{method} {name}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([16, 28, 64], ["16", "28", "64"])
        ax.set_xlabel("visual tokens kept (of 256)")
        ax.set_ylabel(f"{task} accuracy (%)")
        ax.set_title(f"{task}, grounding model, test")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7.5, loc="lower center", ncol=5, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("val", "layers"):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=1000, help="validation questions (half counting)")
        p.add_argument("--keep", type=int, default=28)
        p.add_argument("--methods", nargs="+", default=["d2pruner", "fastv"])
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", default="runs/compensation-val")
    p = sub.add_parser("paired")
    p.add_argument("db", help="results.sqlite of `tokcompress ablate compensation`")
    p.add_argument("--out", default="runs/compensation/report")
    args = parser.parse_args(argv)
    return {"val": cmd_val, "layers": cmd_layers, "paired": cmd_paired}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
