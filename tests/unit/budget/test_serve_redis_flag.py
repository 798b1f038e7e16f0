"""`weir serve --redis URL`: a URL that is not Redis's is a usage error (exit 2, message)."""

from __future__ import annotations

import pytest

from extproc.cli import build_parser


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", "redis://"])
def test_a_url_that_is_not_redis_is_refused_with_exit_2(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "--policy", "p.yaml", "--redis", url])
    assert raised.value.code == 2
    assert "expected redis://HOST:PORT/DB" in capsys.readouterr().err


def test_a_redis_url_is_taken_and_the_default_timeout_is_50_ms() -> None:
    args = build_parser().parse_args(
        ["serve", "--policy", "p.yaml", "--redis", "redis://cache.svc:6379/2"]
    )
    assert (args.redis, args.redis_timeout) == ("redis://cache.svc:6379/2", 0.05)
    assert build_parser().parse_args(["serve", "--policy", "p.yaml"]).redis is None
