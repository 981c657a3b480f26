"""Tests of the ops files: Prometheus rules, alerts and the dashboard."""
