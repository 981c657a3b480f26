"""The test suite: real Redis and Mosquitto on loopback; the tree mirrors the product packages."""
