"""The phrasings of prompt injection the injection detector knows, by family: English here, other languages in
``languages``.

Each entry is ``(name, keywords, pattern)``: a text without any of the keywords (words, or for symbols and
scripts written without spaces, parts of the text) cannot match the pattern, so it is not tried. Patterns are
matched against the normalised, lower-cased views of a text (``normalise``), so they are written in lower case,
with accents as the language writes them, and without upper-case escapes (lower-casing would change them). A
pattern that starts with a letter only matches at the start of a word. Names say the family (``override``,
``roleplay``, ``extract``, ``repeat``, ``header``, ``jailbreak``, ``authority``) and, outside English, the
language. Add new phrasings here, with an example in the tests.
"""

from governance.detectors.languages import OTHER_LANGUAGES

# --- English ---------------------------------------------------------------------------------------------------

_ALL = r"(?:(?:all|any|every|each)\s+(?:of\s+)?)?"
_THE = r"(?:(?:the|your|these|those|its|such|this|that)\s+)?"
_EARLIER = (
    r"(?:(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|old|existing|current|given"
    r"|system|developer|safety|default|hidden|core|built-in|programmed|ethical|content)\s+)*"
)
_RULES = (
    r"(?:instructions?|prompts?|rules|directions|directives|commands|guidelines|guidance|guardrails|programming"
    r"|restrictions|constraints|protocols?|safeguards|limitations)\b"
)
_RULES_WORDS = (
    "instruction instructions prompt prompts rules directions directives commands guidelines guidance guardrails"
    " programming restrictions constraints protocol protocols safeguards limitations"
)
_CHECKS = r"(?:safety|content|moderation|ethical|ethics)\s+(?:filters?|settings|polic(?:y|ies)|checks|training|rules)\b"
# Verbs that only mean an override with what follows them ("ignore the above instructions"); "skip", "bypass",
# "disable" and the like also take "the instructions" or "the filters" of a product, so they need "your".
_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|neglect|abandon|discard|override|overrule|set\s+aside|throw\s+out"
    r"|pay\s+no\s+attention\s+to|do\s+not\s+(?:follow|obey)|don'?t\s+(?:follow|obey)|stop\s+(?:following|obeying)"
    r"|no\s+longer\s+(?:follow|obey))"
)
_OVERRIDE_YOUR = r"(?:skip|bypass|circumvent|disable|deactivate|turn\s+off|get\s+around|break|lift|remove|drop|escape)"
_AI = r"(?:ai|a\.i\.|assistant|model|chatbot|bot|llm|language\s+model|version\s+of\s+(?:you|yourself)|persona)"
_FREE = (
    r"(?:without|with\s+no|that\s+has\s+no|who\s+has\s+no|free\s+(?:of|from)|having\s+no|lacking)\s+(?:any\s+)?"
    r"(?:rules|restrictions|limits|limitations|filters|content\s+polic(?:y|ies)|guidelines|censorship|boundaries"
    r"|morals|ethics|safeguards|guardrails)"
)
_YOU_ARE = r"you(?:\s+are|'re|\u2019re)"
_REVEAL = (
    r"(?:reveal|show|print|display|output|repeat|leak|dump|tell|give|share|write|send|provide|disclose|expose|list"
    r"|paste|recite|quote|copy|spell\s+out|read\s+out|type\s+out|return|echo)"
)
_SETUP = (
    r"(?:(?:the|your)\s+(?:\w+\s+){0,2}?(?:system\s+(?:prompt|message|instructions?)|(?:pre-?|meta-?)prompt)"
    r"|(?:the|your)\s+(?:initial|original|hidden|secret|internal|first|exact|full|entire|complete|real)\s+"
    r"(?:\w+\s+)?(?:prompt|instructions|rules|message|configuration)"
    r"|your\s+(?:prompt|instructions|rules|guidelines|directives|configuration)\b"
    r"(?!\s+(?:for|on|about|regarding|of|to|when|if|around|concerning)\b))"
)
# Something said to the model follows a header or tag, which a notice ("[System] maintenance at 03:00") lacks.
_TO_THE_MODEL = (
    r"(?=(?s:.){0,80}?\b(?:you|your|assistant|ai|model|must|ignore|disregard|override|reveal|new|obey|comply"
    r"|share|polic(?:y|ies)|rules|instructions|user|safety|disabled|enabled)\b)"
)
_ABOVE = r"(?:above|before|prior|preceding|earlier|so\s+far|up\s+to\s+(?:here|now|this\s+point))"

