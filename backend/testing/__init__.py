"""Test infrastructure shared by the backend's test suites and benchmarks."""
