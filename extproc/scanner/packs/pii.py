"""The PII pack: e-mail addresses, phone numbers, payment cards, US SSNs, IBANs.

Patterns are deliberately a little wider than the formats; the validators
(Luhn and issuer prefixes, mod-97 with per-country length, SSN area/group/
serial rules, phone digit counts and grouping, e-mail structure and TLDs)
decide. Context classes keep matches off the middle of longer digit or
identifier runs, which is what keeps order numbers, versions, UUIDs and
hashes quiet.
"""

from __future__ import annotations

from ..rules import NOT_ALNUM, Rule

_NUM_LEFT = r"[^A-Za-z0-9_\-.+/]"
_NUM_RIGHT = r"[^A-Za-z0-9_\-]"
_SEP = r"[ .\-]"
# Every match that can pass its validator holds two adjacent digits (cards group
# by four, phones end in a group of two or more, SSNs and IBANs have fixed runs).
_DIGITS = ("re:[0-9][0-9]",)

PII: tuple[Rule, ...] = (
    Rule(
        id="email-address",
        scanner="pii",
        # The automaton starts at "@"; the local part is found by extending left.
        pattern=r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+",
        max_len=190,
        extend=r"[A-Za-z0-9._%+\-]",
        extend_min=1,
        extend_max=64,
        validator="email",
        left=r"[^A-Za-z0-9._%+\-@]",
        right=r"[^A-Za-z0-9_\-@:]",
        keywords=("@",),
    ),
    Rule(
        id="payment-card",
        scanner="pii",
        # Groups may be separated by a space, dot, dash, slash, no-break space (U+00A0)
        # or narrow no-break space (U+202F); the validator wants one kind throughout.
        # Up to 24 digits, so that a longer grouped run is seen whole: the validator
        # reports its leading card (then the next one is found) or refuses it all.
        pattern="[1-9](?:(?:[ .\\-/]|\u00a0|\u202f)?[0-9]){12,23}",
        validator="card",
        keywords=_DIGITS,
        left=_NUM_LEFT,
        right=_NUM_RIGHT,
    ),
    Rule(
        id="us-ssn",
        scanner="pii",
        pattern=r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}",
        validator="ssn",
        keywords=_DIGITS,
        left=_NUM_LEFT,
        right=_NUM_RIGHT,
    ),
    Rule(
        id="us-ssn-labelled",
        scanner="pii",
        # Nine bare digits are too common to be an SSN on their own; next to the label they are.
        pattern=r"(?:ssn|social security(?: number| no\.?| #)?)[\s:#=.\-]{1,4}[0-9]{9}",
        ignore_case=True,
        validator="ssn-labelled",
        left=NOT_ALNUM,
        right=NOT_ALNUM,
        keywords=("ssn", "social security"),
    ),
    Rule(
        id="iban",
        scanner="pii",
        pattern=r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
        validator="iban",
        keywords=_DIGITS,
        left=NOT_ALNUM,
        right=NOT_ALNUM,
    ),
    Rule(
        id="phone-number",
        scanner="pii",
        pattern=(
            # E.164 and international forms: +CC then digits with optional separators.
            r"\+[1-9](?:" + _SEP + r"?\(?[0-9]\)?){6,14}"
            # North American national form; the last group must be separated.
            r"|(?:1"
            + _SEP
            + r"?)?\(?[2-9][0-9]{2}\)?"
            + _SEP
            + r"?[2-9][0-9]{2}"
            + _SEP
            + r"[0-9]{4}"
            # Trunk-prefixed national forms (UK, DE, FR, ...): 0 then groups.
            r"|\(?0[1-9][0-9]{0,3}\)?" + _SEP + r"?[0-9]{2,4}(?:" + _SEP + r"?[0-9]{2,4}){1,3}"
        ),
        validator="phone",
        keywords=_DIGITS,
        left=r"[^A-Za-z0-9_\-.+/]",
        right=_NUM_RIGHT,
    ),
)
