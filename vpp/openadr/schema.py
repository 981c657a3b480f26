"""Loading openadr3.yaml and validating OpenADR bodies against it.

The VEN (and the tests' VTN simulator) validates every body it sends or receives with
:class:`OpenAdrSchema`: component schemas by name (``event``, ``reportRequest``),
whole operations by method and path template (``GET /events`` → 200 → array of
``event``), and the ``values`` of known payload types against the enumeration
schemas shipped beside the spec (``enumerations/*.schema.yaml``).

openadr3.yaml 3.1.1 has two defects that make valid traffic fail a strict
validator; :data:`ERRATA` lists the narrow patches applied at load time.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from vpp.openadr.constants import SPEC_ENV, SPEC_FILE, SPEC_PACKAGE
from vpp.openadr.errors import SchemaViolation

log = logging.getLogger("vpp.openadr.schema")

JsonSchema = dict[str, Any]

#: Patches applied to the loaded spec, each a defect of openadr3.yaml 3.1.1.
ERRATA = (
    "discriminator: `notification.object` and `programRequest.payloadDescriptors` declare a "
    "discriminator without a mapping, so a validator resolves '#/components/schemas/EVENT' "
    "(which does not exist); every discriminator is dropped and oneOf/anyOf alone decide.",
    "ven/resource objectType: `ven` is allOf(objectMetadata, BlVenRequest), which requires "
    "objectType to be both one of objectTypes ('VEN') and 'BL_VEN_REQUEST', so no response "
    "can validate; in the server representations `ven` and `resource` the BL request part is "
    "used without its objectType constraint (objectMetadata's 'VEN'/'RESOURCE' applies).",
)


def locate_spec(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Find openadr3.yaml.

    Order: ``explicit``, the ``VPP_OPENADR_SPEC`` environment variable, then the
    copy of OpenADR 3.1.1 shipped as package data in ``vpp/openadr/spec/`` (so
    any clone or wheel finds it). An override that names a missing file is
    skipped with a warning rather than silently disabling validation.

    Args:
        explicit: A path given in settings; wins when set.

    Returns:
        The path of an existing file, or None (only if the package data is missing).
    """
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get(SPEC_ENV)
    if env:
        candidates.append(Path(env))
    for path in candidates:
        if path.is_file():
            return path
        log.warning("OpenADR spec %s not found; using the packaged 3.1.1 copy", path)
    packaged = resources.files(SPEC_PACKAGE).joinpath(SPEC_FILE)
    # A wheel or an editable install gives a real directory (never a zip here).
    path = Path(str(packaged))
    return path if path.is_file() else None


