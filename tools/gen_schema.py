"""Write `.cog/openapi_schema.json` from the Predictor's signature.

`cog build` normally generates this file (its Go tool parses predict.py statically) and the coglet HTTP
server loads it from `.cog/openapi_schema.json` to validate requests (422 on bad input) and to serve
`/openapi.json`. The cog CLI does not run everywhere (not in this repository's CI), so this tool
produces the same OpenAPI 3.0.2 document from cog's own Python inspector (`cog._inspector`), laid out
as cog 0.23's generator lays it out. `tests/test_schema.py` fails when the committed file is stale.

    python -m tools.gen_schema            # (re)write .cog/openapi_schema.json
    python -m tools.gen_schema --check    # exit 1 when the committed file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / ".cog" / "openapi_schema.json"


def _title(name: str) -> str:
    return " ".join(p[:1].upper() + p[1:] for p in name.split("_"))


def _primitive_json(prim: Any) -> dict[str, Any]:
    return dict(prim.json_type())


def _field_json(ft: Any) -> dict[str, Any]:
    from cog import _adt as adt

    if ft.repetition in (adt.Repetition.REPEATED, adt.Repetition.OPTIONAL_REPEATED):
        return {"type": "array", "items": _primitive_json(ft.primitive)}
    return _primitive_json(ft.primitive)


def _default_json(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_default_json(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value  # enums
    return value


def _accepts(module: str, name: str) -> dict[str, str]:
    """`Input(accept=...)` of each input: cog's inspector drops it, its Go generator writes it as
    `x-cog-accept` (the HTML accept attribute's format, e.g. ".zip"), so it is read from the signature."""
    import importlib
    import inspect

    from cog.input import FieldInfo

    predictor = getattr(importlib.import_module(module), name)
    fn = predictor.run if "run" in vars(predictor) else predictor.predict
    out = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if isinstance(param.default, FieldInfo) and param.default.accept:
            out[pname] = param.default.accept
    return out


def _input_schema(
    info: Any, accepts: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    from cog import _adt as adt

    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: list[tuple[str, dict[str, Any]]] = []
    for name, field in sorted(info.inputs.items(), key=lambda kv: kv[1].order):
        prop: dict[str, Any] = {"x-order": field.order}
        if field.choices:
            enum_type = field.type.primitive.json_type().get("type", "string")
            enums.append(
                (
                    name,
                    {"title": name, "description": "An enumeration.", "enum": list(field.choices), "type": enum_type},
                )
            )
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        else:
            prop["title"] = _title(name)
            prop.update(_field_json(field.type))
        nullable = field.type.repetition in (adt.Repetition.OPTIONAL, adt.Repetition.OPTIONAL_REPEATED)
        has_default = field.default is not None or nullable
        if not has_default and field.type.repetition in (adt.Repetition.REQUIRED, adt.Repetition.REPEATED):
            required.append(name)
        if has_default:
            prop["default"] = _default_json(field.default)
        if nullable:
            prop["nullable"] = True
        if field.description is not None:
            prop["description"] = field.description
        if field.ge is not None:
            prop["minimum"] = int(field.ge) if float(field.ge).is_integer() else field.ge
        if field.le is not None:
            prop["maximum"] = int(field.le) if float(field.le).is_integer() else field.le
        if field.min_length is not None:
            prop["minLength"] = field.min_length
        if field.max_length is not None:
            prop["maxLength"] = field.max_length
        if field.regex is not None:
            prop["pattern"] = field.regex
        if field.deprecated:
            prop["deprecated"] = True
        if accepts and name in accepts:
            prop["x-cog-accept"] = accepts[name]
        properties[name] = dict(sorted(prop.items()))
    schema: dict[str, Any] = {"title": "Input", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema, enums


_OK = {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def build_schema(module: str = "predict", name: str = "Predictor") -> dict[str, Any]:
    """The OpenAPI 3.0.2 document for `module:name` (a predict-mode predictor), as cog 0.23 writes it."""
    import cog
    from cog import _inspector

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # BasePredictor/predict(): the seed's API, kept
        info = _inspector.create_predictor(module, name)
    input_schema, enums = _input_schema(info, _accepts(module, name))
    output_schema = info.output.json_type()

    components: dict[str, Any] = {"Input": input_schema, "Output": output_schema}
    for enum_name, enum_schema in enums:
        components[enum_name] = enum_schema
    components["PredictionRequest"] = {
        "title": "PredictionRequest",
        "type": "object",
        "properties": {"id": {"title": "Id", "type": "string"}, "input": {"$ref": "#/components/schemas/Input"}},
    }
    components["PredictionResponse"] = {
        "title": "PredictionResponse",
        "type": "object",
        "properties": {
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "id": {"title": "Id", "type": "string"},
            "version": {"title": "Version", "type": "string"},
            "created_at": {"title": "Created At", "type": "string", "format": "date-time"},
            "started_at": {"title": "Started At", "type": "string", "format": "date-time"},
            "completed_at": {"title": "Completed At", "type": "string", "format": "date-time"},
            "status": {"title": "Status", "type": "string"},
            "error": {"title": "Error", "type": "string"},
            "logs": {"title": "Logs", "type": "string"},
            "metrics": {"title": "Metrics", "type": "object"},
        },
    }
    components["Status"] = {
        "title": "Status",
        "description": "An enumeration.",
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "type": "string",
    }
    components["HTTPValidationError"] = {
        "title": "HTTPValidationError",
        "type": "object",
        "properties": {
            "detail": {"title": "Detail", "type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
        },
    }
    components["ValidationError"] = {
        "title": "ValidationError",
        "required": ["loc", "msg", "type"],
        "type": "object",
        "properties": {
            "loc": {
                "title": "Location",
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
    }
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": {"200": _OK}}},
        "/health-check": {
            "get": {"summary": "Healthcheck", "operationId": "healthcheck_health_check_get", "responses": {"200": _OK}}
        },
        "/predictions": {
            "post": {
                "summary": "Predict",
                "description": "Run a single prediction on the model",
                "operationId": "predict_predictions_post",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/PredictionResponse"}}
                        },
                    },
                    "422": _422,
                },
            }
        },
        "/predictions/{prediction_id}/cancel": {
            "post": {
                "summary": "Cancel",
                "operationId": "cancel_predictions__prediction_id__cancel_post",
                "parameters": [
                    {
                        "required": True,
                        "schema": {"title": "Prediction Id", "type": "string"},
                        "name": "prediction_id",
                        "in": "path",
                    }
                ],
                "responses": {"200": _OK, "422": _422},
            }
        },
    }
    return {
        "components": {"schemas": components},
        "info": {"title": "Cog", "version": cog.__version__},
        "openapi": "3.0.2",
        "paths": paths,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    ap.add_argument("--out", type=Path, default=SCHEMA_PATH)
    args = ap.parse_args(argv)
    text = render(build_schema())
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run `python -m tools.gen_schema`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
