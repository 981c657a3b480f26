"""Tests of vpp.events: the event record, its store in Redis, the settlement report."""
