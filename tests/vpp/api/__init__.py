"""Tests of vpp.api: the HTTP API over real HTTP and Redis."""
