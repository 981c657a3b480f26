"""``python -m vpp``: the same entry point as the ``vpp`` console script."""

from vpp.cli import main

raise SystemExit(main())
