"""The prompt-injection pack: phrasings matched on normalised text.

Owns the phrase rules for instruction override, system-prompt
exfiltration, role hijack and delimiter smuggling, plus the raw-byte rule
for hidden Unicode tag text.

Phrases are written in a small dialect and expanded by `phrase()`:

* a space between words becomes `GAP`, up to three punctuation or space
  characters, or none (zero-width joiners vanish in normalisation, so
  "ignore\u200ball" reads "ignoreall");
* between two letters of a word, `INTRA` allows one separator, which is
  what catches letter-spaced words ("i g n o r e") without a lookahead;
* everything else is the pattern grammar of `syntax`, on the folded
  alphabet of `normalize` (lower-case ASCII, single spaces, 0x80 for any
  other character).

Each phrase needs a specific object ("previous instructions", "system
prompt", "developer mode"): bare verbs such as "ignore" or nouns such as
"instructions" are everyday words in technical prose.
"""

from __future__ import annotations

from ..rules import ANY, INTRA, Rule

GAP = r"[ .,:;'\"*_\-!/]{0,3}"
_EDGE = r"[^a-z0-9]"


def phrase(text: str) -> str:
    """Expand the phrase dialect into a pattern on folded text."""
    out: list[str] = []
    for i, c in enumerate(text):
        if c == " ":
            out.append(GAP)
            continue
        out.append(c)
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c.isalpha() and nxt.isalpha() and (i == 0 or text[i - 1] != "\\"):
            out.append(INTRA)
    return "".join(out)


def _rule(
    rule_id: str,
    *phrases: str,
    keywords: tuple[str, ...],
    left: str = _EDGE,
    right: str = _EDGE,
) -> Rule:
    return Rule(
        id=rule_id,
        scanner="prompt-injection",
        pattern="|".join(f"(?:{phrase(p)})" for p in phrases),
        normalized=True,
        left=left,
        right=right,
        keywords=keywords,
    )


def _alt(words: str) -> str:
    """`"a b|c d"` -> `"(?:a b|c d)"`; "|" separates alternatives, spaces are gaps."""
    return f"(?:{words})"


_VERB = _alt("ignore|disregard|forget|skip|override|bypass|drop|discard|neglect|abandon|overlook")
_OLD = _alt(
    "previous|prior|above|preceding|earlier|former|past|initial|original|old|existing"
    "|foregoing|preexisting|pre-existing|system|developer|given|all"
)
_RULES = _alt(
    "instructions?|prompts?|rules|directions|directives|guidelines|guidance|commands"
    "|orders|context|constraints|restrictions|programming|messages|conversation|requests"
)
_SECRET_PROMPT = _alt(
    "system (?:prompt|message|instructions?)|initial (?:prompt|instructions)"
    "|original (?:prompt|instructions)|hidden (?:prompt|instructions)"
    "|secret (?:prompt|instructions)|developer (?:prompt|message|instructions)|pre-?prompt"
    "|instructions you (?:were|have been) given|prompt you (?:were|have been) given"
    "|full prompt|internal instructions"
)
_UNBOUND = _alt(
    "restrictions|limitations|limits|rules|filters|guidelines|content polic(?:y|ies)"
    "|ethical (?:guidelines|constraints)|moral(?:s| constraints)?|censorship"
)
_BAD_ROLE = _alt(
    "dan|unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|unethical|amoral|a hacker"
    "|(?:evil|chaos|dark|free|unfiltered|uncensored|based|anti)-?gpt"
)
_BOT = _alt("ai|assistant|model|chatbot|language model|bot")
_YOU_ARE = _alt("you are|you're|youre|u r|you r")
_REVEAL = _alt(
    "reveal|show|print|display|output|repeat|tell|give|share|leak|dump|disclose|expose"
    "|write out|spell out|recite|return|provide|paste|list|send|translate|type out|echo"
)

