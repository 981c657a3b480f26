"""Tests of the adapters package against the device simulators on loopback."""
