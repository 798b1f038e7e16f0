"""`weir policy check` and `weir policy explain`: the operator's view of a policy.

This module owns what those two commands print and the exit codes they
return. It does no argument parsing (the CLI wires argparse) and writes only
to the streams it is given, so every case is a plain unit test.

Exit codes:
- ``check``: 0 valid, 2 invalid: every problem on ``err`` as
  ``file:line: path: reason``, in file order. Warnings (a workload rule that
  earlier rules make unreachable, see ``policy_shadow``) go to ``err`` too;
  with ``strict`` they make the exit code 2.
- ``explain``: 0 the identity (and model) would be allowed, 1 denied,
  2 the policy or the identity is invalid. In audit mode the code still
  reports the decision; the output notes that nothing would be enforced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from mesh.end_user import decide_user
from mesh.identity import SOURCE_NEEDS, UNAUTHENTICATED, IdentityInputs, resolve_identity
from mesh.jwt import VerifiedToken
from mesh.mcp_policy import decide_tool
from mesh.policy import (
    MAX_POLICY_BYTES,
    Policy,
    PolicyError,
    ScanRule,
    WorkloadRule,
    problems_of,
)
from mesh.policy_shadow import Shadowed, find_shadowed
from mesh.spiffe import SpiffeIdError, parse_spiffe_id_in
from mesh.yaml_lines import line_of, yaml_lines

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_INVALID = 2
MAX_CLAIMS_BYTES = 64 * 1024


def check(path: str, out: TextIO, err: TextIO, strict: bool = False) -> int:
    """Validate one policy file: every problem as `file:line: path: reason`, then warnings
    (shadowed rules), then a one-line summary. `strict` makes a warning fail the check."""
    # The same step the server takes before it serves a policy, scan plans
    # compiled included: what passes here never fails at run time.
    from extproc.policy_store import load_and_compile

    lines = _lines_of_file(path)
    try:
        policy = load_and_compile(path)[0]
    except PolicyError as exc:
        _print_problems(problems_of(exc), lines, err)
        return EXIT_INVALID
    warnings = [_shadow_warning(s) for s in find_shadowed(policy)]
    for where, message in warnings:
        print(_located(path, lines, where, f"warning: {message}"), file=err)
    if warnings and strict:
        many = "s" if len(warnings) > 1 else ""
        print(f"{path}: {len(warnings)} warning{many}, and --strict fails the check", file=err)
        return EXIT_INVALID
    count = len(policy.workloads)
    print(
        f"{path}: ok ({count} workload{'' if count == 1 else 's'}, "
        f"defaultAction={policy.default_action}, mode={policy.mode}, "
        f"identitySources={','.join(policy.identity_sources)}, digest={policy.digest})"
        + (f", {len(warnings)} warning{'' if len(warnings) == 1 else 's'}" if warnings else ""),
        file=out,
    )
    return EXIT_OK


def _lines_of_file(path: str) -> dict[str, int]:
    try:
        with open(path, "rb") as fh:
            return yaml_lines(fh.read(MAX_POLICY_BYTES + 1).decode("utf-8", "replace"))
    except OSError:
        return {}


def _located(file: str, lines: dict[str, int], where: str, reason: str) -> str:
    line = line_of(lines, where, reason)
    return f"{file}:{line}: {where}: {reason}" if line else f"{file}: {where}: {reason}"


def _print_problems(problems: Sequence[PolicyError], lines: dict[str, int], err: TextIO) -> None:
    # In the order they appear in the file, which is the order one fixes them in.
    ordered = sorted(problems, key=lambda p: line_of(lines, p.path, p.reason) or 0)
    for problem in ordered:
        print(_located(problem.file, lines, problem.path, problem.reason), file=err)
    if len(problems) > 1:
        print(f"{problems[0].file}: {len(problems)} problems", file=err)


def _shadow_warning(shadowed: Shadowed) -> tuple[str, str]:
    by = ", ".join(f"'{name}'" for name in shadowed.by)
    how = "" if shadowed.exact else " (sampled: the patterns were too many to decide exactly)"
    return (
        f"workloads[{shadowed.index}].match",
        f"workload '{shadowed.name}' is never reached: every identity it matches is "
        f"matched first by {by}{how}",
    )


def explain(
    policy_path: str,
    identity: str | None,
    model: str | None,
    out: TextIO,
    err: TextIO,
    inputs: IdentityInputs | None = None,
    user_claims: str | None = None,
    tool: str | None = None,
) -> int:
    """Print which rule decides ``identity`` (and ``model``) and what it allows.

    With ``inputs`` (what Envoy would report: the peer certificate's URI SAN,
    the node metadata, the XFCC header) the identity is resolved from them by
    the policy's identity sources, as `weir serve` would, and when it comes
    out ``unauthenticated`` the output says what each source found.

    ``user_claims`` is a JSON file of an end user's (already verified) token claims;
    without it the call is explained as one without an end-user token.
    """
    policy = _load(policy_path, err)
    if policy is None:
        return EXIT_INVALID
    user: VerifiedToken | None = None
    if user_claims is not None:
        if policy.user_tokens is None:
            print(f"{policy.source}: jwt: the policy has no 'jwt' section; --user-claims "
                  "cannot apply", file=err)
            return EXIT_INVALID
        user_or_problem = _read_claims(user_claims)
        if isinstance(user_or_problem, str):
            print(f"{user_claims}: {user_or_problem}", file=err)
            return EXIT_INVALID
        user = user_or_problem
    why: list[str] = []
    if inputs is not None:
        resolved = resolve_identity(
            inputs,
            sources=policy.identity_sources,
            trust_domain=policy.trust_domain,
            trusted_proxies=policy.xfcc_trusted_proxies,
        )
        if identity is not None and identity != resolved.principal:
            print(
                f"--identity {identity} disagrees with the identity the inputs give "
                f"({resolved.principal}); give one or the other",
                file=err,
            )
            return EXIT_INVALID
        identity = resolved.principal
        if resolved.principal == UNAUTHENTICATED:
            why = [f"why:       {note}" for note in resolved.detail.split("; ")]
    elif identity == UNAUTHENTICATED:
        why = [
            "why:       no identity source yielded an identity; this policy tries, in order:",
            *(f"           {s}: needs {SOURCE_NEEDS.get(s, s)}" for s in policy.identity_sources),
            "           (give --peer-uri-san, --node-namespace/--node-service-account or "
            "--xfcc to see what each finds)",
        ]
    if identity is None:
        print("give --identity, or what Envoy reports (--peer-uri-san, --xfcc, ...)", file=err)
        return EXIT_INVALID
    if identity != UNAUTHENTICATED:
        try:
            parse_spiffe_id_in(identity, policy.trust_domain)
        except SpiffeIdError as exc:
            print(
                f"invalid identity {identity!r}: {exc.reason} "
                f"(expected a SPIFFE ID in trust domain '{policy.trust_domain}' "
                f"or '{UNAUTHENTICATED}')",
                file=err,
            )
            return EXIT_INVALID

    decision = policy.decide(identity, model)
    workload = decision.workload
    allowed, reason = decision.allowed, decision.reason
    user_line = None
    if policy.user_tokens is not None:
        user_line = "no end-user token" if user is None else f"claims from {user_claims}"
        if allowed and workload is not None:
            verdict_for_user = decide_user(
                workload.name, workload.users, workload.require_user, user,
                policy.user_tokens.groups_claim,
            )
            user_line += f": {verdict_for_user.reason}"
            if not verdict_for_user.allowed:
                allowed, reason = False, verdict_for_user.reason
    tool_line = None
    if tool is not None:
        # An MCP tools/call (or an LLM tool definition) naming `tool`: the workload's `tools`.
        by_tool = decide_tool(
            workload.name if workload else None, workload.tool_rules if workload else None, tool
        )
        tool_line = f"{tool}: {by_tool.reason}"
        if allowed and not by_tool.allowed:
            allowed, reason = False, by_tool.reason
    lines = [
        f"policy:    {policy.source} (digest {policy.digest})",
        f"identity:  {identity}",
        *why,
    ]
    if workload is None:
        lines.append(f"rule:      defaultAction={policy.default_action} (no workload matches)")
    else:
        pattern = workload.matching_pattern(identity)
        lines.append(f"rule:      workload '{workload.name}' (matched by '{pattern}')")
    lines.append(f"model:     {model if model is not None else '(not given)'}")
    if user_line is not None:
        lines.append(f"user:      {user_line}")
    if tool_line is not None:
        lines.append(f"tool:      {tool_line}")
    verdict = "ALLOWED" if allowed else "DENIED"
    lines.append(f"decision:  {verdict}: {reason}")
    if workload is not None:
        lines.extend(_workload_lines(workload))
    if policy.enforcing:
        lines.append("mode:      enforce")
    else:
        lines.append("mode:      audit (dry run: this decision is recorded, nothing is enforced)")
    for line in lines:
        print(line, file=out)
    return EXIT_OK if allowed else EXIT_DENIED


def _read_claims(path: str) -> VerifiedToken | str:
    try:
        with open(path, "rb") as fh:
            claims = json.loads(fh.read(MAX_CLAIMS_BYTES + 1))
    except OSError as exc:
        return f"cannot read claims file: {exc.strerror or exc}"
    except ValueError:
        return "not a JSON document"
    if not isinstance(claims, dict):
        return "expected a JSON object of token claims"
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        return "the claims need a non-empty string 'sub'"
    issuer = claims.get("iss")
    return VerifiedToken(issuer if isinstance(issuer, str) else None, subject, claims)


def _workload_lines(workload: WorkloadRule) -> list[str]:
    models = "any" if workload.models is None else ", ".join(workload.models)
    lines = [
        f"models:    {models}",
        f"request:   {_rules(workload.request)}",
        f"response:  {_rules(workload.response)}",
    ]
    if workload.users is not None or workload.require_user:
        users = "any" if workload.users is None else ", ".join(str(u) for u in workload.users)
        required = " (required)" if workload.require_user else ""
        lines.append(f"users:     {users}{required}")
    tool_rules = workload.tool_rules
    tools = "any" if tool_rules.tools is None else ", ".join(tool_rules.tools)
    lines.append(f"tools:     {tools} (mcp request: {_rules(tool_rules.request)}; "
                 f"response: {_rules(tool_rules.response)}; pinning {tool_rules.pinning})")
    where = workload.destinations
    if where.providers is not None:
        lines.append(f"providers: {', '.join(where.providers)}")
    if where.upstreams is not None:
        lines.append(f"upstreams: {', '.join(p.pattern for p in where.upstreams)}")
    return lines


def _rules(rules: tuple[ScanRule, ...]) -> str:
    if not rules:
        return "no scanners"
    return ", ".join(f"{r.scanner} -> {r.action}" for r in rules)


def _load(path: str, err: TextIO) -> Policy | None:
    # The same step the server takes before it serves a policy, scan plans
    # compiled included: what passes here never fails at run time.
    from extproc.policy_store import load_and_compile

    try:
        return load_and_compile(path)[0]
    except PolicyError as exc:
        print(str(exc), file=err)
        return None
