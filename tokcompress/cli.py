"""``tokcompress`` command line: inspect plugins and presets, print the spec schema, validate specs.

Commands defined in other modules are listed in `COMMANDS`; each module defines
``add_arguments(parser)`` and ``run(args)`` and imports heavy dependencies (transformers) inside
``run`` only, so that ``tokcompress plugins`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .catalog import get_catalog
from .errors import TokcompressError
from .spec import load_spec

# Subcommands living in other modules: name -> (module, help). Each module defines add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "calibrate": ("tokcompress.study.commands.calibrate", "measure a positional-bias profile (position_prior debiaser)"),
    "ablate": ("tokcompress.study.commands.ablate", "run an ablation suite into a results database (resumable)"),
    "report": ("tokcompress.study.commands.report", "tables, plots and an HTML report from a results database"),
    "generate": ("tokcompress.hf.cli_generate", "generate with a VLM, pruned and unpruned: kept tokens, FLOPs, prefill time"),
}


def _plugins(args: argparse.Namespace) -> int:
    from .study.registry import get_study_catalog

    kinds = {**get_catalog().components, **get_study_catalog().entries}  # stages, then metrics and datasets
    rows = [
        {"kind": kind, "name": e.name, "class": f"{e.cls.__module__}.{e.cls.__qualname__}", "provider": e.provider,
         "params": list(e.cls.Params.model_fields), "summary": (e.cls.__doc__ or "").strip().splitlines()[0] if e.cls.__doc__ else ""}
        for kind, entries in kinds.items()
        for e in entries.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table("kind", "name", "provider", "params", "summary", title="tokcompress components")
    for r in rows:
        table.add_row(r["kind"], r["name"], r["provider"], ", ".join(r["params"]), r["summary"])
    Console().print(table)
    return 0


def _presets(args: argparse.Namespace) -> int:
    catalog = get_catalog()
    rows = []
    for preset in catalog.presets.values():
        try:
            spec = load_spec(preset.name, catalog)
            info = {"placement": spec.placement, "layer": spec.layer if spec.placement == "layer" else None,
                    "stages": {f: b.name for f, b in spec.stages().items()}, "description": spec.description}
        except TokcompressError as exc:  # a preset whose plugin is missing still lists, with the reason
            info = {"error": str(exc)}
        rows.append({"name": preset.name, "path": str(preset.path), "provider": preset.provider, **info})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table("name", "placement", "stages", "provider", title="tokcompress presets")
    for r in rows:
        where = r.get("placement", "-") + (f" K={r['layer']}" if r.get("layer") else "")
        stages = " -> ".join(f"{k}:{v}" for k, v in r.get("stages", {}).items()) or f"[red]{r.get('error')}"
        table.add_row(r["name"], where, stages, r["provider"])
    Console().print(table)
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(get_catalog().spec_model.model_json_schema(), indent=2))
    return 0


def _validate(args: argparse.Namespace) -> int:
    for source in args.spec:
        spec = load_spec(source)
        print(f"ok: {source}")
        if args.show:
            print(json.dumps(spec.to_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokcompress", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list every registered component, its kind and provider")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)
    p = sub.add_parser("presets", help="list named presets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_presets)
    p = sub.add_parser("schema", help="print the JSON Schema of pruner specs (for editor completion)")
    p.set_defaults(func=_schema)
    p = sub.add_parser("validate", help="validate spec files or preset names")
    p.add_argument("spec", nargs="+", help="YAML/JSON spec path or preset name")
    p.add_argument("--show", action="store_true", help="print the resolved spec")
    p.set_defaults(func=_validate)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TokcompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
