"""Request and response envelopes of the HTTP API (the domain models are in ``vpp.model``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

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
]


class AssetPayload(RootModel[Asset]):
    """An asset of any kind, tagged by ``kind``."""


class AssetPatch(RootModel[dict[str, Any]]):
    """A JSON merge patch (RFC 7396) of an asset; ``id`` and ``kind`` cannot change."""


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

    ``ready`` follows Redis only; a component (the OpenADR VEN) reports under
    ``components`` with its own ``ok``, its tasks and their restarts.
    """

    ready: bool
    redis: bool
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)
