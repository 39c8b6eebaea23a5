"""Helpers shared by the test suite: test models and running servers."""
