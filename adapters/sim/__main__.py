"""Run a simulated park: ``python -m adapters.sim PARK.toml [options]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from adapters.sim.park import load_park_toml, run_park


def main(argv: list[str] | None = None) -> None:
    """Parse plain arguments and run the park until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sim", description=__doc__)
    parser.add_argument("park", help="park TOML file, e.g. config/demo-park.toml")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--mqtt-root", default="vpp")
    parser.add_argument("--csms-url", default=None, help="ws://host:port/ocpp/")
    parser.add_argument("--period", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    spec = load_park_toml(args.park)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_park(
            spec, time_scale=args.time_scale, mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port, mqtt_root=args.mqtt_root, csms_url=args.csms_url,
            period_s=args.period,
        ))  # fmt: skip


if __name__ == "__main__":
    main()
