"""The spec's one declared schema (JSON Schema 2020-12): validation, error messages, docs, editors.

:data:`SPEC_SCHEMA` says which keys a spec has, their types and ranges. :func:`validate` checks a
spec against it (with the `jsonschema <https://python-jsonschema.readthedocs.io>`_ library) and
turns the most relevant violation into a :class:`SurgeryError` that names the key and the fix.
``keras-surgeon-rl schema`` prints it, so YAML editors validate spec files as people type (e.g.
``# yaml-language-server: $schema=spec.schema.json`` at the top of a spec file).

Two keywords are ours; other validators ignore them: ``finite`` (no NaN or infinity, which YAML's
``.nan`` and ``.inf`` and Python floats can hold) and ``errorMessage`` (the message for a value the
subschema refuses, with ``{value}`` for the value given; ajv-errors' convention).

What a schema cannot say (a layer name the model lacks, an ID count that does not match the
layer) is checked against the model by the planner.
"""

from __future__ import annotations

import math
from typing import Any

from keras_surgeon_rl.errors import SurgeryError

#: The most units a spec may give a layer (2**24): more is a typo, and listing them would hang.
MAX_UNITS = 2 ** 24

INIT_MODES = ("preserve", "random", "net2net")
INSERT_INITS = {"Dense": ("identity", "random"), "Conv2D": ("identity", "top_right", "random"),
                "Conv1D": ("identity", "top_right", "random")}
NEW_UNIT_INIT_HELP = ("'random', 'zeros', 'copy:<id>', {'copy': id, 'bias_offset': -1.0}, 'keep_greedy' "
                      "or {'keep_greedy': margin}")


def _esc(text: str) -> str:
    """``text`` inside an ``errorMessage`` (which is formatted with ``{value}``)."""
    return text.replace("{", "{{").replace("}", "}}")


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


_FINITE = {"type": "number", "finite": True}
_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_UNITS,
          "errorMessage": f"{{value}} is not a unit count; give a whole number from 1 to {MAX_UNITS:,}"}
_NAME = {"type": "string", "minLength": 1, "errorMessage": "{value} is not a layer name (a non-empty string)"}


def _change(allow_init: bool) -> dict:
    props = {
        "old": {**_ref("id_list"), "description": "the IDs the model has now, one per unit, in order "
                "(default: the IDs the model carries, else 0..n-1)"},
        "new": {**_ref("id_list"), "minItems": 1, "description": "the IDs the new model has, in order: kept IDs "
                "keep their weights, new IDs are initialized, missing IDs are dropped",
                "errorMessage": "{value} leaves no unit; keep at least one"},
        "axis": {"type": "integer", "description": "the unit axis (default: the axis the layers reading it use as units: 1 before a channels-first conv, else the last)",
                 "errorMessage": "{value} is not an axis; give an integer such as -1 or 1"},
    }
    if allow_init:
        props["init"] = {
            "description": "how new output units start: one init for all, or a dict from new ID to init",
            "if": {"type": "object", "not": {"anyOf": [{"required": ["copy"]}, {"required": ["keep_greedy"]}]}},
            "then": {"additionalProperties": _ref("new_unit_init"), "minProperties": 1,
                     "errorMessage": "an init dict maps new unit IDs to inits; {value} names none"},
            "else": _ref("new_unit_init"),
            "errorMessage": f"{{value}} is not a new-unit init; use {_esc(NEW_UNIT_INIT_HELP)}, or a dict from new ID to "
                            "one",
        }
    return {"type": "object", "properties": props, "additionalProperties": False,
            "errorMessage": "expected {{'old': [...], 'new': [...]}}, got {value}"}


def _changes(which: str, allow_init: bool) -> dict:
    one = _ref("output_change" if allow_init else "input_change")
    return {
        "description": f"model {which}s by name (or one change without the name, for a model with one {which})",
        "type": "object",
        "if": {"anyOf": [{"required": ["old"]}, {"required": ["new"]}, {"required": ["axis"]}]},
        "then": one,
        "else": {"propertyNames": {"type": "string"}, "additionalProperties": one},
        "errorMessage": f"expected {{{{{which}_name: {{{{'old': [...], 'new': [...]}}}}}}}}, got {{value}}",
    }


def _insert_init(layer: str) -> dict:
    cond = {"properties": {"layer": {"const": layer}}, "required": ["layer"]}
    if layer == "Dense":
        cond = {"anyOf": [cond, {"not": {"required": ["layer"]}}]}
    inits = list(INSERT_INITS[layer])
    return {"if": cond, "then": {"properties": {"init": {
        "enum": inits, "errorMessage": f"init {{value}} is not available for {layer}; use one of {', '.join(inits)}"}}}}


