"""Local fake services that speak the real wire protocols, for tests and benchmarks."""
