"""The tokens a request presents, verified, and what they decide at header time.

Two tokens can come with a call, each in the header the policy names:
- a JWT-SVID (``jwtSvid``), which identifies the *workload* (identity source
  ``jwt-svid``);
- an end-user token (``jwt``), which says *on whose behalf* it calls.

:func:`read_credentials` verifies both (sans-I/O: the keys come from a
``KeyLookup``, already fetched by ``mesh.jwks.prefetch``), and
:func:`credential_refusal` applies the rules, in this order:
- a presented token that does not verify is refused with a 401 naming why
  (503 when its issuer's keys cannot be had), even where no rule needs it: a
  forged credential is never silently ignored;
- ``requireUser`` without a user token is a 401, a user outside ``users`` a 403.
Reasons never quote a token or a claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mesh.end_user import decide_user
from mesh.jwt import KeyLookup, TokenRejected, TrustedIssuer, VerifiedToken, bearer_token, verify
from mesh.policy import Policy, WorkloadRule

Headers = Sequence[tuple[str, str]]
Verified = VerifiedToken | TokenRejected | None


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


@dataclass(frozen=True)
class Credentials:
    """Each token as verified: None when none was presented."""

    svid: Verified = None
    user: Verified = None

    @property
    def user_token(self) -> VerifiedToken | None:
        return self.user if isinstance(self.user, VerifiedToken) else None


@dataclass(frozen=True)
class CredentialRefusal:
    status: int  # 401, 403 or 503
    reason: str
    code: str  # a short fixed word for metrics, e.g. "user:expired"


def presented_tokens(
    policy: Policy, headers: Headers
) -> list[tuple[str | None, Sequence[TrustedIssuer]]]:
    """Each configured token header's token, with the issuers it is checked against."""
    out: list[tuple[str | None, Sequence[TrustedIssuer]]] = []
    if policy.svid_tokens is not None:
        svid = policy.svid_tokens
        out.append((bearer_token(_header(headers, svid.header), svid.header), (svid.issuer,)))
    if policy.user_tokens is not None:
        user = policy.user_tokens
        out.append((bearer_token(_header(headers, user.header), user.header), user.issuers))
    return out


def read_credentials(policy: Policy, headers: Headers, keys: KeyLookup) -> Credentials:
    svid: Verified = None
    user: Verified = None
    if policy.svid_tokens is not None:
        config = policy.svid_tokens
        token = bearer_token(_header(headers, config.header), config.header)
        if token is not None:
            svid = verify(token, (config.issuer,), keys, leeway=config.clock_skew_seconds)
    if policy.user_tokens is not None:
        users = policy.user_tokens
        token = bearer_token(_header(headers, users.header), users.header)
        if token is not None:
            user = verify(token, users.issuers, keys, leeway=users.clock_skew_seconds)
    return Credentials(svid=svid, user=user)


def token_headers_to_strip(policy: Policy) -> tuple[str, ...]:
    """Token headers the upstream must not see. ``authorization`` stays: it may carry the
    upstream's own API key (a user token there is the deployment's choice)."""
    names = []
    for config in (policy.svid_tokens, policy.user_tokens):
        if config is not None and config.header != "authorization":
            names.append(config.header)
    return tuple(names)


def svid_problem(credentials: Credentials) -> str | None:
    """Why a presented JWT-SVID was refused, for the identity source's detail."""
    svid = credentials.svid
    return f"JWT-SVID refused: {svid.reason}" if isinstance(svid, TokenRejected) else None


def credential_refusal(
    policy: Policy,
    credentials: Credentials,
    workload: WorkloadRule | None,
    *,
    svid_used: bool,
) -> CredentialRefusal | None:
    """What the tokens decide at header time, or None to go on (see the module rules).

    ``svid_used``: the identity sources reached the jwt-svid source (so a refused
    JWT-SVID is what left the caller unidentified).
    """
    svid = credentials.svid
    if svid_used and isinstance(svid, TokenRejected):
        return _from_rejection("svid", "JWT-SVID", svid)
    user = credentials.user
    if isinstance(user, TokenRejected):
        return _from_rejection("user", "end-user token", user)
    if workload is None or policy.user_tokens is None:
        return None
    decision = decide_user(
        workload.name,
        workload.users,
        workload.require_user,
        credentials.user_token,
        policy.user_tokens.groups_claim,
    )
    if decision.allowed:
        return None
    code = "user:missing" if decision.status == 401 else "user:not_admitted"
    return CredentialRefusal(decision.status, decision.reason, code)


def _from_rejection(prefix: str, what: str, rejected: TokenRejected) -> CredentialRefusal:
    status = 503 if rejected.unavailable else 401
    reason = f"{what} refused: {rejected.reason}"
    return CredentialRefusal(status, reason, f"{prefix}:{rejected.code}")
