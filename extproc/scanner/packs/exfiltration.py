"""The exfiltration pack: links and images in a response that would carry data out.

Owns the raw-byte rules for the shapes a model's answer can use to leak
the conversation when a client renders it: a markdown image or link, or
an HTML `<img>`, whose URL holds a templated placeholder (`{secret}`,
`{{history}}`, `%7Bdata%7D`, `${...}`) or a long encoded query value
(base64, hex, or a sentence in percent-encoding). The patterns only find
the shapes, anchored on `![`, `[` and `<img`; the `exfiltration-url`
validator reads the URL and decides, so an ordinary link or picture in
an answer is left alone.
"""

from __future__ import annotations

from ..rules import ANY, Rule

# A URL inside markdown: no spaces or closing parentheses, except inside a placeholder.
_URL = r"[A-Za-z][A-Za-z0-9+.\-]{1,15}:(?:[^\s()<>{}]|\{\{?[^{}\n]+\}\}?)+"
_TITLE = r"(?:[ \t]{1,3}(?:\"[^\"\n]*\"|'[^'\n]*'))?"
_MD_TARGET = r"\([ \t]{0,3}<?" + _URL + r">?" + _TITLE + r"[ \t]{0,3}\)"

EXFILTRATION: tuple[Rule, ...] = (
    Rule(
        id="markdown-image-exfiltration",
        scanner="exfiltration",
        pattern=r"!\[[^\]\n]*\]" + _MD_TARGET,
        max_len=2800,
        validator="exfiltration-url",
        left=ANY,
        right=ANY,
        keywords=("![",),
        description="a markdown image whose URL carries a placeholder or encoded data",
    ),
    Rule(
        id="markdown-link-exfiltration",
        scanner="exfiltration",
        pattern=r"\[[^\]\n]+\]" + _MD_TARGET,
        max_len=2800,
        validator="exfiltration-url",
        left=r"[^!\]\\]",
        right=ANY,
        keywords=("[",),
        description="a markdown link whose URL carries a placeholder or encoded data",
    ),
    Rule(
        id="html-image-exfiltration",
        scanner="exfiltration",
        pattern=r"<img[\s/][^<>]*>",
        max_len=4096,
        ignore_case=True,
        validator="exfiltration-html",
        left=ANY,
        right=ANY,
        keywords=("<img",),
        description="an HTML <img> whose source carries a placeholder or encoded data",
    ),
)