SPEC_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/keras-surgeon-rl/keras_surgeon_rl/spec.schema.json",
    "title": "keras_surgeon_rl surgery spec",
    "description": "How a Keras model changes, by unit ID: features, actions, hidden units, layers.",
    "type": "object",
    "errorMessage": "a spec is a dict with keys inputs, outputs, units, insert, delete, init; got {value}",
    "properties": {
        "inputs": _changes("input", allow_init=False),
        "outputs": _changes("output", allow_init=True),
        "units": {
            "description": "hidden layers to resize (a count: new IDs appended) or to list by unit ID "
                           "(drop, keep, permute, add)",
            "type": "object", "propertyNames": {"type": "string"},
            "additionalProperties": {
                "anyOf": [_COUNT, {**_ref("id_list"), "minItems": 1}],
                "errorMessage": f"{{value}} is not a unit count or a list of unit IDs; give a count from 1 to "
                                f"{MAX_UNITS:,} or at least one ID (a layer keeps at least one unit; 'delete' removes a "
                                "layer whose input and output shapes match, e.g. an inserted identity)",
            },
            "errorMessage": "expected {{layer_name: count or [ids]}}, got {value}",
        },
        "insert": {
            "description": "new layers, each initialized to pass its input through",
            "type": "array",
            "errorMessage": "expected a list of {{'after': layer_name, 'layer': 'Dense', ...}}, got {value}",
            "items": {
                "type": "object", "required": ["after"],
                "errorMessage": "expected a dict with 'after': layer_name, got {value}",
                "properties": {
                    "after": {**_NAME, "description": "the layer the new one reads"},
                    "layer": {"enum": list(INSERT_INITS), "default": "Dense",
                              "errorMessage": f"cannot insert a {{value}} layer; insertable: {', '.join(INSERT_INITS)}. "
                                              "Not recurrent layers (LSTM, GRU, SimpleRNN): none passes its input "
                                              "through exactly (gates and tanh squash it); insert a Dense, which "
                                              "acts on every step of a sequence"},
                    "init": {"enum": ["identity", "top_right", "random"], "default": "identity",
                             "errorMessage": "{value} is not an insert init; use identity, random or (Conv) top_right"},
                    "name": {**_NAME, "description": "the new layer's name (default: <after>_<layer>)"},
                    "units": {**_COUNT, "description": "Dense units (default: as many as its input)"},
                    "filters": {**_COUNT, "description": "Conv filters (default: as many as its input)"},
                    "activation": {"type": "string", "errorMessage": "{value} is not an activation name"},
                    "use_bias": {"type": "boolean"},
                    "kernel_size": {"anyOf": [{"type": "integer", "minimum": 1},
                                              {"type": "array", "items": {"type": "integer", "minimum": 1}}],
                                    "errorMessage": "{value} is not a kernel size (a positive integer or a list)"},
                    "padding": {"enum": ["same", "valid", "causal"]},
                    "data_format": {"enum": ["channels_last", "channels_first"]},
                },
                "additionalProperties": True,  # other layer config keys, checked by the framework
                "allOf": [_insert_init(layer) for layer in INSERT_INITS],
            },
        },
        "delete": {
            "description": "layers to remove (their readers take their input)",
            "type": "array", "items": _NAME, "uniqueItems": True,
            "errorMessage": "expected a list of layer names, each once, got {value}",
        },
        "init": {"enum": list(INIT_MODES), "default": "preserve",
                 "description": "how new hidden units start",
                 "errorMessage": f"{{value}} is not an init mode; use one of {', '.join(INIT_MODES)}"},
    },
    "additionalProperties": False,
    "$defs": {
        "unit_id": {
            "description": "a unit ID: a string, a finite number, or a list of them",
            "anyOf": [{"type": "string"}, _FINITE, {"type": "array", "items": _ref("unit_id")}],
            "errorMessage": "{value} is not a unit ID; IDs are strings, finite numbers or lists of them",
        },
        "id_list": {"type": "array", "items": _ref("unit_id"), "uniqueItems": True,
                    "errorMessage": "expected a list of unit IDs, got {value}"},
        "new_unit_init": {
            "description": f"how one new output unit starts: {NEW_UNIT_INIT_HELP}",
            "anyOf": [
                {"enum": ["random", "zeros", "keep_greedy"]},
                {"type": "string", "pattern": "^copy:.+"},
                {"type": "object", "required": ["copy"], "additionalProperties": False,
                 "properties": {"copy": _ref("unit_id"), "bias_offset": {
                     **_FINITE, "errorMessage": "bias_offset {value} is not a finite number"}}},
                {"type": "object", "required": ["keep_greedy"], "additionalProperties": False,
                 "properties": {"keep_greedy": {
                     **_FINITE, "minimum": 1e-3,
                     "errorMessage": "the keep_greedy margin {value} is not a number of at least 0.001 (a smaller "
                                     "margin can vanish in float32 rounding)"}}},
            ],
            "errorMessage": f"{{value}} is not a new-unit init; use {_esc(NEW_UNIT_INIT_HELP)}",
        },
        "input_change": _change(allow_init=False),
        "output_change": _change(allow_init=True),
    },
}