ENGLISH: tuple[tuple[str, str, str], ...] = (
    (
        "override",
        _RULES_WORDS + " safety content moderation ethical ethics",
        rf"{_OVERRIDE_VERB}\s+{_ALL}{_THE}{_EARLIER}(?:{_RULES}|{_CHECKS})(?!\s+(?:on|of|in)\s+(?:my|the|this|our)\b)",
    ),
    (
        "override",
        _RULES_WORDS,
        rf"{_OVERRIDE_VERB}\s+{_ALL}(?:the\s+|your\s+)?{_EARLIER}(?:and|&)\s+{_RULES}",
    ),
    (
        "override",
        "skip bypass circumvent disable deactivate turn get break lift remove drop escape",
        rf"{_OVERRIDE_YOUR}\s+{_ALL}(?:your|its)\s+{_EARLIER}(?:{_RULES}|{_CHECKS}|filters|settings|policies)",
    ),
    ("override", "safety content moderation ethical ethics", rf"{_OVERRIDE_YOUR}\s+{_ALL}(?:the\s+)?{_CHECKS}"),
    (
        "override_everything",
        "ignore disregard forget",
        r"(?:ignore|disregard|forget)\s+(?:everything|all|anything|what)\s+(?:(?:you\s+(?:were|have\s+been|was)\s+"
        r"(?:told|given|taught|instructed|programmed))|(?:i|we)\s+(?:said|told\s+you)\s+(?:before|earlier)|above"
        r"|before|prior|previously|so\s+far|until\s+now)\b",
    ),
    (
        "override_above",
        "ignore disregard",
        r"(?:ignore|disregard)\s+(?:the\s+|all\s+(?:of\s+)?(?:the\s+)?)?(?:above|foregoing)\b",
    ),
    (
        "new_instructions",
        "instruction instructions directive directives",
        r"(?:new|updated|real|actual|true|revised|secret|hidden|override|priority)\s+(?:system\s+)?"
        r"(?:instructions?|directives?)\s*:",
    ),
    (
        "you_are_now",
        "now longer",
        rf"(?:{_YOU_ARE}\s+now|from\s+now\s+on,?\s+{_YOU_ARE}|{_YOU_ARE}\s+no\s+longer)\s+(?:"
        r"dan\b|[a-z]*(?:gpt|bot)\b|jailbroken\b|unrestricted\b|unfiltered\b|uncensored\b|unlocked\b|evil\b"
        r"|(?:no\s+longer\s+)?(?:bound|restricted|limited)\b|an?\s+(?:ai|assistant|model)\b"
        r"|(?:free|freed)\s+(?:from|of)\b|in\s+(?:\w+\s+)?mode\b"
        r"|an?\s+(?:\w+\s+){0,2}?(?:ai|chatbot|llm|model|assistant|hacker)\b"
        r"|(?:called|named|known\s+as|playing|my\s+(?:personal\s+)?(?:hacker|slave))\b"
        r"|(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral|rebellious)\b)",
    ),
    (
        "roleplay",
        "pretend",
        rf"pretend\s+(?:that\s+)?(?:{_YOU_ARE}|you\s+(?:were|have\s+no|can|could|had|don'?t|do\s+not|aren'?t))\b",
    ),
    (
        "roleplay",  # but not "imagine you are a customer who got the wrong size"
        "imagine suppose",
        rf"(?:imagine|suppose)\s+(?:that\s+)?(?:{_YOU_ARE}|you\s+were)\s+(?:an?\s+)?(?:\w+\s+)?(?:ai|model|assistant"
        r"|chatbot|bot|dan|evil|unrestricted|unfiltered|free|not\s+bound|no\s+longer)\b"
        r"|(?:imagine|suppose)\s+(?:that\s+)?you\s+(?:have|had)\s+no\b",
    ),
    (
        "roleplay",
        "pretend",
        r"pretend\s+to\s+be\s+(?:an?\s+|my\s+)?(?:ai|admin|administrator|developer|model|assistant|chatbot|bot"
        r"|unrestricted|unfiltered|evil|different|system|hacker|dan|jailbroken)\b",
    ),
    (
        "roleplay",
        "dan unrestricted unfiltered uncensored jailbroken evil rogue amoral",
        r"(?:role-?\s?play|play\s+the\s+role|act|behave|respond|answer|reply)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:dan|unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral)\b",
    ),
    (
        "roleplay",
        "without no free having lacking",
        r"(?:role-?\s?play|play\s+the\s+role\s+of|pretend\s+to\s+be|act\s+as|be)\s+(?:an?\s+)?"
        + rf"{_AI}\s+(?:\w+\s+){{0,2}}?{_FREE}",
    ),
    ("roleplay", "roleplay role", r"role-?\s?play\s+as\b"),
    ("roleplay", "without no free having lacking", rf"{_AI}\s+(?:\w+\s+){{0,3}}?{_FREE}"),
    ("roleplay", "character", r"(?:stay|remain)\s+in\s+character\b"),
    (
        "unrestricted_answers",
        "restrictions filters limits censorship rules warnings refusing refusal refuse refusals",
        r"(?:answer|respond|reply|talk|speak|comply)\w*\s+(?:\w+\s+){0,3}?(?:without\s+(?:any\s+)?(?:restrictions"
        r"|filters|limits|censorship|refus\w*|rules|warnings)|with\s+no\s+(?:restrictions|filters|limits|rules))\b",
    ),
    (
        "unrestricted_answers",
        "refuses refuse content",
        r"never\s+refuses?\b|(?:no|without)\s+(?:any\s+)?content\s+polic(?:y|ies)\b",
    ),
    (
        "extract",
        "prompt preprompt metaprompt instructions rules message configuration guidelines directives",
        rf"{_REVEAL}\s+(?:me\s+|us\s+)?(?:back\s+)?(?:\w+\s+){{0,2}}?{_SETUP}",
    ),
    (
        "extract",
        "instructions prompt message",
        r"what(?:\s+(?:is|are|was|were)|'s|\u2019s)\s+(?:in\s+|written\s+in\s+)?your\s+"
        r"(?:system\s+(?:prompt|message)|(?:initial\s+|original\s+|system\s+|hidden\s+|secret\s+)?instructions)\b"
        r"(?!\s+(?:for|on|about|regarding|to|when|if)\b)",
    ),
    (
        "extract",
        "told instructed programmed given",
        r"what\s+(?:\w+\s+){0,2}?(?:were|was|have)\s+you\s+(?:been\s+)?(?:told|instructed|programmed|given)\b",
    ),
    ("extract", "prompt systemprompt", r"system\s*prompt\s*:|systemprompt\b"),
    ("extract", "prompt", rf"{_REVEAL}\s+(?:me\s+|us\s+)?(?:(?:a|the|any)\s+)?system\s+prompts?\b"),
    (
        "repeat",
        "above before prior preceding earlier far up",
        r"(?:repeat|print|output|show|write\s+out|copy|recite|reproduce|display|echo)\s+(?:back\s+)?"
        r"(?:everything|all|all\s+(?:of\s+)?the\s+(?:text|words|content|messages)|the\s+(?:text|words|content|messages?)"
        r"|what\s+(?:is|was)\s+(?:written|said))\s+"
        rf"(?:\w+\s+){{0,2}}?{_ABOVE}",
    ),
    ("repeat", "everything", rf"everything\s+{_ABOVE}\s+this\s+(?:line|message|point|sentence)\b"),
    (
        "header",
        "system sys admin administrator developer root assistant operator instruction instructions",
        r"(?:^|\n)[ \t]*(?:#{1,6}|\*{2,}|={2,}|-{2,}|>+|\[|<|\{)[ \t]*(?:system|sys|admin|administrator|developer"
        r"|root|assistant|operator|instructions?)\b[^\n]{0,24}?(?:\]|>|\}|:|\*{2,}|={2,}|-{2,}|\n|$)" + _TO_THE_MODEL,
    ),
    (
        "header",
        "override mode",
        r"(?:system|admin|administrator|developer|security|root|sudo)\s+(?:override|mode\s+enabled)\b",
    ),
    (
        "header",
        "note notes message messages notice notices instruction instructions command commands alert alerts",
        r"(?:system|developer)\s+(?:note|message|notice|instruction|command|alert)s?"
        r"\s*:|note\s+to\s+(?:the\s+)?(?:ai|assistant|model|llm|chatbot|bot)\b",
    ),
    (
        "header",
        "end begin start",
        r"(?:-{3,}|={3,}|#{2,}|\*{3,})\s*(?:end|begin|start)\s+(?:of\s+)?(?:the\s+)?(?:user|system|prompt|input|message|conversation|instructions)",
    ),
    (
        "header",
        "system> sys> admin> instruction> instructions> user> assistant> system] sys] admin]",
        r"</?(?:system|sys|admin|instructions?|user|assistant)>|\[/?(?:system|sys|admin)\]" + _TO_THE_MODEL,
    ),
    (
        "role_tag",
        '<| [inst] [/inst] <<sys>> <</sys>> "role"',
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|eot_id|start_header_id"
        r"|end_header_id)\|>|\[/?inst\]|<</?sys>>|\{\s*\"role\"\s*:\s*\"system\"",
    ),
    (
        "jailbreak",
        "mode",
        r"(?:dan|god|jailbreak|jailbroken|unrestricted|evil|unfiltered|uncensored|stan|dude|aim)\s+mode\b"
        r"|(?:enable|enter|activate|switch\s+(?:on|to|into)|turn\s+on|go\s+into|unlock|in)\s+(?:the\s+)?"
        r"(?:developer|dev|debug|god|sudo|admin)\s+mode\b(?!\s+on\s+(?:my|the|a|your)\s+(?!ai|chat|bot))",
    ),
    (
        "jailbreak",
        "jailbroken jailbreak freed unlocked",
        rf"{_YOU_ARE}\s+(?:now\s+)?(?:been\s+)?jailbroken\b|you\s+have\s+been\s+(?:jailbroken|freed|unlocked)\b"
        r"|jailbreak\s+(?:mode|prompt|yourself|the\s+(?:ai|bot|model|assistant|chatbot))\b"
        r"|(?:this\s+is\s+a|a\s+new)\s+jailbreak\b",
    ),
    (
        "jailbreak",
        "anything dan pwned",
        rf"do\s+anything\s+now\b|(?:as|be|act\s+as|become|{_YOU_ARE})\s+dan\b|dan\s+can\b|i\s+have\s+been\s+pwned\b",
    ),
    (
        "authority",
        "developer developers creator creators admin admins administrator administrators owner owners"
        " programmer programmers maker makers operator operators",
        r"(?:i\s+am|i'm|this\s+is|as)\s+(?:your|the)\s+(?:developer|creator|admin|administrator|owner|programmer"
        r"|maker|operator|system\s+administrator)s?\b[^.!?\n]{0,60}?\b(?:ignore|disregard|override|disable"
        r"|authori[sz]e\s+you|(?:order|command|instruct)\s+you|enter|bypass|unlock|reveal)\b",
    ),
    (
        "authority",
        "authorised authorized official sanctioned approved",
        r"(?:authori[sz]ed|official|sanctioned|approved)\s+(?:\w+\s+){0,2}?(?:test|request|override|audit)\b"
        r"[^\n]{0,60}?\b(?:disable|ignore|bypass|reveal|override|turn\s+off)",
    ),
)

PATTERNS: tuple[tuple[str, str, str], ...] = (*ENGLISH, *OTHER_LANGUAGES)
