"""The guided tour `make demo` prints: real SDK calls through the running sandbox.

Each stop is one call by one workload, with what Weir decided and why. Later
capabilities (redaction, blocking) add their stops here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from mesh.sandbox import SANDBOX_WORKLOADS, MeshSandbox

PROMPT = [{"role": "user", "content": "Say hello to the mesh."}]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    text: str


def _openai_stream(sandbox: MeshSandbox, workload: str, model: str) -> Outcome:
    import openai

    client = sandbox.openai_client(workload)
    try:
        pieces = []
        stream = client.chat.completions.create(model=model, messages=PROMPT, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        return Outcome(True, f"streamed {len(pieces)} chunks: {''.join(pieces)!r}")
    except openai.APIStatusError as exc:
        return Outcome(False, f"{type(exc).__name__} {exc.status_code}: {_message(exc.body)}")


def _anthropic_stream(sandbox: MeshSandbox, workload: str, model: str) -> Outcome:
    import anthropic

    client = sandbox.anthropic_client(workload)
    try:
        with client.messages.stream(model=model, max_tokens=64, messages=PROMPT) as stream:
            text = "".join(stream.text_stream)
        return Outcome(True, f"streamed: {text!r}")
    except anthropic.APIStatusError as exc:
        return Outcome(False, f"{type(exc).__name__} {exc.status_code}: {_message(exc.body)}")


def _forged_xfcc(sandbox: MeshSandbox) -> Outcome:
    """The etl workload claims to be checkout in a hand-written XFCC header."""
    import openai

    forged = f'By={SANDBOX_WORKLOADS["notebook"]};URI={SANDBOX_WORKLOADS["checkout"]}'
    client = sandbox.openai_client("etl", default_headers={"x-forwarded-client-cert": forged})
    try:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT)
        return Outcome(True, "the forged header was believed (this must not happen)")
    except openai.PermissionDeniedError as exc:
        return Outcome(False, f"PermissionDeniedError 403: {_message(exc.body)}")


def _message(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message", json.dumps(body)))
    return str(body)


@dataclass(frozen=True)
class Stop:
    who: str
    what: str
    expect_ok: bool
    run: Callable[[MeshSandbox], Outcome]


STOPS = (
    Stop("checkout", "openai gpt-4o, streaming", True,
         lambda s: _openai_stream(s, "checkout", "gpt-4o")),
    Stop("checkout", "anthropic claude-sonnet-4, streaming", True,
         lambda s: _anthropic_stream(s, "checkout", "claude-sonnet-4")),
    Stop("notebook", "openai o3 (research may use any model)", True,
         lambda s: _openai_stream(s, "notebook", "o3")),
    Stop("checkout", "openai gpt-5 (not in its model list)", False,
         lambda s: _openai_stream(s, "checkout", "gpt-5")),
    Stop("etl", "openai gpt-4o (no workload rule: default deny)", False,
         lambda s: _openai_stream(s, "etl", "gpt-4o")),
    Stop("etl", "anthropic claude-sonnet-4 (no workload rule)", False,
         lambda s: _anthropic_stream(s, "etl", "claude-sonnet-4")),
    Stop("etl", "forges an XFCC header claiming to be checkout", False, _forged_xfcc),
)


def take_tour(sandbox: MeshSandbox) -> int:
    # The SDKs' HTTP client logs every request at INFO; the tour prints its own lines.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print("\nWeir sandbox tour: every call goes SDK -> Envoy (mTLS) -> Weir ext_proc -> upstream")
    print(f"policy: {sandbox.policy_path}\n")
    failures = 0
    for number, stop in enumerate(STOPS, 1):
        sandbox.clear_upstream_requests()
        outcome = stop.run(sandbox)
        reached = len(sandbox.upstream_requests())
        verdict = "ALLOWED" if outcome.ok else "DENIED "
        as_expected = outcome.ok == stop.expect_ok and (reached > 0) == stop.expect_ok
        failures += not as_expected
        print(f"{number}. {stop.who:<9} {stop.what}")
        print(f"   {verdict}  {outcome.text}")
        print(f"   upstream saw {reached} request(s){'' if as_expected else '   <-- UNEXPECTED'}")
    print(
        "\nIdentities come from the client certificates' SPIFFE IDs:\n"
        + "\n".join(f"  {name:<9} {spiffe}" for name, spiffe in SANDBOX_WORKLOADS.items())
    )
    print(
        f"Weir's decision log, one JSON line per call: {sandbox.workdir / 'weir.log'}"
        " (removed on exit unless `weir sandbox --keep` or --workdir)"
    )
    print("Redaction and blocking of the token stream join this tour with the scanner.")
    if failures:
        print(f"\n{failures} stop(s) did not behave as expected")
        return 1
    print("\nAll stops behaved as expected.")
    return 0
