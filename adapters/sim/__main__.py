"""Run a simulated park: ``python -m adapters.sim PARK.toml [options]``.

The device-level runner, without the service's settings: every charger logs
in with ``--password``. The file must state every field the simulators read
(``config/demo-park.toml`` does): this runner reads it as it stands, with no
defaults. ``vpp simulate --park PARK.toml`` reads any valid park file (the
service's reader fills in the defaults) and gives each charger the password
the service expects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tomllib
from pathlib import Path

from adapters.sim.park import DEFAULT_PASSWORD, park_spec, run_park


def main(argv: list[str] | None = None) -> None:
    """Parse plain arguments and run the park until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("park", help="park TOML file, e.g. config/demo-park.toml")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--mqtt-root", default="vpp")
    parser.add_argument("--csms-url", default=None, help="ws://host:port/ocpp/")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="the chargers' password")
    parser.add_argument("--period", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        spec = park_spec(tomllib.loads(Path(args.park).read_text()), password=args.password)
    except KeyError as exc:
        parser.exit(2, f"{args.park}: no {exc} (use `vpp simulate`, which fills in defaults)\n")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_park(
            spec, time_scale=args.time_scale, mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port, mqtt_root=args.mqtt_root, csms_url=args.csms_url,
            period_s=args.period,
        ))  # fmt: skip


if __name__ == "__main__":
    main()
