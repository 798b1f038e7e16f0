"""The secrets pack: credential formats with anchors, lengths and validators.

Every rule is anchored on the format's literal prefix or structure and
bounded by context classes, so a key embedded in a longer identifier does
not match and a bare prefix never does. Long variable parts use loops plus
`max_len` instead of large counted repetitions: that keeps the shared DFA
small, and the validators check the exact lengths.
"""

from __future__ import annotations

from ..rules import ANY, NOT_ALNUM, NOT_WORD, Rule

_B64URL = r"[A-Za-z0-9_\-]"
_NOT_B64URL = r"[^A-Za-z0-9_\-]"

SECRETS: tuple[Rule, ...] = (
    Rule(
        id="aws-access-key-id",
        scanner="secrets",
        pattern=r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}",
        validator="aws-key-id",
        left=NOT_ALNUM,
        right=NOT_ALNUM,
        keywords=tuple(
            ["AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA"]
        ),
    ),
    Rule(
        id="aws-secret-access-key",
        scanner="secrets",
        pattern=(
            r"aws[_\-.]?secret[_\-.]?(?:access[_\-.]?)?key[\"']?\s{0,3}[:=]{1,2}\s{0,3}[\"']?"
            r"[A-Za-z0-9/+]{40}"
        ),
        ignore_case=True,
        validator="aws-secret",
        left=NOT_ALNUM,
        right=r"[^A-Za-z0-9/+=]",
        keywords=("aws", "secret"),
    ),
    Rule(
        id="github-token",
        scanner="secrets",
        pattern=r"gh[pousr]_[A-Za-z0-9]{36,251}",
        validator="checksummed-token",
        left=NOT_ALNUM,
        right=NOT_WORD,
        keywords=("ghp_", "gho_", "ghs_", "ghu_", "ghr_"),
    ),
    Rule(
        id="github-fine-grained-pat",
        scanner="secrets",
        pattern=r"github_pat_[A-Za-z0-9]{20,30}_[A-Za-z0-9]{50,80}",
        validator="token",
        left=NOT_ALNUM,
        right=NOT_WORD,
        keywords=("github_pat_",),
    ),
    Rule(
        id="gitlab-pat",
        scanner="secrets",
        pattern=r"glpat-[A-Za-z0-9_\-]{20,60}(?:\.[A-Za-z0-9]{2}\.[A-Za-z0-9]{7,12})?",
        validator="token",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("glpat-",),
    ),
    Rule(
        id="slack-token",
        scanner="secrets",
        pattern=r"(?:xox[abposrce]|xapp)-[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*",
        max_len=255,
        validator="token",
        left=NOT_ALNUM,
        right=r"[^A-Za-z0-9\-]",
        keywords=("xox", "xapp-"),
    ),
    Rule(
        id="slack-webhook-url",
        scanner="secrets",
        pattern=(
            r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)"
            r"/T[A-Za-z0-9_]{6,14}/[AB][A-Za-z0-9_]{6,14}/[A-Za-z0-9_]{16,40}"
        ),
        validator="token",
        left=r"[^A-Za-z0-9.\-]",
        right=NOT_WORD,
        keywords=("hooks.slack.com",),
    ),
    Rule(
        id="stripe-live-key",
        scanner="secrets",
        pattern=r"(?:sk|rk)_live_[A-Za-z0-9]+",
        max_len=255,
        validator="token",
        left=NOT_ALNUM,
        right=NOT_WORD,
        keywords=("sk_live_", "rk_live_"),
    ),
    Rule(
        id="google-api-key",
        scanner="secrets",
        pattern=r"AIza[0-9A-Za-z_\-]{35}",
        validator="token",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("AIza",),
    ),
    Rule(
        id="anthropic-api-key",
        scanner="secrets",
        pattern=r"sk-ant-[A-Za-z0-9_\-]+",
        max_len=300,
        validator="anthropic-key",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("sk-ant-",),
    ),
    Rule(
        id="openai-api-key",
        scanner="secrets",
        pattern=r"sk-(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_\-]+",
        max_len=300,
        validator="openai-key",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("sk-",),
    ),
    Rule(
        id="huggingface-token",
        scanner="secrets",
        pattern=r"hf_[A-Za-z0-9]{30,40}",
        validator="token",
        left=NOT_ALNUM,
        right=NOT_WORD,
        keywords=("hf_",),
    ),
    Rule(
        id="npm-token",
        scanner="secrets",
        pattern=r"npm_[A-Za-z0-9]{36}",
        validator="checksummed-token",
        left=NOT_ALNUM,
        right=NOT_WORD,
        keywords=("npm_",),
    ),
    Rule(
        id="pypi-token",
        scanner="secrets",
        pattern=r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]+",
        max_len=400,
        validator="pypi-token",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("pypi-AgEIcHlwaS5vcmc",),
    ),
    Rule(
        id="sendgrid-api-key",
        scanner="secrets",
        pattern=r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        validator="sendgrid",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("SG.",),
    ),
    Rule(
        id="private-key",
        scanner="secrets",
        pattern=(
            r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[A-Za-z0-9+/=:,\s]|-[A-Za-z0-9])+"
            r"-----END (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"
        ),
        max_len=16384,
        validator="private-key",
        left=ANY,
        right=ANY,
        keywords=("-----BEGIN",),
        description="a complete PEM/OpenSSH/PGP private key block",
    ),
    Rule(
        id="private-key-partial",
        scanner="secrets",
        pattern=(
            r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[A-Za-z0-9+/=:,\s]|-[A-Za-z0-9])+"
        ),
        max_len=16384,
        validator="private-key-partial",
        left=ANY,
        right=r"[^A-Za-z0-9+/=:,\s\-]",
        keywords=("-----BEGIN",),
        description="a private key block cut off before its END line (truncated stream or paste)",
    ),
    Rule(
        id="jwt",
        scanner="secrets",
        pattern=r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
        max_len=8192,
        validator="jwt",
        left=NOT_ALNUM,
        right=_NOT_B64URL,
        keywords=("eyJ",),
    ),
    Rule(
        id="url-credentials",
        scanner="secrets",
        # The automaton starts at "://"; the scheme is found by extending left.
        pattern=(
            r"://[^\s:/@\"'<>]{1,128}:[^\s/@\"'<>]{1,256}@"
            r"[A-Za-z0-9][A-Za-z0-9.\-]*"
        ),
        max_len=580,
        extend=r"[A-Za-z0-9+.\-]",
        extend_min=2,
        extend_max=20,
        validator="url-credentials",
        left=r"[^A-Za-z0-9+.\-]",
        right=r"[^A-Za-z0-9\-]",
        keywords=("://",),
    ),
    Rule(
        id="generic-api-key",
        scanner="secrets",
        pattern=(
            r"(?:(?:api|access|auth|client|secret|private|app|master)[_\-]?(?:key|secret|token)"
            r"|token|secret|password|passwd)[a-z_\-]{0,12}"
            r"[\"']?\s{0,3}[:=]{1,2}\s{0,3}[\"']?[a-z0-9_\-+/=.]{16,128}"
        ),
        validator="keyword-secret",
        ignore_case=True,
        left=NOT_ALNUM,
        right=r"[^A-Za-z0-9_\-+/=.]",
        keywords=("key", "secret", "token", "password", "passwd"),
        description="a high-entropy value assigned to a key-like name; reports the value only",
    ),
)