def _drop_discriminators(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("discriminator", None)
        for value in node.values():
            _drop_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_discriminators(value)


def _unpin_object_type(schemas: dict[str, Any], server: str, request: str) -> None:
    body = copy.deepcopy(schemas[request])
    body["properties"].pop("objectType", None)
    body["required"] = [name for name in body.get("required", []) if name != "objectType"]
    patched = f"_{server}Body"
    schemas[patched] = body
    schemas[server]["allOf"] = [
        {"$ref": f"#/components/schemas/{patched}"}
        if part == {"$ref": f"#/components/schemas/{request}"}
        else part
        for part in schemas[server]["allOf"]
    ]


def apply_errata(spec: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the loaded spec with :data:`ERRATA` applied."""
    spec = copy.deepcopy(spec)
    _drop_discriminators(spec)
    schemas = spec["components"]["schemas"]
    _unpin_object_type(schemas, "ven", "BlVenRequest")
    _unpin_object_type(schemas, "resource", "BlResourceRequest")
    return spec


def _format_error(prefix: str, error: jsonschema.ValidationError) -> str:
    where = prefix + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    return f"{where or '$'}: {error.message[:300]}"


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the OpenADR API, as declared in openadr3.yaml.

    Attributes:
        method: Upper-case HTTP method.
        path: Path template, e.g. ``/events/{eventID}``.
        request_body: Schema of the request body, or None.
        request_content_type: Media type of the request body.
        parameters: Query parameter schemas by name.
        responses: Response schemas by status code (None: no body declared).
    """

    method: str
    path: str
    request_body: JsonSchema | None
    request_content_type: str | None
    parameters: Mapping[str, JsonSchema]
    responses: Mapping[str, JsonSchema | None]


class OpenAdrSchema:
    """Validators built from openadr3.yaml (with :data:`ERRATA`) and its enumerations."""

    def __init__(self, spec: dict[str, Any], enumerations: Mapping[str, JsonSchema]) -> None:
        """Wrap a loaded spec.

        Args:
            spec: The parsed openadr3.yaml (errata are applied here).
            enumerations: Payload value schemas keyed ``event:TYPE`` / ``report:TYPE``.
        """
        self._spec = apply_errata(spec)
        self._components = self._spec["components"]
        self._enumerations = dict(enumerations)
        self._validators: dict[str, OAS30Validator] = {}
        self._operations: dict[tuple[str, str], Operation] = {}

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> OpenAdrSchema:
        """Load openadr3.yaml and the ``enumerations/`` folder beside it, if present."""
        spec_path = Path(path)
        with spec_path.open(encoding="utf-8") as handle:
            spec = yaml.safe_load(handle)
        enumerations: dict[str, JsonSchema] = {}
        folder = spec_path.parent / "enumerations"
        for kind, name in (
            ("event", "event-interval-payloads.schema.yaml"),
            ("report", "report-payloads.schema.yaml"),
        ):
            file = folder / name
            if file.is_file():
                with file.open(encoding="utf-8") as handle:
                    definitions = yaml.safe_load(handle).get("definitions", {})
                for type_name, schema in definitions.items():
                    schema = {k: v for k, v in schema.items() if k != "$id"}
                    enumerations[f"{kind}:{type_name}"] = schema
        return cls(spec, enumerations)

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> OpenAdrSchema | None:
        """Load the spec found by :func:`locate_spec`, or return None (logged once)."""
        path = locate_spec(explicit)
        if path is None:
            _warn_missing()
            return None
        return _load_cached(str(path))

    # -- component schemas -------------------------------------------------

    def _validator(self, key: str, schema: JsonSchema) -> OAS30Validator:
        validator = self._validators.get(key)
        if validator is None:
            root = {**schema, "components": self._components}
            validator = OAS30Validator(root, format_checker=oas30_format_checker)
            self._validators[key] = validator
        return validator

    def _schema_errors(self, key: str, schema: JsonSchema, instance: Any, prefix: str) -> list[str]:
        validator = self._validator(key, schema)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [_format_error(prefix, error) for error in errors]

    def errors(self, name: str, instance: Any, prefix: str = "") -> list[str]:
        """Validate against ``#/components/schemas/<name>`` and payload enumerations.

        Args:
            name: Component schema name, e.g. ``event``.
            instance: Decoded JSON.
            prefix: Prepended to every error path.

        Returns:
            One line per violation; empty when valid.
        """
        if name not in self._components["schemas"]:
            raise KeyError(f"no component schema {name!r} in openadr3.yaml")
        ref = {"$ref": f"#/components/schemas/{name}"}
        found = self._schema_errors(f"component:{name}", ref, instance, prefix)
        if not found and name in ("event", "eventRequest"):
            found = self._payload_errors("event", _event_payloads(instance), prefix)
        elif not found and name in ("report", "reportRequest"):
            found = self._payload_errors("report", _report_payloads(instance), prefix)
        return found

    def check(self, name: str, instance: Any) -> None:
        """Raise :class:`SchemaViolation` unless ``instance`` is a valid ``name``."""
        found = self.errors(name, instance)
        if found:
            raise SchemaViolation(name, found)

    def _payload_errors(
        self, kind: str, payloads: Iterable[tuple[str, Any]], prefix: str
    ) -> list[str]:
        found: list[str] = []
        for where, payload in payloads:
            key = f"{kind}:{payload.get('type')}"
            schema = self._enumerations.get(key)
            if schema is None:
                continue  # a private or unlisted type: only the valuesMap shape applies
            validator = jsonschema.Draft7Validator(schema)
            for error in validator.iter_errors(payload.get("values")):
                found.append(f"{prefix}{where}.values: {payload.get('type')}: {error.message}")
        return found

    # -- operations -------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation:
        """The operation declared for ``method`` on the path template ``path``.

        Raises:
            KeyError: The spec declares no such operation.
        """
        key = (method.upper(), path)
        found = self._operations.get(key)
        if found is not None:
            return found
        item = self._spec["paths"][path]
        op = item[method.lower()]
        body_schema: JsonSchema | None = None
        content_type: str | None = None
        if "requestBody" in op:
            content = op["requestBody"]["content"]
            content_type = next(iter(content))
            body_schema = content[content_type]["schema"]
        params: dict[str, JsonSchema] = {}
        for param in [*item.get("parameters", []), *op.get("parameters", [])]:
            if param.get("in") == "query":
                params[param["name"]] = param["schema"]
        responses: dict[str, JsonSchema | None] = {}
        for status, response in op.get("responses", {}).items():
            if "$ref" in response:
                response = self._components["responses"][response["$ref"].rsplit("/", 1)[-1]]
            content = response.get("content") or {}
            media = content.get("application/json")
            responses[str(status)] = media["schema"] if media else None
        found = Operation(key[0], path, body_schema, content_type, params, responses)
        self._operations[key] = found
        return found

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        """Validate a request body for an operation (form bodies as a dict of fields)."""
        op = self.operation(method, path)
        if op.request_body is None:
            return [] if body is None else [f"{method} {path} takes no body"]
        found = self._schema_errors(f"req:{method}:{path}", op.request_body, body, "request")
        if not found:
            found = self._enumeration_errors(op.request_body, body, "request")
        return found

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Validate a response body for an operation and status."""
        op = self.operation(method, path)
        if str(status) not in op.responses:
            return [f"{method} {path}: status {status} is not declared"]
        schema = op.responses[str(status)]
        if schema is None:
            return []
        key = f"resp:{method}:{path}:{status}"
        found = self._schema_errors(key, schema, body, "response")
        if not found:
            found = self._enumeration_errors(schema, body, "response")
        return found

    def query_errors(self, method: str, path: str, query: Mapping[str, str]) -> list[str]:
        """Validate query parameters (strings coerced to the declared scalar type)."""
        op = self.operation(method, path)
        found: list[str] = []
        for name, raw in query.items():
            schema = op.parameters.get(name)
            if schema is None:
                found.append(f"query.{name}: not a parameter of {method} {path}")
                continue
            value: Any = raw
            kind = schema.get("type")
            try:
                if kind == "integer":
                    value = int(raw)
                elif kind == "boolean":
                    if raw not in ("true", "false"):
                        raise ValueError(raw)
                    value = raw == "true"
                elif kind == "array":
                    value = [raw]
            except ValueError:
                found.append(f"query.{name}: {raw!r} is not a valid {kind}")
                continue
            key = f"query:{method}:{path}:{name}"
            found += self._schema_errors(key, schema, value, f"query.{name}")
        return found

    def _enumeration_errors(self, schema: JsonSchema, body: Any, prefix: str) -> list[str]:
        name = _component_name(schema)
        many = schema.get("type") == "array"
        if many:
            name = _component_name(schema.get("items", {}))
        if name is None:
            return []
        items = body if many and isinstance(body, list) else [body]
        found: list[str] = []
        for index, item in enumerate(items):
            where = f"{prefix}[{index}]" if many else prefix
            if name in ("event", "eventRequest"):
                found += self._payload_errors("event", _event_payloads(item), where)
            elif name in ("report", "reportRequest"):
                found += self._payload_errors("report", _report_payloads(item), where)
        return found


def _component_name(schema: JsonSchema) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _event_payloads(event: Any) -> Iterable[tuple[str, Any]]:
    for i, interval in enumerate(event.get("intervals") or []):
        for j, payload in enumerate(interval.get("payloads") or []):
            yield f".intervals[{i}].payloads[{j}]", payload


def _report_payloads(report: Any) -> Iterable[tuple[str, Any]]:
    for r, resource in enumerate(report.get("resources") or []):
        for i, interval in enumerate(resource.get("intervals") or []):
            for j, payload in enumerate(interval.get("payloads") or []):
                yield f".resources[{r}].intervals[{i}].payloads[{j}]", payload


@cache
def _load_cached(path: str) -> OpenAdrSchema:
    return OpenAdrSchema.from_path(path)


@cache
def _warn_missing() -> None:
    log.warning(
        "openadr3.yaml not found (set %s); the VEN runs without schema validation", SPEC_ENV
    )
