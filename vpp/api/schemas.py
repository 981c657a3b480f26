"""Request and response envelopes of the HTTP API (the domain models are in ``vpp.model``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter

from vpp.model import Asset, ParkSummary

__all__ = [
    "AssetList",
    "AssetPatch",
    "AssetPayload",
    "FieldProblem",
    "Health",
    "ParkList",
    "ProblemDetails",
    "Readiness",
    "merge_patch_schema",
]


class AssetPayload(RootModel[Asset]):
    """An asset of any kind, tagged by ``kind``."""


def merge_patch_schema(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of an RFC 7396 merge patch of documents valid under ``schema``.

    Every member of an object becomes optional; an optional member may be
    ``null`` (it is removed, so its default comes back), a required one may
    not; objects are patched member by member, anything else is replaced
    whole. Rules across members (a window, a limit under another) are left
    to the patched document, which is validated whole (422 when it fails).

    Args:
        schema: a JSON Schema (pydantic's, with ``$ref`` into ``defs``).
        defs: the ``$defs`` its references point into.
    """
    if "$ref" in schema:
        return merge_patch_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        # each branch patched on its own (a null branch, or a scalar, stays as it is)
        return {"anyOf": [merge_patch_schema(b, defs) for b in branches]}
    if schema.get("type") != "object" or "properties" not in schema:
        return schema
    required = set(schema.get("required", []))
    props: dict[str, Any] = {}
    for name, sub in schema["properties"].items():
        part = merge_patch_schema(sub, defs)
        props[name] = part if name in required else {"anyOf": [part, {"type": "null"}]}
    out: dict[str, Any] = {"type": "object", "properties": props}
    if "additionalProperties" in schema:
        out["additionalProperties"] = schema["additionalProperties"]
    if "title" in schema:
        out["title"] = schema["title"] + " (merge patch)"
    return out


def _asset_patch_schema(schema: dict[str, Any]) -> None:
    full = TypeAdapter(Asset).json_schema()
    patch = merge_patch_schema(full, full.get("$defs", {}))
    description = schema.get("description", "")
    schema.clear()
    schema.update(patch, description=description)


class AssetPatch(RootModel[dict[str, Any]]):
    """A JSON merge patch (RFC 7396) of an asset; ``id`` and ``kind`` cannot change.

    Its schema is that of a merge patch of any kind of asset; the patched
    asset is validated whole against its own kind (422 naming the field).
    """

    model_config = ConfigDict(json_schema_extra=_asset_patch_schema)


class AssetList(BaseModel):
    """The enrolled assets of a park."""

    items: list[Asset]


class ParkList(BaseModel):
    """The parks a token may see, with their asset counts."""

    items: list[ParkSummary]


class FieldProblem(BaseModel):
    """One invalid field."""

    field: str = Field(description="dotted path, e.g. soc_max or connection.port")
    message: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    errors: list[FieldProblem] | None = Field(default=None, description="on 422 only")


class Health(BaseModel):
    """Liveness."""

    status: str = "ok"


class Readiness(BaseModel):
    """Readiness: whether Redis answers, and the health of background components.

    ``ready`` follows Redis only: every master of a Redis Cluster (or the one
    server) answered a PING within ``[redis] timeout_s``; ``redis_nodes``
    names each, ``host:port`` -> answered (a cluster whose nodes cannot be
    learnt lists its seed nodes, all false); a component reports under ``components``
    with its own ``ok``: the OpenADR VEN with its tasks and their restarts,
    ``replicas`` (`vpp.replicas.ParkShares.health`) with this replica's id
    (``replica``), the parks it holds (``held``) and the live replicas (``live``).
    """

    ready: bool
    redis: bool
    redis_nodes: dict[str, bool] = Field(default_factory=dict)
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)
