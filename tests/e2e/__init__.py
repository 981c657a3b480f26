"""End-to-end tests: the service and a simulated park speaking the real protocols."""
