"""ext_authz: `envoy.service.auth.v3.Authorization/Check`, a header-only decision.

Two layers, as for ext_proc:
- :func:`decide_check` is sans-I/O: the caller's SPIFFE ID (Envoy's
  ``attributes.source.principal``, the peer certificate's first URI SAN), the
  request path and the policy go in; an :class:`AuthzVerdict` comes out.
- :class:`Authorization` is the thin grpc.aio servicer: it reads the three
  fields from the ``CheckRequest``, calls :func:`decide_check`, encodes the
  ``CheckResponse``, and records metrics and the decision log.

There is no body, so the model is unknown: the identity rule of the policy
(``Policy.decide(principal, None)``), the end-user rules (``users``,
``requireUser``, a presented token that does not verify: `mesh.credentials`,
exactly as ext_proc applies them) and, for a path an adapter recognises, the
``providers`` / ``upstreams`` allow-lists can be applied. Model and content
rules need ext_proc. The identity comes only from the peer certificate,
whatever ``identitySources`` says, because that is all a Check carries: the
ext_authz provider belongs on an inbound sidecar or a gateway, where the
caller's mTLS certificate is the identity.

A denial is HTTP 403 with the provider-format JSON body for the path, so the
official SDKs raise their own ``PermissionDeniedError``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from extproc.audit import subject_hash
from extproc.llm import ErrorKind, error_format_for, provider_for
from extproc.metrics import Metrics
from extproc.policy_store import PolicyStore
from extproc.stream import CHALLENGE
from mesh.credentials import credential_refusal, presented_tokens, read_credentials
from mesh.destinations import destination_refusal
from mesh.identity import (
    PEER_CERTIFICATE,
    IdentityInputs,
    resolve_identity,
    unauthenticated_hint,
)
from mesh.jwks import JwksCache, prefetch
from mesh.jwt import KeyLookup, LoadedKeys
from mesh.policy import Policy
from mesh.verdicts import Verdict
from protos import wire

log = logging.getLogger("weir.authz")
decision_log = logging.getLogger("weir.decision")

AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"

# google.rpc.Code values Envoy reads from CheckResponse.status.
_RPC_OK = 0
_RPC_PERMISSION_DENIED = 7

# The method a Check leads to when Envoy's attributes leave it out; only used to
# name the provider in the decision record.
_DEFAULT_METHOD = "POST"


@dataclass(frozen=True, slots=True)
class AuthzVerdict:
    """One Check decision. ``status`` and ``body`` matter only when not ``allowed``."""

    allowed: bool
    verdict: Verdict  # allow, deny or audit (denied by policy, let through in audit mode)
    principal: str
    workload: str | None
    rule: str
    reason: str
    status: int = 200
    body: bytes = b""
    user: str | None = None  # keyed hash of the end user's issuer and subject
    token_rejection: str | None = None


_NO_HEADERS: Mapping[str, str] = {}
_STATUS_KINDS = {401: ErrorKind.UNAUTHENTICATED, 403: ErrorKind.PERMISSION_DENIED}


def decide_check(
    policy: Policy,
    principal: str,
    path: str,
    headers: Mapping[str, str] = _NO_HEADERS,
    keys: KeyLookup | None = None,
    method: str = _DEFAULT_METHOD,
    authority: str | None = None,
) -> AuthzVerdict:
    """The header-only decision for one request. Pure: no I/O (keys already fetched)."""
    identity = resolve_identity(
        IdentityInputs(peer_uri_san=principal or None),
        sources=(PEER_CERTIFICATE,),
        trust_domain=policy.trust_domain,
        trusted_proxies=(),
    )
    decision = policy.decide(identity.principal, None)
    workload = decision.workload.name if decision.workload else None
    pairs = tuple(headers.items())
    credentials = read_credentials(policy, pairs, keys if keys is not None else LoadedKeys())
    user = credentials.user_token
    user_hash = subject_hash(user.issuer, user.subject) if user is not None else None
    status, reason, code = 0, decision.reason, None
    if decision.allowed:
        # The JWT-SVID is not an ext_authz identity source: only the peer certificate is.
        refusal = credential_refusal(policy, credentials, decision.workload, svid_used=False)
        provider = provider_for(method, path)
        if refusal is not None:
            status, reason, code = refusal.status, refusal.reason, refusal.code
        elif provider is not None and decision.workload is not None:
            where = destination_refusal(
                decision.workload.name,
                decision.workload.destinations,
                provider.name,
                authority or headers.get(":authority") or headers.get("host") or "",
            )
            if where is not None:
                status, reason = 403, where
    else:
        status = 403
        reason += unauthenticated_hint(identity, (PEER_CERTIFICATE,))
    if status and policy.enforcing:
        kind = _STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE)
        return AuthzVerdict(
            allowed=False,
            verdict=Verdict.DENY,
            principal=identity.principal,
            workload=workload,
            rule=decision.rule,
            reason=reason,
            status=kind.status,
            body=error_format_for(path).error_body(kind, f"weir: {reason}"),
            user=user_hash,
            token_rejection=code,
        )
    # Audit mode is a dry run: record a refusal as "audit", change nothing.
    return AuthzVerdict(
        allowed=True,
        verdict=Verdict.AUDIT if status else Verdict.ALLOW,
        principal=identity.principal,
        workload=workload,
        rule=decision.rule,
        reason=reason,
        user=user_hash,
        token_rejection=code,
    )


def encode_check_response(verdict: AuthzVerdict) -> wire.CheckResponse:
    """The CheckResponse Envoy acts on: OK, or a denied_response carrying the provider body."""
    response = wire.CheckResponse()
    if verdict.allowed:
        response.status.code = _RPC_OK
        response.ok_response.SetInParent()
        return response
    response.status.code = _RPC_PERMISSION_DENIED
    denied = response.denied_response
    denied.status.code = verdict.status
    denied.body = verdict.body.decode("utf-8")
    headers = [("content-type", "application/json"), ("x-weir-verdict", verdict.verdict)]
    if verdict.status == ErrorKind.UNAUTHENTICATED.status:
        headers.append(CHALLENGE)
    for key, value in headers:
        option = denied.headers.add()
        option.header.key = key
        option.header.value = value
        option.append_action = type(option).OVERWRITE_IF_EXISTS_OR_ADD
    return response


class Authorization(wire.AuthorizationServicer):  # type: ignore[misc]
    """The grpc.aio ext_authz servicer: decode, decide, encode, record."""

    def __init__(
        self, store: PolicyStore, metrics: Metrics, keys: JwksCache | None = None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._keys = keys if keys is not None else JwksCache()

    async def Check(
        self, request: wire.CheckRequest, context: grpc.aio.ServicerContext
    ) -> wire.CheckResponse:
        started = time.perf_counter()
        attributes = request.attributes
        http = attributes.request.http
        policy = self._store.current
        try:
            headers = dict(http.headers)
            if policy.user_tokens is not None:
                # Off the loop and before the clock: the tokens' keys, when not cached.
                await prefetch(self._keys, presented_tokens(policy, tuple(headers.items())))
                started = time.perf_counter()
            verdict = decide_check(
                policy,
                attributes.source.principal,
                http.path,
                headers,
                self._keys,
                http.method or _DEFAULT_METHOD,
                http.host or None,
            )
        except Exception:
            # Fail closed with a gRPC error: Envoy (failure_mode_allow: false)
            # then denies the request, and this worker keeps serving.
            self._metrics.authz_checks.labels(Verdict.ERROR, "none").inc()
            log.exception("internal error in an ext_authz Check, failing it closed")
            await context.abort(grpc.StatusCode.INTERNAL, "weir internal error")
            raise  # unreachable: abort raises; keeps type checkers honest
        elapsed = time.perf_counter() - started
        self._metrics.authz_check_seconds.observe(elapsed)
        self._metrics.authz_checks.labels(verdict.verdict, verdict.workload or "none").inc()
        if verdict.user is not None:
            self._metrics.end_user_requests.labels(
                verdict.workload or "none", verdict.user, verdict.verdict
            ).inc()
        if verdict.token_rejection is not None:
            token, _, why = verdict.token_rejection.partition(":")
            self._metrics.token_rejections.labels(token, why).inc()
        if decision_log.isEnabledFor(logging.INFO):
            provider = provider_for(http.method or _DEFAULT_METHOD, http.path)
            decision_log.info(
                json.dumps(
                    {
                        "kind": "ext_authz",
                        "verdict": verdict.verdict,
                        "principal": verdict.principal,
                        "user": verdict.user,
                        "token_rejection": verdict.token_rejection,
                        "workload": verdict.workload,
                        "rule": verdict.rule,
                        "reason": verdict.reason,
                        "method": http.method,
                        "path": http.path,
                        "provider": provider.name if provider else None,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                    sort_keys=True,
                )
            )
        return encode_check_response(verdict)


def add_to_server(servicer: Authorization, server: grpc.aio.Server) -> None:
    wire.add_AuthorizationServicer_to_server(servicer, server)
