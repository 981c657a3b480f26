"""Park files: one park and its assets in TOML (``config/demo-park.toml``).

::

    [park]
    id = "nansha-zc"
    name = "..."

    [[assets]]
    kind = "battery"
    id = "bess-01"
    ...

This module is the one reader of park files and the one place their defaults
are applied (the asset models'). The device simulators run what
`simulator_spec` derives from the same validated file, one simulated device
per asset, so the file is the single description of a (demo) park.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.sim.park import SimParkSpec, park_spec
from vpp.errors import AlreadyExists, FieldError, InvalidInput, SettingsError
from vpp.model import Asset, Park, invalid_input, parse_asset
from vpp.state import State
from vpp.supervisor import charger_password

__all__ = [
    "EnrollResult",
    "ParkFile",
    "enroll_park",
    "load_park_file",
    "parse_park_file",
    "simulator_spec",
    "with_charger_passwords",
]

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
    """Store the park's metadata and enroll every asset not enrolled yet (idempotent).

    The park file's metadata replaces what is stored (a change made through
    the API since, e.g. of the grid emission factor, is overwritten): the
    change is logged in the park log as ``park.updated`` by ``park file``,
    and named in the service's log.
    """
    changed = await state.update_park(park_file.park, by="park file")
    if changed:
        log.info(
            "park %s: metadata set from the park file: %s", park_file.park.id, ", ".join(changed)
        )
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


def with_charger_passwords(spec: SimParkSpec, secret: str) -> SimParkSpec:
    """The simulated park with each charger logging in as the service expects.

    Each charger's password becomes ``charger_password(secret, charge point id)``
    (`vpp.supervisor.charger_password`), what the service's OCPP listener checks.

    Args:
        spec: the simulated park (from `simulator_spec` or ``generate_park``).
        secret: the service's ``ocpp.auth_secret``.
    """
    chargers = [
        dataclasses.replace(c, password=charger_password(secret, c.cp_id)) for c in spec.chargers
    ]
    return dataclasses.replace(spec, chargers=chargers)


def simulator_spec(park_file: ParkFile, *, ocpp_secret: str) -> SimParkSpec:
    """The simulated devices of a park file, with the passwords the service expects.

    One simulated device per battery (on its Modbus endpoint), charger and
    flexible load, and one simulated meter per meter with a ``connection``
    (Modbus: SunSpec 203 on its endpoint; MQTT), reading its enterprise's
    simulated devices plus a base load (`adapters.sim.park`); an import-only
    meter (no connection) and PV are enrolled but not simulated.

    Args:
        park_file: the validated park file (`load_park_file`).
        ocpp_secret: the service's ``ocpp.auth_secret``.
    """
    data = {
        "park": park_file.park.model_dump(mode="json"),
        "assets": [asset.model_dump(mode="json") for asset in park_file.assets],
    }
    return with_charger_passwords(park_spec(data), ocpp_secret)
