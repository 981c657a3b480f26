"""What the tests share: the repository's paths (more helpers join in later commits)."""

from tests.support.paths import DEMO_PARK, EXAMPLE_SETTINGS, REPO

__all__ = ["DEMO_PARK", "EXAMPLE_SETTINGS", "REPO"]
