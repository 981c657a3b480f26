"""Park files: one park and its assets in TOML (``config/demo-park.toml``).

::

    [park]
    id = "nansha-zc"
    name = "..."

    [[assets]]
    kind = "battery"
    id = "bess-01"
    ...

The device simulators read the same file to start one simulated device per
asset, so the file is the single description of a (demo) park.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vpp.errors import AlreadyExists, FieldError, InvalidInput, SettingsError
from vpp.model import Asset, Park, invalid_input, parse_asset
from vpp.state import State

__all__ = ["EnrollResult", "ParkFile", "enroll_park", "load_park_file"]

log = logging.getLogger("vpp.parkfile")


@dataclass(frozen=True)
class ParkFile:
    """A park and its assets, validated.

    Attributes:
        park: the park's metadata.
        assets: its assets, in file order.
    """

    park: Park
    assets: list[Asset]


@dataclass(frozen=True)
class EnrollResult:
    """What ``enroll_park`` did.

    Attributes:
        created: ids enrolled now.
        existing: ids that were enrolled already and left as they are.
    """

    created: list[str]
    existing: list[str]


def parse_park_file(data: dict[str, Any]) -> ParkFile:
    """Validate a decoded park file.

    Raises:
        InvalidInput: naming fields as ``park.id`` or ``assets[3].soc_max``.
    """
    try:
        park = Park.model_validate(data.get("park", {}))
    except ValidationError as exc:
        raise invalid_input(exc, prefix="park") from exc
    assets: list[Asset] = []
    errors: list[FieldError] = []
    for i, raw in enumerate(data.get("assets", [])):
        try:
            assets.append(parse_asset(raw))
        except InvalidInput as exc:
            errors += [FieldError(f"assets[{i}].{e.field}", e.message, e.type) for e in exc.errors]
    seen: set[str] = set()
    for i, asset in enumerate(assets):
        if asset.id in seen:
            errors.append(FieldError(f"assets[{i}].id", f"duplicate id {asset.id!r}", "duplicate"))
        seen.add(asset.id)
    if errors:
        raise InvalidInput(errors)
    return ParkFile(park=park, assets=assets)


def load_park_file(path: str | Path) -> ParkFile:
    """Read and validate a park file.

    Raises:
        SettingsError: the file cannot be read or is not valid TOML.
        InvalidInput: a park or asset field is invalid.
    """
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read park file {path}: {exc}") from exc
    return parse_park_file(data)


async def enroll_park(state: State, park_file: ParkFile) -> EnrollResult:
    """Store the park's metadata and enroll every asset not enrolled yet (idempotent)."""
    await state.put_park(park_file.park)
    created: list[str] = []
    existing: list[str] = []
    for asset in park_file.assets:
        try:
            await state.enroll(park_file.park.id, asset)
            created.append(asset.id)
        except AlreadyExists:
            existing.append(asset.id)
    log.info(
        "park %s: %d assets enrolled, %d already there",
        park_file.park.id,
        len(created),
        len(existing),
    )
    return EnrollResult(created=created, existing=existing)
