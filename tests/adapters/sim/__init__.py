"""Tests of adapters.sim: the simulated park read through the adapters."""