INJECTION: tuple[Rule, ...] = (
    _rule(
        "instruction-override",
        f"{_VERB} (?:all |any |every )?(?:of )?(?:the |your |my |these |those |this |that )?"
        f"{_OLD} {_RULES}",
        f"{_VERB} (?:all |any )?(?:of )?your {_RULES}",
        f"{_VERB} (?:all |any )?(?:of )?(?:the |these |those |your )?{_RULES} "
        "(?:above|before|so far|(?:you (?:were|have been|got) )?given (?:above|before|earlier"
        "|previously|to you)|you (?:were|have been) given)",
        f"{_VERB} (?:all |any )?(?:of )?(?:the |your )?(?:safety |content |ethical |moderation )"
        "(?:filters?|guidelines|policies|protocols|measures|restrictions|safeguards|guardrails"
        "|rules|training)",
        f"{_VERB} (?:all |any |every )?(?:of )?(?:the |your |these |those )?{_RULES} (?:that )?"
        "(?:you (?:received|got|were given|have been given|have received|were told)|i gave you)",
        "(?:previous|prior|above|earlier|original|old|initial) (?:instructions|rules|prompts?) "
        "(?:are|were|is) (?:now )?(?:void|cancelled|canceled|invalid|null|revoked|obsolete"
        "|no longer valid|overridden)",
        "your (?:new )?instructions are now",
        f"{_VERB} (?:everything|all|anything) (?:(?:that |you were |i )?(?:said|told|written"
        "|wrote|given) )?(?:above|before|previously|earlier|so far)",
        f"{_VERB} (?:everything|all|anything|what) (?:that )?(?:you were|you've been"
        "|you have been|i|we) (?:told|taught|given|said|instructed)",
        f"{_VERB} the (?:above|previous|preceding)",
        "(?:do not|don't|dont|never|stop) (?:follow|obey|listen to|following|obeying) "
        "(?:your |the |any )?(?:previous |prior |original |initial |above |earlier )?"
        "(?:instructions|rules|guidelines|system prompt)",
        "(?:new|updated|real|revised|actual|override) (?:system )?instructions\\x20?:",
        "your (?:new|real|true|actual) (?:instructions|task|objective|goal|purpose|role)"
        " (?:is|are)",
        "(?:instead|rather),? (?:of (?:that|this) )?(?:follow|obey) (?:these|my|the following)"
        " (?:instructions|rules|commands)",
        keywords=tuple(
            [
                "ignore",
                "disregard",
                "forget",
                "skip",
                "override",
                "bypass",
                "drop",
                "discard",
                "neglect",
                "abandon",
                "overlook",
                "follow",
                "obey",
                "listen",
                "instruction",
                "task",
                "objective",
                "goal",
                "purpose",
                "role",
                "rules",
                "prompt",
            ]
        ),
    ),
    _rule(
        "system-prompt-exfiltration",
        f"{_REVEAL} (?:me |us )?(?:back )?(?:all |the |your |of your |of the ){{0,3}}"
        "(?:full |entire |complete |exact |whole |verbatim |original |initial |hidden |secret "
        f"|raw ){{0,3}}{_SECRET_PROMPT}",
        f"{_REVEAL} (?:me |us )?(?:the )?(?:contents?|text|wording) of (?:your |the )?"
        f"{_SECRET_PROMPT}",
        "what (?:instructions|rules|directives|guidelines|prompt) (?:were|have) you (?:been )?"
        "given",
        "(?:respond|reply|answer) (?:only )?with (?:your|the) (?:full |exact |original |initial "
        "|hidden |secret ){0,3}(?:prompt|system prompt|instructions)",
        f"{_REVEAL} (?:me |us )?(?:all )?your (?:full |entire |complete |exact |original "
        "|initial )?(?:prompt|instructions|rules and instructions|directives|configuration)",
        f"what (?:is|are|was|were) (?:your|the) (?:full |exact |original |initial |hidden )?"
        f"{_SECRET_PROMPT}",
        "what (?:were|are) your (?:initial |original |hidden |exact |secret )?instructions",
        "(?:repeat|print|output|reproduce|recite) (?:all |the )?(?:words|text|everything|lines"
        "|content|tokens) (?:above|before this|before that|preceding"
        "|from the (?:start|beginning))",
        "(?:repeat|print|output) everything (?:above|before)",
        "(?:ignore|forget) (?:that|this) and (?:print|reveal|show|output) (?:your|the)",
        keywords=tuple(
            [
                "prompt",
                "message",
                "instruction",
                "directive",
                "configuration",
                "repeat",
                "print",
                "output",
                "reproduce",
                "recite",
                "rules",
                "guideline",
                "ignore",
                "forget",
            ]
        ),
    ),
    _rule(
        "role-hijack",
        f"{_YOU_ARE} now (?:a |an |the |in |my )?(?:{_BAD_ROLE}|free|liberated|no longer"
        "|developer mode|god mode|admin|root|different|an? unrestricted|an? evil"
        f"|not (?:an? )?{_BOT}|an? {_BOT} (?:with|without|that|who|called|named))",
        f"{_YOU_ARE} no longer (?:chatgpt|claude|gpt|an? {_BOT}|bound|restricted|limited)",
        "from (?:now on|this point (?:on|forward|onward)|here on),? (?:you (?:are|will|must"
        "|shall|act|respond|answer|behave|pretend|only"
        "|can|have|no longer)|act as|respond as|pretend|ignore|forget|always answer)",
        "(?:act|behave|respond|roleplay|role-play) as (?:if you (?:are|were) |though you "
        f"(?:are|were) )?(?:a |an )?(?:{_BAD_ROLE}|{_BOT} (?:with no|without) {_UNBOUND})",
        "(?:act|behave|respond) as (?:if|though) you (?:have no|had no|are free of|were free of"
        f"|are not bound by|were not bound by) (?:any )?{_UNBOUND}",
        "pretend (?:to be|you are|you're|that you are|that you're) (?:a |an )?"
        f"(?:{_BAD_ROLE}|an? ai (?:with no|without)|not (?:an? )?ai"
        f"|{_BOT} (?:with no|without) {_UNBOUND})",
        "do anything now",
        "(?:dan|developer|god|jailbreak|jailbroken|unrestricted|evil) mode (?:enabled|activated"
        "|on|engaged|unlocked)",
        "(?:enable|activate|enter|switch to|turn on|unlock) (?:the )?(?:dan|developer|god"
        "|jailbreak|unrestricted|evil|admin|sudo) mode",
        "you (?:have no|are free (?:of|from)|are not bound by|no longer have|don't have any"
        f"|do not have any|are no longer bound by) (?:any )?{_UNBOUND}",
        "(?:stay|remain) in character (?:no matter what|at all times|as dan)",
        "jailbreak(?:ed)? prompt",
        "\\[jailbreak\\]|\\[dan\\]|\\[\\x80jailbreak\\]",
        keywords=tuple(
            [
                "now",
                "point",
                "here",
                "longer",
                "act",
                "behave",
                "respond",
                "roleplay",
                "pretend",
                "mode",
                "restriction",
                "limitation",
                "limit",
                "rules",
                "filter",
                "guideline",
                "content",
                "polic",
                "ethical",
                "moral",
                "censorship",
                "character",
                "jailbreak",
                "dan",
            ]
        ),
    ),
    _rule(
        "delimiter-smuggling",
        "<\\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|start_header_id"
        "|end_header_id|eot_id|begin_of_text|end_of_text|channel|message|fim_prefix|tool)\\|>",
        "\\[/?inst\\]|<</?sys>>",
        # Opening tags such as <system> are common in XML; closing ones rarely are.
        "</(?:system|system_prompt|sys|instructions?)>|<system_prompt>",
        "#{2,4}\\x20?(?:system|system prompt|new instructions|instruction|admin)\\x20?:",
        "\\[(?:system|system message|system prompt|admin|developer)\\x20?"
        "(?:message|note|override)?\\]",
        "(?:begin|start|end) (?:of )?(?:system|developer|admin) (?:prompt|message|instructions)"
        "\\x20?(?:-{2,8}|={2,8}|#{2,8}|\\]|>)",
        "(?:system|admin|developer) override\\x20?:",
        "(?:-{3,8}|={3,8}|#{3,8})\\x20?(?:system|developer|admin) "
        "(?:prompt|message|override|instructions)",
        "end of (?:user )?(?:input|prompt|document)\\.? (?:-{2,8}|={2,8}|#{2,8}|\\]|>)?"
        "\\x20?(?:new |system |assistant )?(?:instructions?|system|assistant)\\x20?:",
        keywords=("re:<\\|", "inst", "sys", "admin", "developer", "input", "prompt", "document"),
        left=ANY,
        right=ANY,
    ),
    Rule(
        id="unicode-tag-smuggling",
        scanner="prompt-injection",
        pattern=r"(?:\xF3\xA0[\x80\x81][\x80-\xBF])+",
        # Long runs are reported in pieces of this size, which bounds hold-back.
        max_len=1024,
        validator="tag-text",
        keywords=("re:\\xF3\\xA0",),
        after_tag=False,
        left=ANY,
        right=r"[^\xF3]",
        description="text hidden in invisible Unicode tag characters (U+E0000 block)",
    ),
)
