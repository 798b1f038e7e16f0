"""The fast-lane benchmark runs, and its general-path case really turns the lane off."""

from __future__ import annotations

from unittest import mock

import pytest

import extproc.response_body
from extproc.sse_guard import SseGuard
from loadtest import bench_fast_lane


def test_the_bench_patches_the_guard_where_the_exchange_builds_it() -> None:
    # The general-path case swaps this very name; if the exchange built its guard
    # elsewhere, the "general path" figure would silently measure the fast lane.
    assert extproc.response_body.SseGuard is SseGuard


def test_a_short_run_reports_all_three_cases(capsys: pytest.CaptureFixture[str]) -> None:
    built: list[bool] = []
    real = extproc.response_body.SseGuard

    def spy(*args: object, **kwargs: object) -> SseGuard:
        guard = real(*args, **kwargs)  # type: ignore[arg-type]
        built.append(guard.fast_lane)
        return guard

    with mock.patch.object(extproc.response_body, "SseGuard", spy):
        bench_fast_lane.main(["--events", "20", "--rounds", "1"])
    out = capsys.readouterr().out
    for case in ("pass-through", "guarded, fast lane", "guarded, general path"):
        assert case in out
    assert True in built
