"""Benchmarks of the broker against `tokenbroker dev` on loopback (bounded, self-stopping)."""