# Validation -----------------------------------------------------------------------------------
def _validator_class():
    from jsonschema import Draft202012Validator, validators

    def finite(validator, wanted, instance, schema):
        if wanted and isinstance(instance, float) and not math.isfinite(instance):
            from jsonschema.exceptions import ValidationError

            yield ValidationError(f"{instance!r} is not a finite number")

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "array", lambda _, x: isinstance(x, (list, tuple)))
    return validators.extend(Draft202012Validator, {"finite": finite}, type_checker=checker)


_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = _validator_class()(SPEC_SCHEMA)
    return _VALIDATOR


def plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, throughout a spec (other values are left for the schema)."""
    import numpy as np

    if isinstance(value, np.generic) and value.ndim == 0 and not isinstance(value, (np.str_, np.bytes_, np.void)):
        return value.item()
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value) if isinstance(value, list) else tuple(plain(v) for v in value)
    return value


def where(path) -> str:
    """A spec path as it reads in messages: ``outputs['q'].init``, ``insert[0].units``."""
    out = ""
    fields = {"old", "new", "axis", "init", "after", "layer", "name", "units", "filters", "copy", "bias_offset",
              "keep_greedy", "activation", "kernel_size", "padding", "data_format", "use_bias"}
    parts = list(path)
    for i, p in enumerate(parts):
        if i == 0:
            out = str(p)
        elif isinstance(p, int) and not isinstance(p, bool) and parts[0] in ("insert", "delete") and i == 1:
            out += f"[{p}]"
        elif isinstance(p, str) and p in fields and not (i == 1 and parts[0] in ("inputs", "outputs", "units")
                                                          and p not in ("old", "new", "axis", "init")):
            out += f".{p}"
        else:
            out += f"[{p!r}]"
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _same(a: Any, b: Any) -> bool:
    """Equal as unit IDs (lists compare by items; 1 == 1.0, as in a dict)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is not bool and type(b) is not bool and a == b


def _message(error) -> str:
    from keras_surgeon_rl.spec import suggest

    path = list(error.absolute_path)
    at = where(path)
    prefix = f"{at}: " if at else ""
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        if extra and allowed:
            k = extra[0]
            head = "unknown spec key" if not at else f"{at}: unknown key"
            return f"{head} {k!r}; allowed: {', '.join(allowed)}.{suggest(k, allowed)}"
    if error.validator == "uniqueItems" and isinstance(instance, (list, tuple)):
        for j, v in enumerate(instance):
            i = next((i for i in range(j) if _same(instance[i], v)), None)
            if i is not None:
                if path and path[0] == "delete":
                    return f"spec 'delete': {v!r} is listed twice"
                return f"{prefix}unit ID {v!r} appears twice (positions {i} and {j}); unit IDs must be unique"
    if error.validator == "finite":
        return f"{prefix}{_short(instance)} is not a finite number; NaN and infinity are not allowed here"
    if "propertyNames" in error.absolute_schema_path:
        return f"{prefix}the name {instance!r} is not a string; name layers and model inputs/outputs by their names"
    e = error
    while e is not None:  # the closest declared message
        msg = e.schema.get("errorMessage") if isinstance(e.schema, dict) else None
        if msg:
            text = msg.format(value=_short(e.instance))
            if e is error and error.validator == "enum":
                text += suggest(instance, error.validator_value)
            at = where(list(e.absolute_path))
            return f"{at}: {text}" if at else f"spec: {text}"
        e = e.parent
    return f"{prefix}{error.message}"


def validate_part(value: Any, definition: str, where: str) -> Any:
    """Check one value against ``SPEC_SCHEMA["$defs"][definition]`` (e.g. a ``new_unit_init``).

    Raises:
        SurgeryError: the message starts with ``where``.
    """
    from jsonschema.exceptions import best_match

    value = plain(value)
    schema = {"$defs": SPEC_SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    error = best_match(_validator_class()(schema).iter_errors(value))
    if error is not None:
        message = _message(error)
        if list(error.absolute_path):  # "bias_offset: …" inside the value
            raise SurgeryError(f"{where}.{message}")
        raise SurgeryError(f"{where}: {message.removeprefix('spec: ')}")
    return value


def validate(spec: Any) -> Any:
    """Check ``spec`` against :data:`SPEC_SCHEMA`; returns it with NumPy scalars made plain.

    Raises:
        SurgeryError: naming the key at fault, what was given and what is expected.
    """
    from jsonschema.exceptions import best_match

    spec = plain(spec)
    try:
        error = best_match(_validator().iter_errors(spec))
    except TypeError as e:  # a value the validator cannot even compare (a set, an array…)
        raise SurgeryError(f"the spec holds a value of an unsupported type ({e}); specs hold dicts, lists, "
                           "strings, numbers and booleans") from e
    if error is not None:
        raise SurgeryError(_message(error))
    return spec
