"""The core's own ``tokcompress`` verbs: inspect plugins and presets, print the spec schema, validate specs."""

from __future__ import annotations

import argparse
import json

from .catalog import STAGES, get_catalog
from .command import Command
from .errors import TokcompressError

__all__ = ["PluginsCommand", "PresetsCommand", "SchemaCommand", "ValidateCommand", "CORE_COMMANDS"]

LISTED_KINDS = (*STAGES, "placement", "metric", "dataset", "model_source", "command")
"""Kinds `tokcompress plugins` lists."""


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class PluginsCommand(Command):
    name = "plugins"
    help = "list every registered component, its kind and provider"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from rich.console import Console
        from rich.table import Table

        catalog = get_catalog()
        kinds = {k: catalog.entries(k) for k in LISTED_KINDS}
        rows = [
            {"kind": kind, "name": e.name, "class": f"{e.cls.__module__}.{e.cls.__qualname__}", "provider": e.provider,
             "params": list(getattr(e.cls, "Params", None).model_fields) if hasattr(e.cls, "Params") else [],
             "summary": _summary(e.cls)}
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


class PresetsCommand(Command):
    name = "presets"
    help = "list named presets"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from rich.console import Console
        from rich.table import Table

        from .spec import load_spec

        catalog = get_catalog()
        rows = []
        for preset in catalog.presets.values():
            try:
                spec = load_spec(preset.name, catalog)
                info = {"apply": spec.apply.model_dump(mode="json"), "stages": {f: b.name for f, b in spec.stages().items()},
                        "description": spec.description}
            except TokcompressError as exc:  # a preset whose plugin is missing still lists, with the reason
                info = {"error": str(exc)}
            rows.append({"name": preset.name, "path": str(preset.path), "provider": preset.provider, **info})
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table("name", "apply", "stages", "provider", title="tokcompress presets")
        for r in rows:
            apply = r.get("apply") or {}
            where = apply.get("placement", "-") + (f" K={apply['layer']}" if "layer" in apply else "")
            stages = " -> ".join(f"{k}:{v}" for k, v in r.get("stages", {}).items()) or f"[red]{r.get('error')}"
            table.add_row(r["name"], where, stages, r["provider"])
        Console().print(table)
        return 0


class SchemaCommand(Command):
    name = "schema"
    help = "print the JSON Schema of pruner specs (for editor completion)"

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from .spec import spec_model

        print(json.dumps(spec_model(get_catalog()).model_json_schema(), indent=2))
        return 0


class ValidateCommand(Command):
    name = "validate"
    help = "validate spec files or preset names: everything attach would refuse is refused here"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", nargs="+", help="YAML/JSON spec path or preset name")
        parser.add_argument("--show", action="store_true", help="print the resolved spec")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from .spec import load_spec

        catalog = get_catalog()
        for source in args.spec:
            spec = load_spec(source)
            place = catalog.placements[spec.placement].cls
            note = "" if place.attachable else f" (apply.placement {spec.placement!r}: runs through Pruner.prune only; attach refuses it)"
            print(f"ok: {source}{note}")
            if args.show:
                print(json.dumps(spec.to_dict(), indent=2))
        return 0


CORE_COMMANDS = [PluginsCommand, PresetsCommand, SchemaCommand, ValidateCommand]
