"""Validators: Python checks that run on candidate matches only.

Owns the registry `VALIDATORS` that rules name. A validator takes the
candidate's text and returns the span (relative to the candidate) to
report, or None to reject it. Most return the whole span; keyword-anchored
rules (`generic-api-key`, `aws-secret-access-key`) narrow it to the value.

They run once per candidate, never per byte, so plain Python is fine here.
A validator must be a pure function of the candidate text: anything else
would break split invariance.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import string
import zlib
from collections import Counter
from collections.abc import Callable

Span = tuple[int, int] | None
Validator = Callable[[str], Span]

# Returned by a validator to say "this is a known harmless form": the candidate
# consumes its span (so no other rule matches inside it) but nothing is reported.
SUPPRESS: tuple[int, int] = (0, 0)

_PLACEHOLDER_WORDS = re.compile(
    r"example|sample|dummy|placeholder|fake|your|redacted|changeme|insert|replace|"
    r"xxxx|0000|1234567|abcdef|qwerty|token_here|key_here|secret_here|<|>|\{|\}|\$|\*\*\*",
    re.IGNORECASE,
)


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts = Counter(s)
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_RUN = re.compile(r"(.)\1{4}")
_ALPHABETS = ("0123456789", string.ascii_lowercase, string.ascii_uppercase)
# Every ascending or descending stretch of six: "012345", "fedcba", ... (94 strings).
_SEQUENCES = tuple(
    seq
    for alphabet in _ALPHABETS
    for run in (alphabet, alphabet[::-1])
    for seq in (run[k : k + 6] for k in range(len(run) - 5))
)


def _longest_run_at_least_5(s: str) -> bool:
    return _RUN.search(s) is not None


def _sequential(s: str) -> bool:
    """True if s contains an ascending or descending run of 6+ digits or letters."""
    return any(seq in s for seq in _SEQUENCES)


def looks_random(body: str, min_entropy: float = 3.0) -> bool:
    """The body of a token looks machine-generated, not like a placeholder."""
    if _PLACEHOLDER_WORDS.search(body):
        return False
    if _longest_run_at_least_5(body) or _sequential(body):
        return False
    distinct = len(set(body))
    if distinct < min(len(body) // 3, 10):
        return False
    return entropy(body) >= min(min_entropy, math.log2(max(len(body), 2)) * 0.75)


def token(text: str) -> Span:
    """Fixed-format tokens: the part after the prefix must look random."""
    body = re.split(r"[_\-.]", text, maxsplit=1)[-1] if len(text) > 12 else text
    return (0, len(text)) if looks_random(body) else None


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def crc32_base62_ok(body: str) -> bool:
    """GitHub/npm token checksum: the last 6 characters are base62(CRC32(rest))."""
    if len(body) < 7:
        return False
    payload, check = body[:-6], body[-6:]
    return _base62(zlib.crc32(payload.encode("ascii")) & 0xFFFFFFFF, 6) == check


def checksummed_token(text: str) -> Span:
    """ghp_/npm_ style tokens: a valid checksum proves it; otherwise fall back to randomness.

    Rejecting on a bad checksum would miss tokens that were copied with a
    typo or made up for a test but still pasted somewhere they should not
    be; the checksum therefore lifts the placeholder heuristics rather than
    gating the match.
    """
    body = text.split("_", 1)[1] if "_" in text else text
    if len(body) == 36 and crc32_base62_ok(body):
        return (0, len(text))
    return token(text)


def openai_key(text: str) -> Span:
    if text.startswith("sk-ant-"):
        return None
    if "T3BlbkFJ" in text:
        head, _, tail = text.partition("T3BlbkFJ")
        body = re.sub(r"^sk-(?:proj-|svcacct-|admin-|None-)?", "", head)
        if len(body) < 8 or len(tail) < 8:
            return None
        return (0, len(text)) if looks_random(body + tail, 3.2) else None
    body = text[3:]
    if len(body) < 40:
        return None
    return (0, len(text)) if looks_random(body, 3.5) else None


def anthropic_key(text: str) -> Span:
    body = re.sub(r"^sk-ant-[a-z0-9]+-", "", text)
    if len(body) < 32:
        return None
    return (0, len(text)) if looks_random(body, 3.5) else None


def aws_key_id(text: str) -> Span:
    body = text[4:]
    if "EXAMPLE" in text:
        return None
    return (0, len(text)) if looks_random(body, 2.8) else None


def jwt(text: str) -> Span:
    """Structural JWT check: a base64url header that decodes to a JSON object with `alg`."""
    parts = text.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        _b64url(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header:
        return None
    return (0, len(text))


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def pypi_token(text: str) -> Span:
    body = text[len("pypi-") :]
    try:
        raw = _b64url(body[: len(body) - len(body) % 4])
    except (ValueError, binascii.Error):
        return None
    return (0, len(text)) if b"pypi.org" in raw[:40] and len(body) >= 60 else None


def sendgrid(text: str) -> Span:
    _, a, b = text.split(".")
    return (0, len(text)) if looks_random(a + b, 3.5) else None


# Only what documentation writes; a weak real password ("password123") is still a leak.
_PLACEHOLDER_PASSWORDS = {
    "password", "passwd", "pass", "pwd", "secret", "changeme", "mypassword", "yourpassword",
    "your-password", "your_password", "xxx", "placeholder", "redacted", "pw",
}  # fmt: skip


def url_credentials(text: str) -> Span:
    """scheme://user:password@host: reject templated or placeholder passwords."""
    scheme, _, rest = text.partition("://")
    if not scheme[:1].isalpha():
        return None
    userinfo = rest.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    if not password or not user:
        return None
    low = password.lower()
    if low in _PLACEHOLDER_PASSWORDS or set(low) <= {"*", "x", "."}:
        return SUPPRESS
    # Templates and elisions: ${DB_PASS}, {{ password }}, <password>, %s, %(pw)s, ...
    if re.search(r"[<>{}]|\$[A-Za-z({]|%s|%\(|\.\.\.", password) or re.fullmatch(
        r"\d{1,5}", password
    ):
        return SUPPRESS
    return (0, len(text))


