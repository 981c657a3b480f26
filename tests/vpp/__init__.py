"""Tests of the vpp package (the service)."""
