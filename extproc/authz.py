"""ext_authz: `envoy.service.auth.v3.Authorization/Check`, a header-only decision.

Two layers, as for ext_proc:
- :func:`decide_check` is sans-I/O: the caller's SPIFFE ID (Envoy's
  ``attributes.source.principal``, the peer certificate's first URI SAN), the
  request path and the policy go in; an :class:`AuthzVerdict` comes out.
- :class:`Authorization` is the thin grpc.aio servicer: it reads the three
  fields from the ``CheckRequest``, calls :func:`decide_check`, encodes the
  ``CheckResponse``, and records metrics and the decision log.

There is no body, so the model is unknown: only the identity rule of the
policy can be applied (``Policy.decide(principal, None)``). Model and content
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
from dataclasses import dataclass

import grpc

from extproc.llm import ErrorKind, error_format_for, provider_for
from extproc.metrics import Metrics
from extproc.policy_store import PolicyStore
from mesh.identity import PEER_CERTIFICATE, IdentityInputs, resolve_identity, unauthenticated_hint
from mesh.policy import Policy
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
    verdict: str  # allow, deny or audit (denied by policy, let through in audit mode)
    principal: str
    workload: str | None
    rule: str
    reason: str
    status: int = 200
    body: bytes = b""


def decide_check(policy: Policy, principal: str, path: str) -> AuthzVerdict:
    """The header-only decision for one request. Pure: no I/O, no clock."""
    identity = resolve_identity(
        IdentityInputs(peer_uri_san=principal or None),
        sources=(PEER_CERTIFICATE,),
        trust_domain=policy.trust_domain,
        trusted_proxies=(),
    )
    decision = policy.decide(identity.principal, None)
    workload = decision.workload.name if decision.workload else None
    if decision.allowed or not policy.enforcing:
        # Audit mode is a dry run: record the denial as "audit", change nothing.
        return AuthzVerdict(
            allowed=True,
            verdict="allow" if decision.allowed else "audit",
            principal=identity.principal,
            workload=workload,
            rule=decision.rule,
            reason=decision.reason,
        )
    kind = ErrorKind.PERMISSION_DENIED
    return AuthzVerdict(
        allowed=False,
        verdict="deny",
        principal=identity.principal,
        workload=workload,
        rule=decision.rule,
        reason=decision.reason,
        status=kind.status,
        body=error_format_for(path).error_body(
            kind, f"weir: {decision.reason}{unauthenticated_hint(identity, (PEER_CERTIFICATE,))}"
        ),
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
    for key, value in (("content-type", "application/json"), ("x-weir-verdict", verdict.verdict)):
        option = denied.headers.add()
        option.header.key = key
        option.header.value = value
        option.append_action = type(option).OVERWRITE_IF_EXISTS_OR_ADD
    return response


class Authorization(wire.AuthorizationServicer):  # type: ignore[misc]
    """The grpc.aio ext_authz servicer: decode, decide, encode, record."""

    def __init__(self, store: PolicyStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    async def Check(
        self, request: wire.CheckRequest, context: grpc.aio.ServicerContext
    ) -> wire.CheckResponse:
        started = time.perf_counter()
        attributes = request.attributes
        http = attributes.request.http
        try:
            verdict = decide_check(self._store.current, attributes.source.principal, http.path)
        except Exception:
            # Fail closed with a gRPC error: Envoy (failure_mode_allow: false)
            # then denies the request, and this worker keeps serving.
            self._metrics.authz_checks.labels("error", "none").inc()
            log.exception("internal error in an ext_authz Check, failing it closed")
            await context.abort(grpc.StatusCode.INTERNAL, "weir internal error")
            raise  # unreachable: abort raises; keeps type checkers honest
        elapsed = time.perf_counter() - started
        self._metrics.authz_check_seconds.observe(elapsed)
        self._metrics.authz_checks.labels(verdict.verdict, verdict.workload or "none").inc()
        if decision_log.isEnabledFor(logging.INFO):
            provider = provider_for(http.method or _DEFAULT_METHOD, http.path)
            decision_log.info(
                json.dumps(
                    {
                        "kind": "ext_authz",
                        "verdict": verdict.verdict,
                        "principal": verdict.principal,
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
