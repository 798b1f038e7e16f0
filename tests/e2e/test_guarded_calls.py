"""Official SDKs -> real Envoy over mTLS -> Weir -> fake upstream, and the denials on the way."""

from __future__ import annotations

import json
import time

import anthropic
import openai
import pytest

from mesh.sandbox import MeshSandbox

ECHO_TEXT = "The quick brown fox jumps over the lazy dog, 42 times; then it rests."


def echo_messages(text: str = ECHO_TEXT) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"echo: {text}"}]


def test_an_allowed_identity_streams_a_completion_unchanged(mesh: MeshSandbox) -> None:
    client = mesh.openai_client("checkout")
    # Paced like a model (one word every 30 ms), so that the words reach Weir in separate
    # chunks: Weir coalesces text events that arrive together, so only a paced stream
    # shows that text is released as it comes rather than when the answer is complete.
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=echo_messages(), stream=True,
        extra_headers={"x-fake-piece-delay-ms": "30"},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ECHO_TEXT
    assert len(chunks) > 5, "the reply must arrive as a stream of many events"
    assert chunks[-1].choices[0].finish_reason == "stop"
    [seen] = mesh.upstream_requests()
    assert seen["path"] == "/v1/chat/completions"
    assert json.loads(seen["body"])["model"] == "gpt-4o"


def test_an_allowed_identity_gets_a_non_streaming_completion(mesh: MeshSandbox) -> None:
    completion = mesh.openai_client("checkout").chat.completions.create(
        model="gpt-4o-mini", messages=echo_messages()
    )
    assert completion.choices[0].message.content == ECHO_TEXT


def test_a_large_prompt_arriving_in_many_chunks_reaches_the_upstream_intact(
    mesh: MeshSandbox,
) -> None:
    big = " ".join(f"word{i}" for i in range(60_000))  # about 470 KB: many body chunks
    completion = mesh.openai_client("notebook").chat.completions.create(
        model="o3", messages=echo_messages(big)
    )
    assert completion.choices[0].message.content == big
    assert len(mesh.upstream_requests()) == 1


def test_anthropic_sdk_streams_through_for_an_allowed_identity(mesh: MeshSandbox) -> None:
    client = mesh.anthropic_client("checkout")
    with client.messages.stream(
        model="claude-sonnet-4", max_tokens=100, messages=echo_messages()
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ECHO_TEXT
    assert final.stop_reason == "end_turn"


def test_an_unknown_identity_gets_permission_denied_and_the_upstream_sees_nothing(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("etl")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=echo_messages(), stream=True)
    assert raised.value.status_code == 403
    assert "no workload matches" in raised.value.message
    assert mesh.upstream_requests() == []


def test_a_disallowed_model_gets_permission_denied_and_the_upstream_sees_nothing(
    mesh: MeshSandbox,
) -> None:
    client = mesh.openai_client("checkout")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="gpt-5", messages=echo_messages(), stream=True)
    assert "gpt-5" in raised.value.message
    assert mesh.upstream_requests() == []


@pytest.mark.parametrize(
    ("workload", "model", "reason"),
    [("etl", "claude-sonnet-4", "no workload matches"), ("checkout", "claude-opus-4", "model")],
    ids=["unknown-identity", "disallowed-model"],
)
def test_anthropic_sdk_raises_its_own_permission_denied_error(
    mesh: MeshSandbox, workload: str, model: str, reason: str
) -> None:
    client = mesh.anthropic_client(workload)
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        client.messages.create(model=model, max_tokens=10, messages=echo_messages())
    assert raised.value.status_code == 403
    assert raised.value.body["error"]["type"] == "permission_error"
    assert reason in raised.value.body["error"]["message"]
    assert mesh.upstream_requests() == []


def raw_post(mesh: MeshSandbox, path: str, body: bytes, workload: str = "checkout"):
    with openai.DefaultHttpxClient(verify=mesh.ssl_context(workload)) as http:
        return http.post(
            f"{mesh.envoy_url}{path}",
            content=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )


@pytest.mark.parametrize(
    ("path", "body", "error_type"),
    [
        ("/v1/chat/completions", b'{"model": "gpt-4o", "messages": [', "invalid_request_error"),
        ("/v1/chat/completions", b'{"model": "gpt-4o", "x": "\xff"}', "invalid_request_error"),
        ("/v1/messages", b"{not json", "invalid_request_error"),
        ("/v1/chat/completions", b'{"messages": []}', "invalid_request_error"),
    ],
    ids=["truncated-json", "invalid-utf8", "anthropic-malformed", "missing-model"],
)
def test_a_body_weir_cannot_parse_gets_a_400_in_the_providers_format(
    mesh: MeshSandbox, path: str, body: bytes, error_type: str
) -> None:
    response = raw_post(mesh, path, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == error_type
    assert mesh.upstream_requests() == []


def test_a_body_over_the_8_mib_limit_gets_a_413_in_the_providers_format(
    mesh: MeshSandbox,
) -> None:
    body = b'{"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "'
    body += b"a" * (9 * 1024 * 1024) + b'"}]}'
    response = raw_post(mesh, "/v1/messages", body)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert mesh.upstream_requests() == []


def test_a_slowly_uploaded_prompt_outlasting_the_message_timeout_is_still_judged(
    mesh: MeshSandbox,
) -> None:
    """Pins an Envoy 1.40 fact the design relies on: in FULL_DUPLEX_STREAMED the
    2 s message_timeout does not fire while Weir withholds the headers response
    and the body trickles in."""
    body = json.dumps({"model": "gpt-4o", "messages": echo_messages("slow")}).encode()

    def trickle():
        for i in range(0, len(body), 8):
            yield body[i : i + 8]
            time.sleep(0.3)

    with openai.DefaultHttpxClient(verify=mesh.ssl_context("checkout")) as http:
        started = time.monotonic()
        response = http.post(
            f"{mesh.envoy_url}/v1/chat/completions",
            content=trickle(),
            headers={"content-type": "application/json"},
            timeout=60,
        )
    assert time.monotonic() - started > 2.0
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "slow"
