"""The shape of ``--json FILE``, written down, and a small validator for it.

``SCHEMA`` is JSON Schema (the subset below: type, required, properties, items, enum,
additionalProperties, minimum), so any JSON Schema tool can check a result file too;
:func:`validate` checks that subset with plain code, so the bench and its tests need no
extra dependency. Bump ``SCHEMA_VERSION`` when a field changes meaning.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_SPREAD = {"type": "object", "required": ["median", "min", "max", "spread_pct", "values"],
           "properties": {"median": _NUM, "min": _NUM, "max": _NUM, "spread_pct": _NUM,
                          "values": {"type": "array", "items": _NUM}}}
_LOAD = {"type": "object", "required": ["connections", "size", "idle", "mode", "warmup", "duration"],
         "properties": {"connections": {"type": "integer", "minimum": 1}, "size": {"type": "integer", "minimum": 1},
                        "idle": {"type": "integer", "minimum": 0},
                        "mode": {"enum": ["pingpong", "reconnect", "burst"]},
                        "rcvbuf": {"type": ["integer", "null"]}, "sndbuf": {"type": ["integer", "null"]},
                        "warmup": _NUM, "duration": _NUM, "pipeline": {"type": "integer", "minimum": 1},
                        "requests": {"type": ["integer", "null"]}, "test": {"type": ["string", "null"]}}}
_TARGET = {"type": "object", "required": ["label", "case", "peer", "metric", "minimum", "ratio", "status"],
           "properties": {"label": {"type": "string"}, "case": {"type": "string"}, "peer": {"type": "string"},
                          "metric": {"type": "string"}, "minimum": _NUM, "ratio": {"type": ["number", "null"]},
                          "status": {"enum": ["met", "missed", "not measured"]}}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "netcore bench results",
    "type": "object",
    "required": ["schema_version", "preset", "title", "command", "machine", "config", "cases", "runs", "rows",
                 "warnings", "interrupted"],
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "preset": {"type": "string"},
        "title": {"type": "string"},
        "claim": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "machine": {"type": "object", "required": ["cpu_model", "nproc", "kernel", "python", "pinning", "clk_tck"],
                    "properties": {"nproc": {"type": "integer"}, "kernel": {"type": "string"},
                                   "python": {"type": "string"}, "pinning": {"type": "string"},
                                   "cpu_model": {"type": "string"}, "clk_tck": {"type": "integer"}}},
        "config": {"type": "object", "required": ["rounds", "generator", "server_cpu", "generator_cpu",
                                                  "gen_saturated_percent"],
                   "properties": {"rounds": {"type": "integer", "minimum": 1}, "generator": {"type": "string"},
                                  "server_cpu": {"type": ["integer", "null"]},
                                  "generator_cpu": {"type": ["integer", "null"]},
                                  "gen_saturated_percent": _NUM,
                                  # every row over TLS (--tls); absent in files written before it
                                  "tls": {"type": "boolean"}}},
        "cases": {"type": "array", "items": {
            "type": "object", "required": ["key", "server", "args", "protocol", "load", "params", "skip", "baseline",
                                           "command"],
            "properties": {"key": {"type": "string"}, "server": {"type": "string"},
                           "args": {"type": "array", "items": {"type": "string"}}, "protocol": {"type": "string"},
                           "load": _LOAD, "params": {"type": "object"}, "skip": {"type": ["string", "null"]},
                           "baseline": {"type": ["string", "null"]},
                           "command": {"type": "array", "items": {"type": "string"}}}}},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["case", "round", "ok", "error", "flags", "generator", "server", "metrics",
                                           "started_at"],
            "properties": {"case": {"type": "string"}, "round": {"type": "integer", "minimum": 1},
                           "ok": {"type": "boolean"}, "error": {"type": ["string", "null"]},
                           "flags": {"type": "array", "items": {"type": "string"}},
                           "generator": {"type": "object"}, "server": {"type": "object"},
                           "metrics": {"type": "object", "additionalProperties": _NUM},
                           "started_at": _NUM}}},
        "rows": {"type": "array", "items": {
            "type": "object", "required": ["case", "server", "params", "load", "status", "reason", "runs", "ok_runs",
                                           "metrics", "ratios", "derived", "flags", "baseline"],
            "properties": {"case": {"type": "string"}, "server": {"type": "string"}, "params": {"type": "object"},
                           "load": _LOAD, "status": {"enum": ["ok", "failed", "skipped"]},
                           "reason": {"type": ["string", "null"]}, "runs": {"type": "integer", "minimum": 0},
                           "ok_runs": {"type": "integer", "minimum": 0},
                           "metrics": {"type": "object", "additionalProperties": _SPREAD},
                           "ratios": {"type": "object", "additionalProperties": _NUM},
                           "derived": {"type": "object", "additionalProperties": _NUM},
                           "flags": {"type": "array", "items": {"type": "string"}},
                           "baseline": {"type": ["string", "null"]}}}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        #: claims a preset checks against this run (http, resp): ratio of medians, met or missed
        "targets": {"type": "array", "items": _TARGET},
        "interrupted": {"type": "boolean"},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(doc: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
    """Every violation of ``schema`` in ``doc``, as ``path: problem`` lines (empty: valid)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(doc, n) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{path}: {doc!r} not one of {schema['enum']}")
    if "minimum" in schema and _is(doc, "number") and doc < schema["minimum"]:
        errors.append(f"{path}: {doc} < {schema['minimum']}")
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                errors.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        for key, value in doc.items():
            if key in props:
                errors += validate(value, props[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(value, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors
