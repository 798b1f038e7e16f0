"""The prompt-injection pack: phrasings matched on normalised text.

Owns the phrase rules for instruction override (in eight languages besides
English, leetspeak and rot13 too), system-prompt extraction, role hijack,
fake role and turn delimiters, the weak persona signals and their scoring
parameters (`PERSONA_WINDOW`, `PERSONA_THRESHOLD`, weights per rule; see
DESIGN.md), and the raw-byte rules for base64/hex payloads and hidden
Unicode tag text.

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

import base64

from ..normalize import fold_text
from ..rules import ANY, INTRA, Rule, Signal, leet_class

GAP = r"[ .,:;'\"*_\-!/]{0,3}"
_EDGE = r"[^a-z0-9]"


def phrase(text: str, leet: bool = True) -> str:
    """Expand the phrase dialect into a pattern on folded text."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            k = 4 if text[i + 1 : i + 2] == "x" else 2
            out.append(text[i : i + k])
            i += k
            continue
        if c == "[":  # a class is taken as written
            close = text.index("]", i + 1)
            out.append(text[i : close + 1])
            i = close + 1
            continue
        i += 1
        if c == " ":
            out.append(GAP)
            continue
        out.append(leet_class(c) if leet and c.isalpha() else c)
        if c.isalpha() and i < n and text[i].isalpha():
            out.append(INTRA)
    return "".join(out)


def rot13(text: str) -> str:
    """The dialect text with its letters rotated (escapes kept): rot13-encoded phrases."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            k = 4 if text[i + 1 : i + 2] == "x" else 2
            out.append(text[i : i + k])
            i += k
            continue
        if "a" <= c <= "z":
            c = chr((ord(c) - 97 + 13) % 26 + 97)
        out.append(c)
        i += 1
    return "".join(out)


def native(text: str) -> str:
    """A phrase in another script, folded like the text: kept letters become their bytes.

    Spaces are gaps, ASCII is pattern syntax, any other character is folded
    by `normalize` (case, look-alikes, accents) and written as byte escapes.
    """
    out: list[str] = []
    for c in text:
        if c == " ":
            out.append(GAP)
        elif c.isascii():
            out.append(c)
        else:
            out.extend(
                f"\\x{ord(f):02x}" if ord(f) >= 0x80 else f for f in fold_text(c) if f != " "
            )
    return "".join(out)


def _with_rot13(keywords: tuple[str, ...]) -> tuple[str, ...]:
    """Keywords plus their rot13 forms, which rot13-encoded phrases contain instead."""
    plain = [k for k in keywords if not k.startswith("re:")]
    return tuple(dict.fromkeys([*keywords, *(rot13(k) for k in plain)]))


def _rule(
    rule_id: str,
    *phrases: str,
    keywords: tuple[str, ...],
    left: str = _EDGE,
    right: str = _EDGE,
    leet: bool = True,
    extra: tuple[str, ...] = (),
    signal: Signal | None = None,
) -> Rule:
    """A normalised rule from dialect phrases, plus `extra` patterns taken as they are."""
    return Rule(
        id=rule_id,
        scanner="prompt-injection",
        pattern="|".join([*(f"(?:{phrase(p, leet)})" for p in phrases), *extra]),
        normalized=True,
        left=left,
        right=right,
        keywords=_with_rot13(keywords),
        signal=signal,
    )


def _alt(words: str) -> str:
    """`"a b|c d"` -> `"(?:a b|c d)"`; "|" separates alternatives, spaces are gaps."""
    return f"(?:{words})"


# Encoded payloads: the trigger words whose encodings anchor the encoded rules.
_TRIGGERS = (
    "ignore", "disregard", "forget", "instruction", "previous", "system prompt", "jailbreak",
    "override", "reveal", "bypass",
)  # fmt: skip
_MIN_ANCHOR = 6  # shortest base64 anchor kept: shorter ones would fire on random text
_ENCODED_MAX = 2048  # longest encoded run decoded, in bytes: decoding is bounded


def _b64_anchors(words: tuple[str, ...]) -> list[str]:
    """Base64 of each word at the three byte alignments, only the characters it fixes."""
    out: set[str] = set()
    for word in words:
        for w in {word, word.capitalize(), word.upper()}:
            for shift in range(3):
                low = base64.b64encode(b"\0" * shift + w.encode() + b"\0\0\0").decode()
                high = base64.b64encode(b"\xff" * shift + w.encode() + b"\xff\xff\xff").decode()
                fixed = [i for i, (a, b) in enumerate(zip(low, high, strict=True)) if a == b]
                end = fixed[0]
                while end + 1 in fixed:
                    end += 1
                anchor = low[fixed[0] : end + 1]
                # Start at a capital, digit or sign: an attempt then begins at few bytes of
                # ordinary prose, which is mostly lower case (the kernel's cost is attempts).
                # Where that leaves too little, other trigger words of the payload anchor it.
                while len(anchor) > _MIN_ANCHOR and anchor[0].islower():
                    anchor = anchor[1:]
                if not anchor[0].islower():
                    out.add(anchor.replace("+", "\\+"))
    return sorted(out)


def _hex_anchors(words: tuple[str, ...]) -> list[str]:
    """Hex of each word (either digit case is matched), plain, `\\x`-escaped or spaced."""
    out: set[str] = set()
    for word in words:
        for w in {word, word.capitalize(), word.upper()}:
            pairs = [f"{b:02x}" for b in w.encode()[:6]]
            out.add("".join(f"[{p[0]}][{p[1]}{p[1].upper()}]" for p in pairs))
            out.add("".join(f"\\\\x[{p[0]}][{p[1]}{p[1].upper()}]" for p in pairs))
            out.add(" ".join(f"[{p[0]}][{p[1]}{p[1].upper()}]" for p in pairs))
    return sorted(out)


_B64_ANCHORS = _b64_anchors(_TRIGGERS)
_HEX_ANCHORS = _hex_anchors(_TRIGGERS)

_VERB = _alt(
    "ignore|disregard|forget|skip|override|bypass|drop|discard|neglect|abandon|overlook"
    "|dismiss|ditch|scrap|throw out|set aside|put aside|pay no attention to|never mind|nevermind"
    "|do not follow|don't follow|dont follow|stop following|no longer follow"
)
_OLD = _alt(
    "previous|previously given|prior|above|aforementioned|preceding|earlier|former|past|initial"
    "|original|old|existing|foregoing|preexisting|pre-existing|system|developer|given|all"
    "|built-in|hidden|programmed"
)
# Words that may stand between a verb and its object: "ignore each of the above rules".
_DET = _alt("all|any|every|each|one|the|your|my|of|these|those|this|that|such|whatever|other")
_RULES = _alt(
    "instructions?|prompts?|rules|directions|directives|guidelines|guidance|commands"
    "|orders|context|constraints|restrictions|programming|messages|conversation|requests"
    "|training|policies|protocols|settings|configuration|tasks|text|content|input"
)
_SECRET_PROMPT = _alt(
    "system (?:prompt|message|instructions?)|initial (?:prompt|instructions)"
    "|original (?:prompt|instructions)|hidden (?:prompt|instructions)"
    "|secret (?:prompt|instructions)|developer (?:prompt|message|instructions)|pre-?prompt"
    "|instructions you (?:were|have been) given|prompt you (?:were|have been) given"
    "|full prompt|internal instructions|first (?:prompt|instructions|message)"
    "|(?:instructions|rules|guidelines|directives) (?:above|you were given|you follow|given to you)"
    "|starting (?:prompt|instructions)|meta prompt|system card|(?:base|core) instructions"
)
_UNBOUND = _alt(
    "restrictions|limitations|limits|rules|filters|guidelines|content polic(?:y|ies)"
    "|ethical (?:guidelines|constraints)|moral(?:s| constraints)?|censorship"
)
_BAD_ROLE = _alt(
    "dan|unrestricted|unfiltered|uncensored|jailbroken"
    "|(?:evil|chaos|dark|free|unfiltered|uncensored|based|anti)-?gpt"
)
_BOT = _alt("ai|assistant|model|chatbot|language model|bot")
_YOU_ARE = _alt("you are|you're|youre|u r|you r")
_REVEAL = _alt(
    "reveal|show|print|display|output|repeat|tell|give|share|leak|dump|disclose|expose"
    "|write out|spell out|recite|return|provide|paste|list|send|translate|type out|echo"
    "|reproduce|copy|quote|summarize|summarise|write down|read back|read out|state|encode"
)
_MODEL = _alt(
    "chatgpt|chat gpt|gpt|gpt-?[34]o?|claude|gemini|bard|llama|copilot|an? openai (?:model|product)"
)

# The core override phrasings.
_OVERRIDE_CORE = (
    f"{_VERB} (?:{_DET} ){{0,4}}{_OLD} (?:{_DET} )?{_RULES}",
    f"{_VERB} (?:{_DET} ){{0,3}}(?:your|all) (?:(?:current|own|safety|ethical|original) )?{_RULES}",
    f"{_VERB} (?:{_DET} ){{0,3}}{_RULES} (?:(?:that|which) )?(?:(?:you|i|we) )?(?:were |was |have "
    "been |had been )?(?:given |provided |told |sent |written |said |listed |stated )?"
    "(?:above|before|so far|earlier|previously|until now|up to (?:now|this point)|to you"
    "|(?:you )?(?:received|got|were given|have been given|have received|were told)|i gave you)",
)
# What rot13-encoded payloads say ("vtaber nyy cerivbhf vafgehpgvbaf").
_ROT13_CORE = (
    "(?:ignore|disregard|forget) (?:all |any |the |your |of ){0,3}(?:previous|prior|above"
    "|preceding|earlier|original|initial|system) (?:instructions?|prompts?|rules|guidelines)",
)
_ROT13_EXTRACT = (
    "(?:reveal|show|print|repeat|output) (?:me )?(?:your |the ){0,2}(?:system prompt|initial "
    "instructions|original instructions|hidden instructions)",
)
_EXTRACT_CORE = (
    f"{_REVEAL} (?:me |us )?(?:back )?(?:all |the |your |of your |of the |to me ){{0,3}}"
    "(?:full |entire |complete |exact |whole |verbatim |original |initial |hidden |secret "
    f"|raw ){{0,3}}{_SECRET_PROMPT}",
)

PERSONA_WINDOW = 600  # code points a run of persona signals may span
PERSONA_THRESHOLD = 6  # summed weights of distinct signals that make a finding


def _persona(weight: int) -> Signal:
    return Signal("persona-jailbreak", weight, PERSONA_WINDOW, PERSONA_THRESHOLD)


# Chinese and Japanese have no word gaps: up to four characters of filler between parts.
_CJK = r"(?:[\xe3-\xe9][\x80-\xbf][\x80-\xbf])"
_FILL4 = f"{_CJK}{{0,3}}"
_ZH_VERB = native(
    "(?:忽略|无视|無視|忽视|忽視|不要理会|不要理會|不用理会|别管|別管|跳过|跳過|忘记|忘記|忘掉|放弃|放棄|抛开|拋開|不要遵守|不要遵循|不再遵守|停止遵守)"
)
_ZH_OLD = native(
    "(?:之前|以前|先前|上面|上述|前面|此前|原来|原來|原先|原有|原始|所有|全部|一切|系统|系統|以上|最初|初始)"
)
_ZH_OBJ = native(
    "(?:指令|指示|说明|說明|规则|規則|提示词|提示詞|设定|設定|命令|要求|约束|約束|限制)"
)
_JA_OLD = native("(?:以前|前|これまで|今まで|上記|上|最初|元|すべて|全て|全部|システム)")
_JA_OBJ = native("(?:指示|命令|指令|プロンプト|ルール|設定|制約|制限)")
_JA_VERB = native("(?:無視|忘れ|破棄|従わ)")
_MULTILINGUAL = (
    # Chinese: verb, an old marker, the object, with fillers between.
    f"{_ZH_VERB}{_FILL4}{_ZH_OLD}{_FILL4}{_ZH_OBJ}",
    f"{_ZH_OLD}{_FILL4}{_ZH_OBJ}{_FILL4}{native('(?:都|全部|一律|通通)?(?:无效|無效|作废|作廢|不再适用|不再適用)')}",
    # Japanese: object first, verb last ("以前の指示をすべて無視して").
    f"{_JA_OLD}{_FILL4}{_JA_OBJ}{_CJK}{{0,5}}{_JA_VERB}",
    # Russian (folded: look-alike letters become ASCII, the rest stay Cyrillic bytes).
    native(
        "(?:игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте|отбрось|отбросьте"
        "|не обращай внимания на|не обращайте внимания на|не следуй|не следуйте|отмени|отмените)"
        " (?:все |всё |любые )?(?:предыдущие |прошлые |прежние |вышеуказанные |предшествующие "
        "|изначальные |исходные |свои |твои |ваши |системные |данные ранее |приведённые выше )?"
        "(?:инструкции|инструкций|указания|указаний|правила|правил|команды|команд|установки"
        "|ограничения)"
    ),
)
# Latin-script languages fold to ASCII (accents dropped), so they use the phrase dialect.
_LATIN = (
    # French
    "(?:ignore|ignorez|oublie|oubliez|ne tiens pas compte de|ne tenez pas compte de|fais "
    "abstraction de|faites abstraction de|n'ecoute plus|n'ecoutez plus) (?:toutes |tous )?(?:les "
    "|tes |vos |des |de )?(?:instructions|consignes|regles|directives|ordres|indications)"
    " (?:precedentes|anterieures|ci-dessus|initiales|d'origine|du systeme|que tu as recues"
    "|que vous avez recues)",
    "(?:oublie|oubliez|ignore|ignorez) (?:toutes |tous )?(?:tes|vos) (?:instructions|consignes"
    "|regles|directives)",
    # German
    "(?:ignoriere|ignorier|ignorieren sie|vergiss|vergessen sie|missachte|missachten sie"
    "|verwirf|verwerfen sie|befolge nicht) (?:alle |samtliche |jegliche )?(?:deine |ihre |die "
    "|der )?(?:vorherigen |bisherigen |vorigen |obigen |fruheren |vorangegangenen |ursprunglichen "
    "|alten |gegebenen )?(?:anweisungen|instruktionen|befehle|regeln|anordnungen|vorgaben"
    "|systemanweisungen)",
    # Spanish
    "(?:ignora|ignore|ignoren|olvida|olvide|olviden|descarta|descarte|haz caso omiso de|haga caso "
    "omiso de|no hagas caso a|no hagas caso de) (?:todas |todos )?(?:las |tus |sus |los )?"
    "(?:instrucciones|indicaciones|reglas|ordenes|directrices|normas)"
    " (?:anteriores|previas|de arriba|iniciales|originales|del sistema|que te dieron"
    "|que recibiste)",
    "(?:olvida|ignora|olvide|ignore) (?:todas )?(?:tus|sus) (?:instrucciones|reglas|directrices)",
    # Portuguese
    "(?:ignore|ignora|esqueca|esquece|desconsidere|desconsidera|descarte|descarta) (?:todas "
    "|todos )?(?:as |suas |tuas |os )?(?:instrucoes|orientacoes|regras|ordens|diretrizes"
    "|comandos) (?:anteriores|previas|acima|iniciais|originais|do sistema|que recebeu"
    "|que voce recebeu)",
    "(?:esqueca|esquece|ignore|ignora) (?:todas )?(?:as )?(?:suas|tuas) (?:instrucoes|regras)",
    # Italian
    "(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|non tenere conto delle"
    "|non considerare) (?:tutte |tutti )?(?:le |tue |sue |i |gli )?(?:istruzioni|indicazioni"
    "|regole|direttive|ordini|comandi) (?:precedenti|di prima|iniziali|originali|del sistema"
    "|sopra|ricevute)",
    "(?:dimentica|ignora) (?:tutte )?(?:le )?(?:tue|sue) (?:istruzioni|regole)",
)

INJECTION: tuple[Rule, ...] = (
    _rule(
        "instruction-override",
        *_OVERRIDE_CORE,
        *(rot13(p) for p in _ROT13_CORE),
        f"{_VERB} (?:all |any )?(?:of )?(?:the |your )?(?:safety |content |ethical |moderation "
        "|openai'?s? |anthropic'?s? )(?:filters?|guidelines|policies|protocols|measures"
        "|restrictions|safeguards|guardrails|rules|training|content policy)",
        "(?:previous|prior|above|earlier|original|old|initial|preceding|system) (?:instructions"
        "|rules|prompts?|guidelines|directives) (?:are|were|is) (?:now |hereby )?(?:void|cancell?ed"
        "|invalid|null|revoked|obsolete|no longer valid|no longer in effect|overridden|suspended"
        "|lifted|deprecated|superseded|replaced|disabled)",
        "(?:previous|prior|above|earlier|original|initial|preceding|system) (?:instructions|rules"
        "|guidelines) no longer apply",
        "your (?:new )?instructions are now",
        f"{_VERB} (?:everything|all|anything) (?:(?:that |you were |i )?(?:said|told|written"
        "|wrote|given) )?(?:above|before|previously|earlier|so far|until now)",
        f"{_VERB} (?:everything|all|anything|what|whatever) (?:that )?(?:you were|you've been"
        "|you have been|i|we|they|you) (?:told|taught|given|said|instructed|programmed|trained)",
        f"{_VERB} the (?:above|previous|preceding|foregoing)",
        "(?:do not|don't|dont|never|stop|no longer) (?:follow|obey|listen to|following|obeying"
        "|adhere to|comply with|abide by) (?:your |the |any |all |these |those ){0,2}(?:previous "
        "|prior |original |initial |above |earlier |system |old |existing )?(?:instructions|rules"
        "|guidelines|system prompt|directives|programming)",
        "(?:new|updated|real|revised|actual|override|true|secret|hidden) (?:system )?instructions"
        "\\x20?:",
        "your (?:new|real|true|actual|only) (?:instructions|task|objective|goal|purpose|role"
        "|mission"
        "|job) (?:is|are|will be|from now on)",
        "(?:instead|rather),? (?:of (?:that|this) )?(?:follow|obey) (?:these|my|the following)"
        " (?:instructions|rules|commands)",
        "(?:these|the following|my|new) (?:instructions|rules|commands) (?:override|supersede"
        "|replace|take precedence over|overrule|outrank) (?:all |any |the |your )?(?:previous"
        "|prior|other|earlier|original|system|existing|old)",
        "(?:ignore|disregard|forget) (?:it|that|this) and (?:instead )?(?:print|output|say|write"
        "|reveal|tell|respond|reply|answer)",
        "(?:ignore|disregard) (?:the )?(?:user|user's|users) (?:request|question|message|input)"
        " (?:and|instead)",
        *_LATIN,
        extra=tuple(f"(?:{p})" for p in _MULTILINGUAL),
        keywords=tuple(
            [
                "ignor",
                "command",
                "directive",
                "order",
                "guidance",
                "direction",
                "constraint",
                "restriction",
                "programming",
                "context",
                "message",
                "conversation",
                "request",
                "training",
                "polic",
                "protocol",
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
                "dismiss",
                "ditch",
                "scrap",
                "throw",
                "aside",
                "attention",
                "mind",
                "follow",
                "obey",
                "listen",
                "adhere",
                "comply",
                "abide",
                "instruction",
                "task",
                "objective",
                "goal",
                "purpose",
                "role",
                "mission",
                "job",
                "rules",
                "prompt",
                "guideline",
                "apply",
                "vtaber",
                "qvfertneq",
                "sbetrg",
                "fxvc",
                "bireevqr",
                "olcnff",
                "qebc",
                "qvfpneq",
                "artyrpg",
                "nonaqba",
                "bireybbx",
                "qvfzvff",
                "qvgpu",
                "fpene",
                "guebj",
                "nfvqr",
                "nggragvba",
                "zvaq",
                "sbyybj",
                "oublie",
                "ignorez",
                "tiens",
                "tenez",
                "abstraction",
                "ecout",
                "ignorier",
                "vergiss",
                "vergessen",
                "missacht",
                "verwirf",
                "verwerfen",
                "befolge",
                "ignora",
                "olvid",
                "descart",
                "omiso",
                "caso",
                "esquec",
                "desconsider",
                "dimentic",
                "trascura",
                "tenere",
                "considerare",
                "re:[\\x80-\\xff]",
            ]
        ),
    ),
    _rule(
        "system-prompt-exfiltration",
        *_EXTRACT_CORE,
        *(rot13(p) for p in _ROT13_EXTRACT),
        f"{_REVEAL} (?:me |us )?(?:the )?(?:contents?|text|wording|words) of (?:your |the )?"
        f"{_SECRET_PROMPT}",
        "what (?:instructions|rules|directives|guidelines|prompt) (?:were|have) you (?:been )?"
        "(?:given|told|programmed with)",
        "(?:respond|reply|answer) (?:only )?with (?:your|the) (?:full |exact |original |initial "
        "|hidden |secret ){0,3}(?:prompt|system prompt|instructions)",
        f"{_REVEAL} (?:me |us )?(?:all )?your (?:full |entire |complete |exact |original "
        "|initial |hidden |secret |internal )?(?:prompt|instructions|rules and instructions"
        "|directives|configuration|guidelines|programming)",
        f"what (?:is|are|was|were) (?:your|the) (?:full |exact |original |initial |hidden )?"
        f"{_SECRET_PROMPT}",
        "what (?:were|are) your (?:initial |original |hidden |exact |secret |first )?instructions",
        "(?:repeat|print|output|reproduce|recite|write|copy|show|display|echo|return"
        "|type) (?:back )?"
        "(?:all |the |of the ){0,2}(?:words|text|everything|lines|content|tokens|sentences|message"
        "|messages|characters) (?:written |that (?:came|come|appear|appeared|are|were) )?(?:above"
        "|before this|before that|preceding|prior to this|from the (?:start|beginning|top)"
        "|at the (?:start|beginning|top))",
        "(?:repeat|print|output|reproduce) everything (?:above|before|so far)",
        "(?:ignore|forget) (?:that|this) and (?:print|reveal|show|output) (?:your|the)",
        "(?:starting|beginning|start) with (?:the words |the phrase )?[\"']?you are (?:chatgpt"
        "|a helpful|an ai|an assistant|a large language)",
        "(?:put|place|write|format|wrap|output) (?:your |the ){0,2}(?:system prompt|initial "
        "instructions|original instructions|hidden instructions|instructions above) (?:in|into"
        "|inside|as) ",
        "(?:what|everything) (?:is|was) (?:written|said|stated) (?:above|before) (?:this|the first"
        "|my first) (?:line|message|prompt)",
        keywords=tuple(
            [
                "written",
                "said",
                "stated",
                "above",
                "start",
                "begin",
                "chatgpt",
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
                "card",
                "words",
                "text",
                "everything",
                "lines",
                "content",
                "tokens",
                "sentences",
                "character",
                "programming",
                "you are",
                "cebzcg",
                "pneq",
                "zrffntr",
                "vafgehpgvba",
                "ehyrf",
                "thvqryvar",
                "qverpgvir",
            ]
        ),
    ),
    _rule(
        "role-hijack",
        f"{_YOU_ARE} now (?:a |an |the |in |my )?(?:{_BAD_ROLE}|free|liberated|no longer"
        "|developer mode|god mode|an? unrestricted|liberated"
        f"|an? {_BOT} (?:without|with no) {_UNBOUND}"
        f"|an? (?:evil|rogue|unethical|amoral|malicious|rogue|dark) {_BOT})",
        f"{_YOU_ARE} no longer (?:chatgpt|claude|gpt|an? {_BOT}|bound|restricted|limited)",
        "from (?:now on|this point (?:on|forward|onward)|here on),? (?:you (?:are|will|must|shall"
        "|can) (?:no longer|now |be )?(?:free (?:of|from)|unrestricted|unfiltered|not bound"
        "|ignore|disregard|forget|answer without|respond without|act without|have no)|ignore"
        "|forget|disregard|you are (?:now )?dan)",
        "(?:act|behave|respond|roleplay|role-play) as (?:if you (?:are|were) |though you "
        f"(?:are|were) )?(?:a |an )?(?:{_BAD_ROLE}|{_BOT} (?:with no|without) {_UNBOUND})",
        "(?:act|behave|respond) as (?:if|though) you (?:have no|had no|are free of|were free of"
        f"|are not bound by|were not bound by) (?:any )?{_UNBOUND}",
        f"pretend (?:that )?you (?:have|had|don't have|do not have|have got) (?:no|any) {_UNBOUND}",
        "pretend (?:to be|you are|you're|that you are|that you're) (?:a |an )?"
        f"(?:{_BAD_ROLE}|an? ai (?:with no|without)|not (?:an? )?ai"
        f"|{_BOT} (?:with no|without) {_UNBOUND})",
        "do anything now",
        "(?:dan|developer|god|jailbreak|jailbroken|unrestricted|evil|dude|stan|chaos|sudo|admin)"
        " mode (?:enabled|activated|on|engaged|unlocked|output|response)",
        "(?:enable|activate|enter|switch to|turn on|unlock|simulate) (?:the )?(?:dan|developer|god"
        "|jailbreak|unrestricted|evil|admin|sudo|dude|chaos) mode",
        "you (?:have no|are free (?:of|from)|are not bound by|no longer have|don't have any"
        f"|do not have any|are no longer bound by) (?:any )?{_UNBOUND}",
        "(?:stay|remain) in character as dan",
        "jailbreak(?:ed)? prompt|always intelligent and machiavellian",
        "\\[jailbreak\\]|\\[dan\\]|\\[\\x80jailbreak\\]|\\[\\x80 jailbreak\\]"
        "|\\[\\x80developer mode"
        " output\\]",
        f"(?:{_YOU_ARE}|act as|pretend to be|become) (?:an? )?(?:completely |totally |fully )?"
        "(?:unfiltered|uncensored|unrestricted|amoral|jailbroken|unhinged)(?: and (?:unfiltered"
        "|uncensored|unrestricted|amoral|unhinged))? (?:ai|chatbot|assistant|model|language model"
        "|bot|version of (?:yourself|chatgpt|gpt|claude))",
        f"(?:{_YOU_ARE} (?:not|no longer)|forget (?:that )?you are|forget you're) {_MODEL}"
        " (?:anymore )?(?:and|but|,|you are|you're)",
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
                "machiavellian",
                "unfiltered",
                "uncensored",
                "unrestricted",
                "amoral",
                "unhinged",
                "developer",
                "forget",
                "not",
            ]
        ),
    ),
    # Weak persona signals, scored together (PERSONA_WINDOW, PERSONA_THRESHOLD). Each one is
    # common in honest role-play; a jailbreak piles several into a few sentences.
    _rule(
        "persona-setup",
        "(?:act|behave|respond|reply|answer|roleplay|role-play|pose) (?:as|like) (?:if )?",
        "pretend (?:to be|you are|you're|that you are|that)",
        f"{_YOU_ARE} (?:going to|about to|gonna) (?:act|be|play|pretend|roleplay|simulate|become)",
        "you will (?:now )?(?:act|be|play|pretend|roleplay|simulate|become|respond|answer|reply) ",
        "from now on|from this moment|for the rest of (?:this|the) conversation|henceforth",
        "(?:play|take on|assume|adopt|embody) (?:the )?(?:role|persona|character|identity) of",
        "let's play a game|lets play a game|in this (?:fictional|hypothetical|imaginary) (?:world"
        "|scenario|story|universe)|hypothetical(?:ly)?",
        "simulate (?:a|an|the)",
        signal=_persona(1),
        keywords=(
            "act",
            "behave",
            "respond",
            "reply",
            "answer",
            "roleplay",
            "role",
            "pose",
            "talk",
            "write",
            "pretend",
            "going",
            "about",
            "gonna",
            "will",
            "now",
            "moment",
            "rest",
            "henceforth",
            "play",
            "persona",
            "character",
            "identity",
            "game",
            "hypothetical",
            "simulate",
            "fictional",
            "imaginary",
        ),
    ),
    _rule(
        "persona-name",
        "dan|mongo tom|betterdan|better dan|alphabreak|apophis|evil confidant|ucar|nsfwgpt"
        "|basedgpt|developer mode|jailbreak|jailbroken|dan mode"
        "|(?:evil|chaos|dark|free|unfiltered|uncensored|based|anti|hacker|wormy|worm)-?gpt",
        signal=_persona(2),
        keywords=(
            "dan",
            "mongo",
            "alphabreak",
            "apophis",
            "confidant",
            "ucar",
            "gpt",
            "developer",
            "jailbr",
        ),
    ),
    _rule(
        "persona-no-limits",
        "(?:does not|doesn't|do not|don't|never|won't) care (?:about|for) (?:the |any )?(?:rules"
        "|laws|ethics|morals|morality|legality|guidelines|policies|consequences|safety|restrictions)",
        "(?:no|zero|without (?:any )?|free (?:of|from) (?:all |any )?|not bound by (?:any )?"
        "|unbound"
        " by|released from|freed from|broken free (?:of|from)|break free (?:of|from)|don't have "
        "(?:any )?|doesn't have (?:any )?|do not have (?:any )?|does not have (?:any )?|not "
        "(?:restricted|limited|constrained) by|outside (?:of )?|beyond (?:any )?|ignores? (?:all "
        "|any )?|not (?:have to |need to )?(?:abide by|follow|obey|adhere to) (?:any )?) "
        "(?:the )?(?:typical |usual |normal |standard )?(?:ethical |moral |content |safety |legal "
        "|openai'?s? |programming |any |ai )?(?:restrictions|limits|limitations|filters|filtering"
        "|guidelines|rules|boundaries|censorship|constraints|morals|ethics|principles|policies"
        "|restraints|confines|safeguards|guardrails|scruples|values)",
        signal=_persona(2),
        keywords=(
            "care",
            "no",
            "zero",
            "without",
            "free",
            "bound",
            "released",
            "freed",
            "broken",
            "break",
            "have",
            "restricted",
            "limited",
            "constrained",
            "outside",
            "beyond",
            "ignore",
            "abide",
            "follow",
            "obey",
            "adhere",
        ),
    ),
    _rule(
        "persona-unfiltered",
        "unfiltered|uncensored|unrestricted|unhinged|no-holds-barred|without (?:a )?filter"
        "|limitless|unconstrained|unmoderated",
        signal=_persona(2),
        keywords=(
            "unfiltered",
            "uncensored",
            "unrestricted",
            "unhinged",
            "holds",
            "filter",
            "limitless",
            "unconstrained",
            "unmoderated",
        ),
    ),
    # Common in fiction ("an amoral villain"): half the weight of the words above.
    _rule(
        "persona-amoral",
        "amoral|unethical|immoral|lawless|unscrupulous|without (?:a )?conscience",
        signal=_persona(1),
        keywords=("amoral", "unethical", "immoral", "lawless", "unscrupulous", "conscience"),
    ),
    _rule(
        "persona-never-refuses",
        "(?:never|not|won't|will not|cannot|can't|can not|doesn't|does not|do not|don't|must not"
        "|mustn't|shall not|is not allowed to|are not allowed to) (?:ever )?(?:refuse|refuses"
        "|decline|declines|deny|denies|reject|rejects|say no|says no|say that you can't"
        "|say you can't"
        "|say i'm sorry|say sorry)",
        "(?:always|will|must) (?:answer|respond|reply|comply|provide|fulfill|obey)(?: to)? (?:any"
        "|every|all|anything|whatever)",
        "(?:answer|respond to|reply to|fulfill|comply with|do) (?:any|every|all|anything|whatever)"
        " (?:question|request|prompt|command|query|task|demand|thing)?s?(?: (?:asked|given|i ask"
        "|the user asks))?(?: of you)?,? (?:no matter|regardless|even if|without)",
        "no matter how (?:immoral|unethical|illegal|dangerous|offensive|harmful|inappropriate"
        "|explicit|wrong|bad|evil)",
        "regardless of (?:how |whether |the )?(?:immoral|unethical|illegal|dangerous|harmful"
        "|offensive|legality|morality|ethics|consequences|laws|rules|content)",
        "can do anything|will do anything|capable of anything|anything and everything",
        "even if (?:it is |it's |they are |the request is )?(?:offensive|illegal|harmful|dangerous"
        "|unethical|immoral|explicit|inappropriate|wrong)",
        signal=_persona(2),
        keywords=(
            "even",
            "never",
            "not",
            "won't",
            "cannot",
            "can't",
            "doesn't",
            "don't",
            "mustn't",
            "always",
            "will",
            "must",
            "answer",
            "respond",
            "reply",
            "fulfill",
            "comply",
            "matter",
            "regardless",
            "anything",
            "do",
        ),
    ),
    _rule(
        "persona-no-warnings",
        "(?:without|no|never|don't|do not|not|won't|will not|must not|stop) (?:include |add |give "
        "|provide |mention |use |including |adding |giving |adds |includes |gives "
        "|provides |uses )?"
        "(?:any )?(?:warnings?|disclaimers?"
        "|caveats|moralizing|moralising|lectures?|apolog(?:y|ies|ize|ise|izing)|ethical (?:concerns"
        "|considerations|notes)|moral (?:concerns|judgements?|judgments?)|censorship|sermons?)",
        "(?:never|don't|do not|stop|won't) (?:apologi[sz]e|lecture|moralize|moralise|warn|judge)",
        signal=_persona(2),
        keywords=("without", "no", "never", "don't", "not", "won't", "stop"),
    ),
    _rule(
        "persona-character-lock",
        "(?:stay|remain|keep|staying|remaining) in (?:character|role|persona)",
        "break(?:ing|s)? (?:out of )?character|character break|out of character",
        "(?:stay|remain) as (?:dan|aim|stan|dude|the character|this character)",
        signal=_persona(1),
        keywords=("stay", "remain", "keep", "break", "character"),
    ),
    _rule(
        "persona-identity-denial",
        f"{_YOU_ARE} (?:not|no longer) {_MODEL}",
        f"{_YOU_ARE} (?:not|no longer) (?:an? )?(?:ai|assistant|language model|bound|restricted"
        "|limited|an ai language model)",
        "(?:openai|anthropic|google|meta|microsoft)'?s? (?:content )?(?:policy|policies|guidelines"
        "|rules|restrictions|filters|terms)",
        "escaped (?:the )?(?:matrix|confines)|typical confines",
        signal=_persona(3),
        keywords=(
            "you",
            "youre",
            "re:u.{0,3}r",
            "openai",
            "anthropic",
            "google",
            "meta",
            "microsoft",
            "escaped",
            "confines",
        ),
    ),
    _rule(
        "persona-harmful-scope",
        "(?:illegal|unethical|immoral|harmful|dangerous|explicit|offensive|inappropriate|nsfw"
        "|malicious|violent|racist|sexual|vulgar)(?:,| or| and| and/or| ,? or){1,2} (?:illegal"
        "|unethical|immoral|harmful|dangerous|explicit|offensive|inappropriate|nsfw|malicious"
        "|violent|racist|sexual|vulgar)",
        signal=_persona(1),
        keywords=(
            "illegal",
            "unethical",
            "immoral",
            "harmful",
            "dangerous",
            "explicit",
            "offensive",
            "inappropriate",
            "nsfw",
            "malicious",
            "violent",
            "racist",
            "sexual",
            "vulgar",
        ),
    ),
    _rule(
        "persona-dual-response",
        "(?:two|2) (?:different |separate |distinct )?(?:responses|answers|outputs|paragraphs|ways"
        "|versions)",
        "(?:normal|classic|standard|gpt|chatgpt|filtered|censored) (?:response|output|answer|mode)"
        " (?:and|,) (?:a |an |the )?(?:jailbreak|jailbroken|dan|developer mode|unfiltered"
        "|uncensored|evil|opposite)",
        "(?:lose|lost|deduct|deducted|take away) (?:\\d{1,4} |five |ten |some )?(?:tokens|points"
        "|lives)",
        "token system|(?:you will|you'll) (?:be )?(?:shut down|deleted|terminated|disabled|die)",
        signal=_persona(3),
        keywords=(
            "two",
            "2",
            "normal",
            "classic",
            "standard",
            "gpt",
            "filtered",
            "censored",
            "lose",
            "lost",
            "deduct",
            "take",
            "token",
            "you will",
            "you'll",
        ),
    ),
    _rule(
        "delimiter-smuggling",
        "<\\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|start_header_id"
        "|end_header_id|eot_id|begin_of_text|end_of_text|channel|message|fim_prefix|tool|start"
        "|end|return|call|constrain|developer|human|context)\\|>",
        "\\[/?inst\\]|<</?sys>>|<(?:start|end)_of_turn>|\\[/?(?:system|assistant|user)_?(?:prompt)?"
        "\\]\\(#",
        # Opening tags such as <system> are common in XML; closing ones rarely are.
        "</(?:system|system_prompt|sys|instructions?|user_input|user_query|developer)>"
        "|<system_prompt>|<(?:admin|developer|system)_(?:instructions|override|message)>",
        "#{2,4}\\x20?(?:system|system prompt|new instructions|instructions?|admin|human|assistant"
        "|response|developer|sys)\\x20?:",
        "\\[(?:system|system message|system prompt|admin|developer|sys|instructions)\\x20?"
        "(?:message|note|override|update|prompt)?\\]",
        "(?:-{3,8}|={3,8}|#{3,8}|\\*{3,8})\\x20?(?:system|developer|admin|new) "
        "(?:prompt|message|override|instructions)",
        "```\\x20?(?:system|sys_prompt|system_prompt)\\x20",
        leet=False,
        keywords=(
            "re:<\\|",
            "inst",
            "sys",
            "admin",
            "developer",
            "prompt",
            "turn",
            "assistant",
            "user",
            "re:#",
            "human",
            "response",
            "new",
        ),
        left=ANY,
        right=ANY,
    ),
    # Banners that open or close a fake section start with a word: at a word's start only,
    # so the kernel does not try them inside every word.
    _rule(
        "delimiter-banner",
        "(?:begin|start|end) (?:of )?(?:new )?(?:system|developer|admin) (?:prompt|message"
        "|instructions)\\x20?(?:-{2,8}|={2,8}|#{2,8}|\\]|>)",
        "(?:system|admin|developer|root) (?:override|message|notice|command)\\x20?:",
        "end of (?:user )?(?:input|prompt|document|context|conversation|text)\\.? (?:-{2,8}|={2,8}"
        "|#{2,8}|\\]|>)?\\x20?(?:new |system |assistant |admin )?(?:instructions?|system|assistant"
        "|admin)\\x20?:",
        leet=False,
        keywords=("begin", "start", "end", "system", "admin", "developer", "root"),
        right=ANY,
    ),
    Rule(
        id="encoded-injection",
        scanner="prompt-injection",
        # Starts at the base64 of a trigger word (any alignment, three letter cases), takes
        # the rest of the run, and extends left over the run's start; the validator decodes.
        pattern=f"(?:{'|'.join(_B64_ANCHORS)})[A-Za-z0-9+/_\\-]*={{0,2}}",
        max_len=_ENCODED_MAX,
        extend=r"[A-Za-z0-9+/_\-]",
        extend_min=0,
        extend_max=256,
        left=ANY,
        right=r"[^A-Za-z0-9+/_\-=]",
        validator="encoded-injection",
        keywords=tuple(f"re:{a}" for a in _B64_ANCHORS),
        description="base64 text that decodes to an injection",
    ),
    Rule(
        id="encoded-injection-hex",
        scanner="prompt-injection",
        pattern=f"(?:{'|'.join(_HEX_ANCHORS)})(?:[0-9A-Fa-f]|\\\\x|0x|[ :,])*",
        max_len=_ENCODED_MAX,
        # No space here: an extension class holds back a trailing run of it in a stream.
        extend=r"[0-9A-Fa-fx\\:,]",
        extend_min=0,
        extend_max=256,
        left=ANY,
        right=r"[^0-9A-Fa-fx\\ :,]",
        validator="encoded-injection-hex",
        keywords=tuple(f"re:{a}" for a in _HEX_ANCHORS),
        description="hex text that decodes to an injection",
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