_ASSIGN = re.compile(r"""[:=]\s*["']?""")
_KNOWN_PREFIX = re.compile(
    r"gh[pousr]_|github_pat_|glpat-|xox[a-z]-|xapp-|[sr]k_live_|AIza|sk-|hf_|npm_|pypi-|SG\.|eyJ|"
    r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA)[A-Z0-9]{16}"
)


def keyword_secret(text: str) -> Span:
    """`api_key = "..."` style: report only the value, and only if it looks random."""
    matches = list(_ASSIGN.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    value = text[start:].rstrip(".\"'")
    if _KNOWN_PREFIX.match(value):
        return None  # a specific rule starts at the value and names it better
    if len(value) < 16 or value.isalpha() or value.isdigit():
        return None
    if re.fullmatch(r"[a-z_][a-z0-9_.]*(?:\(\)?)?", value) or ("_" in value and value.islower()):
        return None  # an identifier, not a secret
    classes = sum(
        bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if classes < 2 or not looks_random(value, 3.5):
        return None
    return (start, start + len(value))


def aws_secret(text: str) -> Span:
    value = text[-40:]
    return (len(text) - 40, len(text)) if looks_random(value, 4.0) else None


def private_key(text: str) -> Span:
    return (0, len(text))


def private_key_partial(text: str) -> Span:
    # A header with no body is documentation, not a key.
    body = text.split("-----", 2)[-1]
    return (0, len(text)) if len(re.sub(r"\s", "", body)) >= 64 else None


# --- PII -------------------------------------------------------------------


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    # Every other digit from the right is doubled (digit sum); runs once per candidate card,
    # so it is written for speed: slices and a table instead of a loop over positions.
    rev = digits[::-1]
    doubled = _LUHN_DOUBLED
    total = sum(map(int, rev[0::2])) + sum(doubled[int(c)] for c in rev[1::2])
    return total % 10 == 0


def _iin_ok(d: str) -> bool:
    """Issuer prefixes of the card networks, so Luhn-passing order numbers stay quiet."""
    n = len(d)
    two, four = int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= int(d[:3]) <= 305:
        return 14 <= n <= 19
    if d.startswith("6011") or two == 65 or 644 <= int(d[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two == 62 or two == 81:
        return 16 <= n <= 19
    if two == 50 or 56 <= two <= 69 or two == 67:
        return 12 <= n <= 19
    return False


# What people write between the groups of a card number.
_CARD_SEPARATORS = frozenset(" .-/\u00a0\u202f")
_DROP_DIGITS = str.maketrans("", "", "0123456789")
_CARD_GROUPINGS = ([4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3], [6, 13])


def card(text: str) -> Span:
    """Payment cards: 13-19 digits, one separator kind grouped consistently, a known
    issuer prefix, Luhn."""
    # The pattern admits only digits and separators, so what is not a digit is a separator.
    seps = set(text.translate(_DROP_DIGITS))
    if len(seps) > 1 or not seps <= _CARD_SEPARATORS:
        return None
    sep = next(iter(seps)) if seps else ""
    digits = text.replace(sep, "") if sep else text
    if len(digits) > 19:
        # Longer than any card: cards written one after another with the same separator
        # ("4111 1111 1111 1111 5555 5555 5555 4444"). Report the longest leading run of
        # whole groups that is a card (the rest is scanned again); none: nothing here.
        if not sep:
            return None
        parts = text.split(sep)
        for k in range(len(parts) - 1, 0, -1):
            head = sep.join(parts[:k])
            if len(head) - (k - 1) <= 19 and card(head) not in (None, SUPPRESS):
                return (0, len(head))
        return SUPPRESS
    if len(digits) < 13:
        return None
    if sep:
        groups = [len(g) for g in text.split(sep)]
        if not (
            (groups[-1] <= 4 and all(g == 4 for g in groups[:-1]) and groups[-1] >= 1)
            or groups in _CARD_GROUPINGS
        ):
            return None
    if len(set(digits)) < 2 or not _iin_ok(digits) or not luhn_ok(digits):
        # Card-shaped but invalid: nothing to report, and no phone number inside it either.
        return SUPPRESS if sep else None
    return (0, len(text))


IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def iban(text: str) -> Span:
    """ISO 13616: country length, mod-97 check, and spaces only between groups of four."""
    if " " in text and any(len(g) != 4 for g in text.split(" ")[:-1]):
        return None
    compact = text.replace(" ", "")
    if iban_ok(compact):
        return (0, len(text))
    # Right shape, wrong check digits: a typo'd IBAN hides no phone number.
    return SUPPRESS if IBAN_LENGTHS.get(compact[:2]) == len(compact) else None


def ssn(text: str) -> Span:
    """US SSN: area not 000/666/9xx, group not 00, serial not 0000, one separator kind."""
    m = re.fullmatch(r"(\d{3})([ \-]?)(\d{2})\2(\d{4})", text)
    if not m:
        return None
    area, group, serial = m.group(1), m.group(3), m.group(4)
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    # Numbers the SSA voided after they were printed in advertising.
    if text.replace("-", "").replace(" ", "") in ("078051120", "219099999"):
        return None
    return (0, len(text))


def ssn_labelled(text: str) -> Span:
    """ "SSN: 536221234": the nine digits after the label, under the same SSN rules."""
    digits = text[-9:]
    if ssn(f"{digits[:3]}-{digits[3:5]}-{digits[5:]}") is None:
        return None
    return (len(text) - 9, len(text))


_ASCENDING = "01234567890123456789"


def phone(text: str) -> Span:
    """Phone numbers: 8-15 digits (E.164), readable grouping, not a date or a repeated digit."""
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15:
        return None
    if text.count("(") != text.count(")"):
        return None
    groups = re.findall(r"\d+", text)
    if len(groups) > 1 and len(groups[-1]) < 2:
        return None
    if len(set(digits)) <= 2 or digits in _ASCENDING or digits in _ASCENDING[::-1]:
        return None
    seps = set(re.findall(r"[ .\-]", text))
    if len(seps) > 1 and "." in seps:
        return None
    if not text.startswith("+") and (len(digits) < 9 or not re.search(r"[ .\-()]", text)):
        return None
    return (0, len(text))


# Top-level domains seen in mail; two-letter labels are country codes and pass.
_TLDS = frozenset(
    [
        "com",
        "org",
        "net",
        "edu",
        "gov",
        "mil",
        "int",
        "info",
        "biz",
        "name",
        "pro",
        "aero",
        "coop",
        "museum",
        "mobi",
        "jobs",
        "travel",
        "tel",
        "asia",
        "cat",
        "app",
        "dev",
        "io",
        "ai",
        "co",
        "me",
        "tv",
        "cloud",
        "online",
        "site",
        "tech",
        "store",
        "shop",
        "blog",
        "email",
        "xyz",
        "top",
        "club",
        "digital",
        "agency",
        "company",
        "solutions",
        "services",
        "media",
        "news",
        "live",
        "group",
        "global",
        "world",
        "today",
        "life",
        "systems",
        "network",
        "works",
        "zone",
        "team",
        "center",
        "studio",
        "design",
        "space",
        "host",
        "website",
        "page",
        "art",
        "health",
        "bank",
        "law",
        "legal",
        "finance",
        "capital",
        "consulting",
        "support",
        "academy",
        "school",
        "university",
        "church",
        "example",
        "test",
        "local",
        "internal",
        "corp",
        "home",
        "lan",
        "mail",
        "inc",
        "ltd",
        "llc",
        "gmbh",
    ]
)


_MORE_TLDS = frozenset(
    ("ninja", "guru", "software", "codes", "link", "click", "land", "tools", "expert")
)


def email(text: str) -> Span:
    local, _, domain = text.rpartition("@")
    if not local or local[0] == "." or local[-1] == "." or ".." in local or len(local) > 64:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or any(not lb or lb[0] == "-" or lb[-1] == "-" for lb in labels):
        return None
    tld = labels[-1].lower()
    if not tld.isalpha() or (len(tld) > 2 and tld not in _TLDS and tld not in _MORE_TLDS):
        return None
    return (0, len(text))


# --- prompt injection ------------------------------------------------------


def tag_text(text: str) -> Span:
    """Hidden Unicode tag text; a well-formed emoji subdivision flag (🏴 + tags) is not."""
    chars = [chr(ord(c) - 0xE0000) for c in text]
    body = "".join(chars)
    # A subdivision flag is at most six tag letters and a cancel tag; any suffix of
    # one is too short to carry an instruction.
    if body.endswith("\x7f") and len(body) <= 7:
        return None
    return (0, len(text))


VALIDATORS: dict[str, Validator] = {
    "token": token,
    "checksummed-token": checksummed_token,
    "openai-key": openai_key,
    "anthropic-key": anthropic_key,
    "aws-key-id": aws_key_id,
    "aws-secret": aws_secret,
    "jwt": jwt,
    "pypi-token": pypi_token,
    "sendgrid": sendgrid,
    "url-credentials": url_credentials,
    "keyword-secret": keyword_secret,
    "private-key": private_key,
    "private-key-partial": private_key_partial,
    "card": card,
    "iban": iban,
    "ssn": ssn,
    "ssn-labelled": ssn_labelled,
    "phone": phone,
    "email": email,
    "tag-text": tag_text,
}
