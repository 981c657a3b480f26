"""Tests of vpp.history: the grid, the store, the recorder, the baselines, generated history."""
