"""The load-test harness parses and imports, and the bare processor answers one exchange.

No timed benchmark runs here: `make bench` does that (`loadtest/run_bench.py`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from loadtest import run_bench
from loadtest.bare_processor import start_bare_processor
from protos import wire

REPO = Path(__file__).resolve().parents[3]


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def test_k6_script_parses_with_a_client_certificate(tmp_path: Path) -> None:
    k6 = _tool("k6")
    if k6 is None:
        pytest.skip("k6 is not installed (the test extra installs it)")
    from mesh.certs import write_pki
    from mesh.sandbox import SANDBOX_WORKLOADS, TRUST_DOMAIN

    cert, key = write_pki(tmp_path, TRUST_DOMAIN, SANDBOX_WORKLOADS).workload("checkout")
    done = subprocess.run(
        [k6, "inspect", "-e", f"CERT={cert}", "-e", f"KEY={key}",
         str(REPO / "loadtest/k6/stream.js")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"tlsAuth"' in done.stdout and '"streams"' in done.stdout


def test_k6_script_refuses_a_non_loopback_target(tmp_path: Path) -> None:
    k6 = _tool("k6")
    if k6 is None:
        pytest.skip("k6 is not installed (the test extra installs it)")
    pem = tmp_path / "c.pem"
    pem.write_text("x")
    done = subprocess.run(
        [k6, "inspect", "-e", f"CERT={pem}", "-e", f"KEY={pem}",
         "-e", "TARGET=https://192.0.2.1:443", str(REPO / "loadtest/k6/stream.js")],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "loopback targets only" in done.stdout + done.stderr


def test_locustfile_imports_and_judges_streams() -> None:
    if _tool("locust") is None:
        pytest.skip("locust is in the bench extra (make bench)")
    # locust monkey-patches the process with gevent on import, so not in this one.
    check = (
        "import runpy; ns = runpy.run_path('loadtest/locustfile.py');"
        "p = ns['stream_problem'];"
        "assert p(200, b'data: {}\\n\\ndata: [DONE]\\n\\n') is None;"
        "assert 'DONE' in p(200, b'data: {}\\n\\n');"
        "assert p(403, b'') == 'status 403';"
        "assert 'error' in p(200, b'data: {\"error\": 1}\\n\\ndata: [DONE]\\n\\n');"
        "assert ns['StreamUser'].ssl_context_factory is ns['client_ssl_context']"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_runner_imports_and_parses_its_options() -> None:
    args = run_bench.parse_args(["--quick", "--no-locust", "--setups", "envoy,weir"])
    assert args.quick and args.no_locust and args.setups == "envoy,weir"
    assert run_bench.QUICK.main_s < run_bench.Settings().main_s
    assert "prompt-injection" in run_bench.FULL_POLICY
    from mesh.policy import parse_policy

    rules = parse_policy(run_bench.FULL_POLICY).workloads[0]
    assert {r.scanner for r in rules.request} == {"secrets", "pii", "prompt-injection"}
    assert {r.scanner for r in rules.response} == {"secrets", "pii", "prompt-injection"}


def test_runner_summarises_a_py_spy_profile() -> None:
    raw = (
        "process 1:\"python\";run (asyncio/runners.py:118);"
        "feed (extproc/scanner/stream.py:40) 30\n"
        "process 1:\"python\";run (asyncio/runners.py:118);Process (extproc/server.py:70) 10\n"
    )
    summary = run_bench.summarise_profile(raw)
    assert summary["samples"] == 40
    assert summary["areas"][0] == ("scanner (extproc/scanner)", 75.0)
    assert summary["self"][0][0] == "feed (extproc/scanner/stream.py)"


async def test_bare_processor_answers_one_exchange() -> None:
    server, port = await start_bare_processor("127.0.0.1:0")
    messages = []
    request = wire.ProcessingRequest()
    request.request_headers.headers.headers.add(key=":path", raw_value=b"/v1/chat/completions")
    messages.append(request)
    for body, end in ((b'{"model":', False), (b' "m"}', True)):
        request = wire.ProcessingRequest()
        request.request_body.body, request.request_body.end_of_stream = body, end
        messages.append(request)
    request = wire.ProcessingRequest()
    request.response_headers.headers.headers.add(key=":status", raw_value=b"200")
    messages.append(request)
    request = wire.ProcessingRequest()
    request.response_body.body, request.response_body.end_of_stream = b"data: [DONE]\n\n", False
    messages.append(request)
    request = wire.ProcessingRequest()
    request.response_trailers.SetInParent()
    messages.append(request)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = wire.ExternalProcessorStub(channel)
            responses = [r async for r in stub.Process(iter(messages))]
    finally:
        await server.stop(0)
    phases = [r.WhichOneof("response") for r in responses]
    assert phases == ["request_headers", "request_body", "request_body", "response_headers",
                      "response_body", "response_trailers"]
    streamed = [r.request_body.response.body_mutation.streamed_response for r in responses[1:3]]
    assert [(s.body, s.end_of_stream) for s in streamed] == [(b'{"model":', False),
                                                             (b' "m"}', True)]
    assert responses[0].request_headers.response.status == 0  # CONTINUE
    out = responses[4].response_body.response.body_mutation.streamed_response
    assert out.body == b"data: [DONE]\n\n" and not out.end_of_stream


@pytest.mark.parametrize("terms", [0, 10, 500])
def test_the_rule_count_policies_are_valid_and_carry_their_terms(terms: int) -> None:
    from loadtest.run_bench import deny_list_policy
    from mesh.policy import parse_policy

    policy = parse_policy(deny_list_policy(terms), "bench.yaml")
    deny = [r for r in policy.workloads[0].response if r.scanner == "deny-list"]
    assert sum(len(r.terms) for r in deny) == terms
