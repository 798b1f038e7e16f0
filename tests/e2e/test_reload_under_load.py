"""A reload with a large deny-list does not stall the streams already flowing.

The policy is parsed and its automaton built in Weir's policy worker process,
so the event loop carrying the streams never waits for it. The client reads a
paced token stream through Envoy while the reload happens, and no two chunks
arrive more than 100 ms apart.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import string
import threading
import time

from weir_admin import eventually, get, write_atomically

from mesh.sandbox import SANDBOX_POLICY, SANDBOX_WORKLOADS, MeshSandbox

PROMPT = [{"role": "user", "content": "Tell me what you know."}]
MAX_GAP = 0.100
# x 10 ms: up to a minute of stream, which the reader leaves once the reload is in force
PIECES = 6000
AFTER_RELOAD = 0.5  # seconds of stream still read after the new policy is in force


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digest_in_force(mesh: MeshSandbox) -> str:
    return get(mesh.weir_admin_url("/readyz"))[1].strip().removeprefix("ready policy=")


def large_deny_list_policy() -> str:
    """The sandbox policy plus a deny-list of 290 random 200-letter terms for the batch
    workload: about 57,000 automaton states, near the compiler's limit. Fresh terms each
    run, so no compiled-table cache on disk can spare the compile under test."""
    rng = random.Random(os.urandom(16))
    terms = ", ".join("".join(rng.choices(string.ascii_lowercase, k=200)) for _ in range(290))
    return SANDBOX_POLICY + (
        f'  - name: batch\n    match: ["{SANDBOX_WORKLOADS["etl"]}"]\n'
        f"    response: [{{scanner: deny-list, action: redact, terms: [{terms}]}}]\n"
    )


def test_a_reload_with_a_large_deny_list_leaves_no_gap_in_a_flowing_stream(
    private_sandbox: MeshSandbox,
) -> None:
    mesh = private_sandbox
    # A first reload starts the policy worker, so the one under test is only the compile.
    warm = SANDBOX_POLICY + "# warm-up\n"
    write_atomically(mesh.policy_path, warm)
    assert eventually(lambda: digest_in_force(mesh) == digest(warm), timeout=120)

    arrivals: list[float] = []
    headers = {  # the text repeated into PIECES events of 6 bytes, one every 10 ms
        "x-fake-reply-b64": base64.b64encode(b"lorem ipsum dolor amet").decode(),
        "x-fake-events": str(PIECES),
        "x-fake-token-bytes": "6",
        "x-fake-piece-delay-ms": "10",
    }
    first_chunks = threading.Event()
    reloaded_event = threading.Event()
    reloaded_at = float("inf")

    def read_stream() -> None:
        stream = mesh.openai_client("checkout", timeout=120).chat.completions.create(
            model="gpt-4o", messages=PROMPT, stream=True, extra_headers=headers
        )
        with stream:
            for _ in stream:
                now = time.monotonic()
                arrivals.append(now)
                if len(arrivals) == 20:
                    first_chunks.set()
                if reloaded_event.is_set() and now > reloaded_at + AFTER_RELOAD:
                    return

    reader = threading.Thread(target=read_stream)
    reader.start()
    try:
        assert first_chunks.wait(60), "the stream did not start"
        large = large_deny_list_policy()
        write_atomically(mesh.policy_path, large)
        reloaded = eventually(lambda: digest_in_force(mesh) == digest(large), timeout=50)
        reloaded_at = time.monotonic()
        reloaded_event.set()
    finally:
        reader.join(180)
    assert reloaded, "the large policy never came into force"
    assert arrivals and reloaded_at + AFTER_RELOAD < arrivals[-1], (
        "the stream ended before the reload completed, so it proves nothing"
    )
    gaps = [(b - a, i) for i, (a, b) in enumerate(itertools.pairwise(arrivals))]
    worst, where = max(gaps)
    assert worst <= MAX_GAP, (
        f"a {worst * 1000:.0f} ms gap after chunk {where} of {len(arrivals)} "
        f"(the reload completed {reloaded_at - arrivals[0]:.2f} s into the stream)"
    )
