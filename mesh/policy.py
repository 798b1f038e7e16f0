"""The policy: its YAML document, strict validation, and the decisions it makes.

This module owns three things:
- the document schema (pydantic models with unknown keys forbidden) and the
  semantic checks pydantic cannot express (globs must stay inside the trust
  domain, unique workload names, trusted proxies when XFCC is used);
- the loaded, immutable ``Policy`` value with its content digest;
- the decision rule: workloads are tried in order and the first whose
  identity patterns match decides; no match means ``defaultAction``.

Every problem with a document becomes one ``PolicyError`` naming the file,
the path inside the document and the reason, never a traceback. Audit mode is
carried, not applied: ``decide`` says what the policy would do, and the caller
records it and, in audit mode, lets the request through anyway.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mesh.ai_hosts import AiHosts, host_glob_problem
from mesh.budget_policy import (
    Budget,
    BudgetDoc,
    BudgetStoreDoc,
    BudgetStoreRule,
    build_budget,
    build_budget_store,
)
from mesh.destinations import (
    Destinations,
    UpstreamPattern,
    provider_problem,
    upstream_pattern_problem,
)
from mesh.end_user import UserPattern, parse_user_pattern, user_pattern_problem
from mesh.identity import JWT_SVID, UNAUTHENTICATED, XFCC
from mesh.mcp_policy import (
    DEFAULT_MCP_PATHS,
    DEFAULT_PINNING,
    PinStoreDoc,
    PinStoreRule,
    ToolRules,
    build_pin_store,
    mcp_path_problem,
    tool_glob_problem,
)
from mesh.spiffe import SpiffeIdError, check_trust_domain, parse_spiffe_id
from mesh.token_config import (
    JwtDoc,
    JwtSvidDoc,
    SvidTokens,
    UserTokens,
    build_svid_tokens,
    build_user_tokens,
)
from mesh.verdicts import Action

DOCUMENT = "<document>"
MAX_POLICY_BYTES = 1024 * 1024
DIGEST_HEX_CHARS = 12

ALLOW = "allow"
DENY = "deny"
ENFORCE = "enforce"
AUDIT = "audit"
DEFAULT_ACTION_RULE = "defaultAction"

# Characters a SPIFFE ID path can contain, plus '/' and the glob star. A
# pattern with anything else can never match and is almost surely a typo.
_PATTERN_PATH_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/*"
)


class PolicyError(Exception):
    """A policy document that cannot be used: where and why."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        super().__init__(f"{file}: {path}: {reason}")
        self.file = file
        self.path = path
        self.reason = reason


class PolicyProblems(PolicyError):
    """Several problems in one document. It reads as the first (with a count), so
    callers that show one message still can; `problems` holds every one, in order."""

    def __init__(self, problems: Sequence[PolicyError]) -> None:
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(first.file, first.path, first.reason + suffix)
        self.problems = tuple(problems)


def problems_of(exc: PolicyError) -> tuple[PolicyError, ...]:
    """Every problem an error stands for: itself, or each of a `PolicyProblems`."""
    return exc.problems if isinstance(exc, PolicyProblems) else (exc,)


