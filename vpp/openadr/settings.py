"""Settings of the OpenADR 3.1 VEN: the typed `VenSettings` and the ``[openadr]`` file section.

`OpenAdrSettings` is what the service's settings file fills (``vpp.settings``);
its `OpenAdrSettings.ven_settings` builds the VEN's `VenSettings`, so every
value has one default, stated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OpenAdrSettings", "VenSettings"]

#: Seconds between polls of the VTN's ``GET /events``, unless set otherwise.
_POLL_INTERVAL_S = 30.0


@dataclass(frozen=True, kw_only=True, slots=True)
class VenSettings:
    """How the park's VEN reaches its grid operator's VTN and reads its events.

    Attributes:
        vtn_url: Base URL of the VTN API (the ``/programs``, ``/events`` … root).
        client_id: OAuth2 client id provisioned at enrollment.
        client_secret: OAuth2 client secret provisioned at enrollment.
        ven_name: This VEN's venName; also the report ``clientName``.
        program_names: programName of every program to follow.
        park_capacity_kw: Park load the SIMPLE levels are fractions of, in kW.
        simple_shed_fractions: Fraction of ``park_capacity_kw`` to shed for SIMPLE
            levels 0, 1, 2, 3 (normal, moderate, high, emergency).
        relative_is_reduction: The enumeration schema bounds DISPATCH_SETPOINT_RELATIVE
            to values ≥ 0, so its direction is a program convention: True reads the
            value as kW of reduction below baseline, False as kW of increase.
        poll_interval_s: Seconds between polls of ``GET /events``.
        request_timeout_s: Total timeout of one HTTP request.
        token_refresh_margin_s: Fetch a new token this long before the old one expires.
        backoff_scale_s: Seconds; after the n-th failure in a row the VEN waits a delay
            drawn from ``[cap/2, cap]``, ``cap = backoff_scale_s × 1.5**min(10, n)``
            (:mod:`vpp.openadr.backoff`).
        use_mqtt: Subscribe to the VTN's MQTT notifier when it offers one.
        report_on_interval_end: POST/PUT a report after each event interval ends
            when the event's reportDescriptors ask for USAGE, BASELINE, DELTA_USAGE
            or STORAGE_CHARGE_LEVEL.
        spec_path: openadr3.yaml to validate against (else ``VPP_OPENADR_SPEC``,
            else the OpenADR 3.1.1 copy shipped in ``vpp/openadr/spec/``).
        scope: OAuth2 scope to ask for, if the VTN wants one.
    """

    vtn_url: str
    client_id: str
    client_secret: str = field(repr=False)
    ven_name: str
    program_names: tuple[str, ...]
    park_capacity_kw: float
    simple_shed_fractions: tuple[float, float, float, float] = (0.0, 0.1, 0.25, 0.5)
    relative_is_reduction: bool = True
    poll_interval_s: float = _POLL_INTERVAL_S
    request_timeout_s: float = 10.0
    token_refresh_margin_s: float = 30.0
    backoff_scale_s: float = 1.0
    use_mqtt: bool = True
    report_on_interval_end: bool = True
    spec_path: str | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        """Reject settings that cannot work."""
        if not self.program_names:
            raise ValueError("program_names must name at least one program")
        if self.park_capacity_kw <= 0:
            raise ValueError("park_capacity_kw must be positive")
        if len(self.simple_shed_fractions) != 4 or not all(
            0.0 <= f <= 1.0 for f in self.simple_shed_fractions
        ):
            raise ValueError("simple_shed_fractions must be four fractions in [0, 1]")
        if self.poll_interval_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("poll_interval_s and request_timeout_s must be positive")


@dataclass
class OpenAdrSettings:
    """The ``[openadr]`` section: the park's VEN, off while ``vtn_url`` or ``park`` is empty.

    Attributes:
        vtn_url: Base URL of the VTN API; empty turns the VEN off.
        ven_name: This VEN's venName.
        client_id: OAuth2 client id provisioned at enrollment.
        client_secret: OAuth2 client secret (kept out of ``repr``).
        poll_interval_s: Seconds between polls of ``GET /events``.
        park: The park the VEN speaks for; empty turns the VEN off.
        programs: programName(s) to follow, comma-separated.
        park_capacity_kw: Park load that SIMPLE levels are fractions of, in kW.
    """

    vtn_url: str = ""
    ven_name: str = "vpp-ven"
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    poll_interval_s: float = _POLL_INTERVAL_S
    park: str = ""
    programs: str = ""
    park_capacity_kw: float = 1000.0

    @property
    def enabled(self) -> bool:
        """Whether the service runs a VEN (a VTN and a park are both named)."""
        return bool(self.vtn_url and self.park)

    def ven_settings(self) -> VenSettings:
        """The VEN's settings; what this section does not name keeps `VenSettings`' default.

        Raises:
            ValueError: the values cannot work (no program named, capacity not positive, …).
        """
        return VenSettings(
            vtn_url=self.vtn_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            ven_name=self.ven_name,
            program_names=tuple(p.strip() for p in self.programs.split(",") if p.strip()),
            park_capacity_kw=self.park_capacity_kw,
            poll_interval_s=self.poll_interval_s,
        )
