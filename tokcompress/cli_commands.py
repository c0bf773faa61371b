"""The core's own ``tokcompress`` verbs: inspect plugins and presets, print the spec schema, validate specs."""

from __future__ import annotations

import argparse
import json
from typing import Callable

from .catalog import STAGES, get_catalog
from .command import Command
from .errors import TokcompressError

__all__ = ["ListingCommand", "PluginsCommand", "PresetsCommand", "SchemaCommand", "ValidateCommand", "CORE_COMMANDS"]

LISTED_KINDS = (*STAGES, "placement", "metric", "dataset", "model_source", "command")
"""Kinds `tokcompress plugins` lists."""


def _summary(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class ListingCommand(Command):
    """A verb that lists rows: a rich table, or JSON with ``--json``. Subclasses give rows and columns."""

    title = ""
    columns: dict[str, Callable[[dict], str]] = {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    @classmethod
    def rows(cls) -> list[dict]:
        raise NotImplementedError

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        rows = cls.rows()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table(*cls.columns, title=cls.title)
        for r in rows:
            table.add_row(*(cell(r) for cell in cls.columns.values()))
        Console().print(table)
        return 0


def _where(row: dict) -> str:
    apply = row.get("apply") or {}
    return apply.get("placement", "-") + (f" K={apply['layer']}" if "layer" in apply else "")


class PluginsCommand(ListingCommand):
    name = "plugins"
    help = "list every registered component, its kind and provider"
    title = "tokcompress components"
    columns = {
        "kind": lambda r: r["kind"],
        "name": lambda r: r["name"],
        "provider": lambda r: r["provider"],
        "params": lambda r: ", ".join(r["params"]),
        "summary": lambda r: r["summary"],
    }

    @classmethod
    def rows(cls) -> list[dict]:
        catalog = get_catalog()
        return [
            {"kind": kind, "name": e.name, "class": f"{e.cls.__module__}.{e.cls.__qualname__}", "provider": e.provider,
             "params": list(e.cls.Params.model_fields) if hasattr(e.cls, "Params") else [], "summary": _summary(e.cls)}
            for kind in LISTED_KINDS
            for e in catalog.entries(kind).values()
        ]


class PresetsCommand(ListingCommand):
    name = "presets"
    help = "list named presets"
    title = "tokcompress presets"
    columns = {
        "name": lambda r: r["name"],
        "apply": _where,
        "stages": lambda r: " -> ".join(f"{k}:{v}" for k, v in r.get("stages", {}).items()) or f"[red]{r.get('error')}",
        "provider": lambda r: r["provider"],
    }

    @classmethod
    def rows(cls) -> list[dict]:
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
        return rows


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
