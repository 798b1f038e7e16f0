"""With Weir gone, Envoy must fail closed: `failure_mode_allow: false`."""

from __future__ import annotations

import signal

import openai
import pytest

from mesh.sandbox import MeshSandbox

PROMPT = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_with_weir_stopped_the_request_fails_and_the_upstream_sees_nothing(
    private_sandbox: MeshSandbox, sig: int
) -> None:
    client = private_sandbox.openai_client("checkout")
    assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
    private_sandbox.clear_upstream_requests()

    private_sandbox.stop_weir(sig)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True)
    assert raised.value.status_code >= 500
    assert private_sandbox.upstream_requests() == []