# --- the loaded policy -------------------------------------------------------


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Only ``*`` is special: any run of characters, '/' included."""
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(body, re.DOTALL)


DENY_LIST = "deny-list"
# A deny-list compiles into the same automaton as the built-in packs; these bounds
# keep one policy from making that automaton (and its compile time) unreasonable.
MAX_DENY_TERMS = 5000
MAX_DENY_TERM_CHARS = 200


@dataclass(frozen=True)
class ScanRule:
    scanner: str
    action: Action
    terms: tuple[str, ...] = ()  # the words of a `deny-list`, matched as whole words


@dataclass(frozen=True)
class WorkloadRule:
    """One entry of ``workloads``: who it covers, which models, what to scan."""

    name: str
    match: tuple[str, ...]
    models: tuple[str, ...] | None
    request: tuple[ScanRule, ...] = ()
    response: tuple[ScanRule, ...] = ()
    # The end user: which ones it admits (None: any user, or none) and whether one is required.
    users: tuple[UserPattern, ...] | None = None
    require_user: bool = False
    # Where its LLM calls may go (`providers`, `upstreams`); unrestricted by default.
    destinations: Destinations = field(default_factory=Destinations)
    # What happens to a call to a known AI host whose API Weir does not recognise.
    unknown_apis: str = DENY
    # `tools` and the `mcp` section (mesh.mcp_policy): MCP tool calls and tool results.
    tool_rules: ToolRules = field(default_factory=ToolRules)
    # How many tokens it may spend per window (`mesh.budget_policy`); None: unmetered.
    budget: Budget | None = None
    _match_res: tuple[re.Pattern[str], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _model_res: tuple[re.Pattern[str], ...] | None = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # Compiled once per load; the per-request path only runs fullmatch.
        object.__setattr__(self, "_match_res", tuple(compile_glob(p) for p in self.match))
        object.__setattr__(
            self,
            "_model_res",
            None if self.models is None else tuple(compile_glob(m) for m in self.models),
        )

    def matching_pattern(self, principal: str) -> str | None:
        """The first ``match`` pattern that covers ``principal``, or None."""
        for pattern, rx in zip(self.match, self._match_res, strict=True):
            # A glob never stands for the unauthenticated principal: only the
            # literal word does, so `*` cannot let anonymous callers in.
            if principal == UNAUTHENTICATED:
                if pattern == UNAUTHENTICATED:
                    return pattern
                continue
            if rx.fullmatch(principal):
                return pattern
        return None

    def matches_identity(self, principal: str) -> bool:
        return self.matching_pattern(principal) is not None

    def matching_model_pattern(self, model: str) -> str | None:
        """The first ``models`` glob that covers ``model``; ``*`` when any is allowed."""
        if self._model_res is None or self.models is None:
            return "*"
        for pattern, rx in zip(self.models, self._model_res, strict=True):
            if rx.fullmatch(model):
                return pattern
        return None


@dataclass(frozen=True)
class Decision:
    """What the policy says about one principal (and model, once known)."""

    allowed: bool
    rule: str  # the workload name, or "defaultAction"
    reason: str
    workload: WorkloadRule | None


@dataclass(frozen=True)
class Policy:
    trust_domain: str
    default_action: str
    mode: str
    identity_sources: tuple[str, ...]
    xfcc_trusted_proxies: tuple[str, ...]
    workloads: tuple[WorkloadRule, ...]
    source: str
    digest: str  # short sha256 hex of the file bytes, to tell reloads apart in logs
    user_tokens: UserTokens | None = None  # the `jwt` section: end-user tokens
    svid_tokens: SvidTokens | None = None  # the `jwtSvid` section: the jwt-svid source
    # Known AI provider hosts: the built-in list plus the document's `aiHosts` globs.
    ai_hosts: AiHosts = field(default_factory=AiHosts)
    # The paths MCP clients POST to (`mcpPaths`); matched on their normal forms.
    mcp_paths: tuple[str, ...] = DEFAULT_MCP_PATHS
    # What a budgeted call does while the budget store is unreachable.
    budget_store: BudgetStoreRule = field(default_factory=BudgetStoreRule)
    # What a pinned MCP call does while the shared pin store is unreachable.
    pin_store: PinStoreRule = field(default_factory=PinStoreRule)

    @property
    def enforcing(self) -> bool:
        return self.mode == ENFORCE

    def workload_for(self, principal: str) -> WorkloadRule | None:
        """The first workload whose patterns match ``principal``."""
        for workload in self.workloads:
            if workload.matches_identity(principal):
                return workload
        return None

    def decide(self, principal: str, model: str | None) -> Decision:
        """Allow or deny; ``model=None`` means not yet known (header phase)."""
        workload = self.workload_for(principal)
        if workload is None:
            allowed = self.default_action == ALLOW
            return Decision(
                allowed=allowed,
                rule=DEFAULT_ACTION_RULE,
                reason=f"no workload matches '{principal}'; defaultAction is {self.default_action}",
                workload=None,
            )
        if model is None:
            reason = f"identity matches workload '{workload.name}'; model not yet known"
            return Decision(allowed=True, rule=workload.name, reason=reason, workload=workload)
        model_pattern = workload.matching_model_pattern(model)
        if model_pattern is None:
            models = ", ".join(workload.models or ())
            reason = f"model '{model}' is not in workload '{workload.name}' models [{models}]"
            return Decision(allowed=False, rule=workload.name, reason=reason, workload=workload)
        if workload.models is None:
            reason = f"workload '{workload.name}' allows any model"
        else:
            reason = (
                f"model '{model}' is allowed by workload '{workload.name}' "
                f"(pattern '{model_pattern}')"
            )
        return Decision(allowed=True, rule=workload.name, reason=reason, workload=workload)


# --- the document schema -----------------------------------------------------


def _terms_problem(scanner: str, terms: list[str] | None) -> str | None:
    if scanner != DENY_LIST:
        return None if terms is None else f"only a '{DENY_LIST}' scanner takes terms"
    if not terms:
        return f"a '{DENY_LIST}' needs a non-empty list of terms"
    if len(terms) > MAX_DENY_TERMS:
        return f"at most {MAX_DENY_TERMS} terms, got {len(terms)}"
    for term in terms:
        if not term.strip():
            return "terms must not be empty or blank"
        if len(term) > MAX_DENY_TERM_CHARS:
            return f"a term is longer than {MAX_DENY_TERM_CHARS} characters"
    return None


class _Strict(BaseModel):
    # strict: YAML's loose typing (`no` is a bool, `1` an int) must not turn
    # into a valid-looking string.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ScanRuleDoc(_Strict):
    scanner: Literal["secrets", "pii", "prompt-injection", "exfiltration", "deny-list"]
    action: Literal["block", "redact", "audit"]
    terms: list[str] | None = None


class _McpDoc(_Strict):
    request: list[_ScanRuleDoc] = Field(default_factory=list)
    response: list[_ScanRuleDoc] = Field(default_factory=list)
    pinning: Literal["enforce", "audit", "off"] = "audit"  # mcp_policy.DEFAULT_PINNING


class _WorkloadDoc(_Strict):
    name: str
    match: list[str]
    models: list[str] | None = None
    request: list[_ScanRuleDoc] = Field(default_factory=list)
    response: list[_ScanRuleDoc] = Field(default_factory=list)
    users: list[str] | None = None
    require_user: bool = Field(default=False, alias="requireUser")
    providers: list[str] | None = None
    upstreams: list[str] | None = None
    unknown_apis: Literal["allow", "deny"] = Field(default="deny", alias="unknownApis")
    tools: list[str] | None = None
    mcp: _McpDoc | None = None
    budget: BudgetDoc | None = None


class _XfccDoc(_Strict):
    trusted_proxies: list[str] = Field(default_factory=list, alias="trustedProxies")


_SourceName = Literal["peer-certificate", "node-metadata", "xfcc", "jwt-svid"]


def _default_sources() -> list[_SourceName]:
    return ["peer-certificate"]


class _PolicyDoc(_Strict):
    trust_domain: str = Field(alias="trustDomain")
    default_action: Literal["allow", "deny"] = Field(default="deny", alias="defaultAction")
    mode: Literal["enforce", "audit"] = "enforce"
    identity_sources: list[_SourceName] = Field(
        default_factory=_default_sources, alias="identitySources"
    )
    xfcc: _XfccDoc = Field(default_factory=_XfccDoc)
    jwt: JwtDoc | None = None
    jwt_svid: JwtSvidDoc | None = Field(default=None, alias="jwtSvid")
    ai_hosts: list[str] = Field(default_factory=list, alias="aiHosts")
    budget_store: BudgetStoreDoc | None = Field(default=None, alias="budgetStore")
    pin_store: PinStoreDoc | None = Field(default=None, alias="pinStore")
    workloads: list[_WorkloadDoc] = Field(default_factory=list)
    mcp_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_MCP_PATHS), alias="mcpPaths")


# --- loading -----------------------------------------------------------------


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file; any problem is a ``PolicyError``."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = fh.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, DOCUMENT, f"cannot read file: {exc.strerror or exc}") from None
    return parse_policy(data, source)


def parse_policy(text: str | bytes, source: str = "<string>") -> Policy:
    """Parse and validate a policy document; any problem is a ``PolicyError``."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(source, DOCUMENT, f"file larger than {MAX_POLICY_BYTES} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, DOCUMENT, f"not UTF-8 text (byte {exc.start})") from None
    digest = hashlib.sha256(raw).hexdigest()[:DIGEST_HEX_CHARS]

    tree = _load_yaml(decoded, source)
    if tree is None:
        raise PolicyError(source, DOCUMENT, "the document is empty")
    if not isinstance(tree, dict):
        raise PolicyError(
            source, DOCUMENT, f"expected a mapping at the top level, got {_yaml_type(tree)}"
        )
    try:
        doc = _PolicyDoc.model_validate(tree)
    except ValidationError as exc:
        raise _from_validation_error(exc, source) from None
    return _build(doc, source, digest)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate and non-string mapping keys.

    PyYAML keeps the last of two equal keys silently; in a security policy
    that hides the rule the author thinks is in force.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            mark = key_node.start_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}"
            if not isinstance(key, str):
                raise _KeyProblem(f"mapping key {key!r} at {where} is not a string")
            if key in seen:
                raise _KeyProblem(f"duplicate key '{key}' at {where}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _KeyProblem(Exception):
    pass


def _load_yaml(text: str, source: str) -> Any:
    try:
        # _StrictLoader is a SafeLoader: no arbitrary Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except _KeyProblem as exc:
        raise PolicyError(source, DOCUMENT, str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ": ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(source, DOCUMENT, f"YAML syntax error{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, DOCUMENT, f"YAML error: {exc}") from None
    except RecursionError:
        # PyYAML's composer recurses once per nesting level.
        raise PolicyError(source, DOCUMENT, "the document is nested too deeply") from None


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def format_path(loc: Sequence[int | str]) -> str:
    """``("workloads", 0, "match")`` -> ``workloads[0].match``: where in a document."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or DOCUMENT


def _from_validation_error(exc: ValidationError, source: str) -> PolicyError:
    problems = [
        PolicyError(source, format_path(e["loc"]), _plain_reason(e)) for e in exc.errors()
    ]
    return PolicyProblems(problems) if len(problems) > 1 else problems[0]


def _describe(value: object) -> str:
    """What YAML made of a value, in the words of a YAML author."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _unwrap(annotation: Any) -> Any:
    """The model or Literal inside `X | None` and `list[X]`."""
    while True:
        args = [a for a in get_args(annotation) if a is not type(None)]
        origin = get_origin(annotation)
        if origin is list or (args and origin is not Literal and len(args) == 1):
            annotation = args[0]
            continue
        return annotation


def _schema_at(loc: Sequence[int | str]) -> Any:
    """The model or type the document schema expects at `loc` (None if unknown)."""
    node: Any = _PolicyDoc
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return None
        for name, info in node.model_fields.items():
            if part in (name, info.alias):
                node = _unwrap(info.annotation)
                break
        else:
            return None
    return node


def _keys_of(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items()]
    return []


def _did_you_mean(word: object, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_EXPECTED = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "bool_type": "true or false",
    "int_type": "a whole number",
}


def _plain_reason(error: Any) -> str:
    """One pydantic error in the words of the policy's own documentation."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        keys = _keys_of(_schema_at(loc[:-1]))
        hint = _did_you_mean(loc[-1], keys)
        allowed = f" (allowed here: {', '.join(keys)})" if keys else ""
        return f"unknown key '{loc[-1]}'{hint}{allowed}"
    if kind == "missing":
        return f"required key '{loc[-1]}' is missing"
    if kind == "literal_error":
        options = [str(o) for o in get_args(_schema_at(loc))]
        hint = _did_you_mean(value, options) if isinstance(value, str) else ""
        reason = f"{_describe(value)} is not allowed{hint} (expected one of: {', '.join(options)})"
    elif kind in _EXPECTED:
        reason = f"expected {_EXPECTED[kind]}, got {_describe(value)}"
        keys = _keys_of(_schema_at(loc)) if _EXPECTED[kind] == "a mapping" else []
        if keys:
            reason += f" (keys: {', '.join(keys)})"
    else:
        reason = str(error["msg"])
    if isinstance(value, bool):
        # YAML 1.1 reads unquoted yes/no/on/off as booleans; say so, or
        # "defaultAction: no" gets a baffling message.
        reason += " (YAML read an unquoted value as a boolean; quote it)"
    return reason


def _build(doc: _PolicyDoc, source: str, digest: str) -> Policy:
    # Every problem is collected, so that one run of `weir policy check` shows them all.
    problems: list[PolicyError] = []

    def fail(path: str, reason: str) -> PolicyError:
        # Recorded here; a builder that cannot go on past it may also raise it.
        problem = PolicyError(source, path, reason)
        problems.append(problem)
        return problem

    def attempt(build: Any, default: Any) -> Any:
        """`build()`, or `default` once the problem it raised is recorded."""
        try:
            return build()
        except PolicyError as exc:
            if not any(p is exc for p in problems):
                problems.append(exc)
            return default

    try:
        check_trust_domain(doc.trust_domain)
    except SpiffeIdError as exc:
        fail("trustDomain", f"not a valid trust domain: {exc.reason}")
    td = doc.trust_domain
    td_ok = not problems

    if not doc.identity_sources:
        fail("identitySources", "must list at least one source")
    for i, name in enumerate(doc.identity_sources):
        if name in doc.identity_sources[:i]:
            fail(f"identitySources[{i}]", f"source '{name}' is listed twice")

    for i, proxy in enumerate(doc.xfcc.trusted_proxies):
        try:
            parsed = parse_spiffe_id(proxy)
        except SpiffeIdError as exc:
            fail(f"xfcc.trustedProxies[{i}]", f"not a SPIFFE ID: {exc.reason}")
            continue
        if not parsed.path:
            fail(f"xfcc.trustedProxies[{i}]", "a proxy identity needs a path")
    if XFCC in doc.identity_sources and not doc.xfcc.trusted_proxies:
        fail(
            "xfcc.trustedProxies",
            "must list at least one proxy SPIFFE ID when identitySources includes xfcc",
        )

    # Relative key and CA files are found next to the policy file.
    base = Path(source).parent if not source.startswith("<") else Path.cwd()
    jwt, jwt_svid = doc.jwt, doc.jwt_svid
    user_tokens = (
        None if jwt is None else attempt(lambda: build_user_tokens(jwt, fail, base), None)
    )
    svid_tokens = (
        None
        if jwt_svid is None
        else attempt(lambda: build_svid_tokens(jwt_svid, fail, base), None)
    )
    if JWT_SVID in doc.identity_sources and jwt_svid is None:
        fail("jwtSvid", "required when identitySources includes jwt-svid")
    if jwt_svid is not None and JWT_SVID not in doc.identity_sources:
        fail("jwtSvid", "configured, but identitySources does not include jwt-svid")
    if svid_tokens and user_tokens and svid_tokens.header == user_tokens.header:
        fail("jwtSvid.header", f"'{svid_tokens.header}' is also jwt.header")
    for i, host in enumerate(doc.ai_hosts):
        problem = host_glob_problem(host)
        if problem:
            fail(f"aiHosts[{i}]", problem)

    # A `jwt` section with problems of its own is not also "missing" for end-user rules.
    have_tokens = user_tokens is not None or jwt is not None
    workloads: list[WorkloadRule] = []
    first_index: dict[str, int] = {}
    for i, w in enumerate(doc.workloads):
        here = f"workloads[{i}]"
        if not w.name.strip():
            fail(f"{here}.name", "must not be empty")
        if w.name in first_index:
            fail(
                f"{here}.name",
                f"duplicate workload name '{w.name}' (first at workloads[{first_index[w.name]}])",
            )
        first_index[w.name] = i
        if not w.match:
            fail(f"{here}.match", "must list at least one identity pattern")
        for j, pattern in enumerate(w.match):
            # Against a broken trust domain every pattern would be wrong; one message is enough.
            problem = _match_pattern_problem(pattern, td) if td_ok else None
            if problem:
                fail(f"{here}.match[{j}]", problem)
        if w.models is not None:
            if not w.models:
                fail(f"{here}.models", "must not be empty; omit the key to allow any model")
            for j, model in enumerate(w.models):
                if not model:
                    fail(f"{here}.models[{j}]", "must not be empty")
        mcp = w.mcp
        sections = [("request", w.request), ("response", w.response)]
        if mcp is not None:
            sections += [("mcp.request", mcp.request), ("mcp.response", mcp.response)]
        for direction, rules in sections:
            for j, rule in enumerate(rules):
                if any(r.scanner == rule.scanner for r in rules[:j]):
                    fail(
                        f"{here}.{direction}[{j}].scanner",
                        f"scanner '{rule.scanner}' is listed twice",
                    )
                problem = _terms_problem(rule.scanner, rule.terms)
                if problem:
                    fail(f"{here}.{direction}[{j}].terms", problem)
        users = attempt(lambda w=w, here=here: _users(w, here, have_tokens, fail), None)
        destinations = attempt(
            lambda w=w, here=here: _destinations(w, here, fail), Destinations()
        )
        tool_rules = attempt(
            lambda w=w, here=here: _tool_rules(w, here, fail), ToolRules()
        )
        budget = attempt(
            lambda w=w, here=here: build_budget(w.budget, here, have_tokens, fail), None
        )
        workloads.append(
            WorkloadRule(
                name=w.name,
                match=tuple(w.match),
                models=None if w.models is None else tuple(w.models),
                request=tuple(
                    ScanRule(r.scanner, Action(r.action), tuple(r.terms or ())) for r in w.request
                ),
                response=tuple(
                    ScanRule(r.scanner, Action(r.action), tuple(r.terms or ())) for r in w.response
                ),
                users=users,
                require_user=w.require_user,
                destinations=destinations,
                unknown_apis=w.unknown_apis,
                tool_rules=tool_rules,
                budget=budget,
            )
        )
    for i, mcp_path in enumerate(doc.mcp_paths):
        problem = mcp_path_problem(mcp_path)
        if problem:
            fail(f"mcpPaths[{i}]", problem)
    if not doc.mcp_paths:
        fail("mcpPaths", "must list at least one path; omit the key for /mcp")

    if problems:
        raise PolicyProblems(problems) if len(problems) > 1 else problems[0]
    return Policy(
        trust_domain=td,
        default_action=doc.default_action,
        mode=doc.mode,
        identity_sources=tuple(doc.identity_sources),
        xfcc_trusted_proxies=tuple(doc.xfcc.trusted_proxies),
        workloads=tuple(workloads),
        source=source,
        digest=digest,
        user_tokens=user_tokens,
        svid_tokens=svid_tokens,
        ai_hosts=AiHosts(tuple(doc.ai_hosts)),
        budget_store=build_budget_store(doc.budget_store),
        pin_store=build_pin_store(doc.pin_store),
        mcp_paths=tuple(doc.mcp_paths),
    )


def _scan_rules(docs: list[_ScanRuleDoc]) -> tuple[ScanRule, ...]:
    return tuple(ScanRule(r.scanner, Action(r.action), tuple(r.terms or ())) for r in docs)


def _tool_rules(w: _WorkloadDoc, here: str, fail: Any) -> ToolRules:
    if w.tools is not None:
        if not w.tools:
            raise fail(f"{here}.tools", "must not be empty; omit the key to allow any tool")
        for j, pattern in enumerate(w.tools):
            problem = tool_glob_problem(pattern)
            if problem:
                raise fail(f"{here}.tools[{j}]", problem)
    mcp = w.mcp
    return ToolRules(
        tools=None if w.tools is None else tuple(w.tools),
        request=_scan_rules(mcp.request) if mcp else (),
        response=_scan_rules(mcp.response) if mcp else (),
        pinning=mcp.pinning if mcp else DEFAULT_PINNING,
    )


def _users(
    w: _WorkloadDoc, here: str, have_tokens: bool, fail: Any
) -> tuple[UserPattern, ...] | None:
    if (w.users is not None or w.require_user) and not have_tokens:
        key = "users" if w.users is not None else "requireUser"
        raise fail(f"{here}.{key}", "end-user rules need a 'jwt' section with issuers")
    if w.users is None:
        return None
    if not w.users:
        raise fail(f"{here}.users", "must not be empty; omit the key to admit any user")
    for j, text in enumerate(w.users):
        problem = user_pattern_problem(text)
        if problem:
            raise fail(f"{here}.users[{j}]", problem)
    return tuple(parse_user_pattern(text) for text in w.users)


def _destinations(w: _WorkloadDoc, here: str, fail: Any) -> Destinations:
    for key, values, check in (
        ("providers", w.providers, provider_problem),
        ("upstreams", w.upstreams, upstream_pattern_problem),
    ):
        if values is None:
            continue
        if not values:
            raise fail(f"{here}.{key}", f"must not be empty; omit the key to allow any {key[:-1]}")
        for j, value in enumerate(values):
            problem = check(value)
            if problem:
                raise fail(f"{here}.{key}[{j}]", problem)
    return Destinations(
        providers=None if w.providers is None else tuple(w.providers),
        upstreams=None if w.upstreams is None else tuple(UpstreamPattern(u) for u in w.upstreams),
    )


def _match_pattern_problem(pattern: str, trust_domain: str) -> str | None:
    if pattern == UNAUTHENTICATED:
        return None
    prefix = f"spiffe://{trust_domain}/"
    if not pattern.startswith(prefix):
        return f"must start with '{prefix}' or be exactly '{UNAUTHENTICATED}'"
    rest = pattern[len(prefix) :]
    if not rest:
        return "needs a path after the trust domain (use '*' for any workload)"
    for ch in rest:
        if ch not in _PATTERN_PATH_CHARS:
            return f"character {ch!r} cannot appear in a SPIFFE ID"
    return None
