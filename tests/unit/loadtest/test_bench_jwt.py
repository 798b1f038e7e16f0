"""The JWT benchmark runs its three variants, and each JWT call really verifies a token."""

from __future__ import annotations

from loadtest.bench_jwt import measure


def test_the_jwt_benchmark_measures_the_reference_and_both_algorithms() -> None:
    # headers_step asserts that every call is let through: a token that failed to
    # verify (or a policy that refused it) would stop the benchmark, not skew it.
    figures = measure(calls=20)
    assert set(figures) == {"reference", "RS256", "ES256"}
    for p50, p99 in figures.values():
        assert 0 < p50 <= p99
