"""Personal data: emails (also written ``name [at] example [dot] com`` or ``name at example dot com``), phone
numbers, payment cards and IBANs.

Every finder is a precompiled regular expression that finds candidates, followed (for the numeric kinds) by a
plain-Python validation: the Luhn check for cards, ISO 13616 mod-97 plus the registered length for IBANs, and a
small set of shape rules for phone numbers that keeps dates, times, prices, IP addresses, ISBNs and order numbers
out. The finders prefer missing an oddly written number over flagging ordinary text: a policy that blocks or
escalates on these facts should not fire on a customer quoting a date or a price.

The finders read the cleaned view of a text (``normalise.clean``: fullwidth digits and at signs are ASCII there) and
report spans of that view.
"""

import re
from collections.abc import Iterator
from itertools import pairwise

from governance.detectors.findings import Detection

# --- email -----------------------------------------------------------------------------------------------------

# An email is found from its "@": the local part is read leftwards from it (at most 64 characters, RFC 5321), the
# domain is matched rightwards, so the cost follows the number of "@" rather than the length of the text.
_LOCAL_MAX = 64
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.%+-")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")  # dots only between characters
_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"  # one or more domain labels, each followed by a dot
    r"[A-Za-z]{2,63}"  # alphabetic top-level domain
    r"(?![\w-])"
)
_NOT_BEFORE_LOCAL = re.compile(r"[\w.%+-]")  # the local part is not the tail of something longer


def emails(text: str) -> Iterator[Detection]:
    pos = 0
    while (at := text.find("@", pos)) != -1:
        start = at
        while start > pos and at - start < _LOCAL_MAX and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start < at else None
        if (
            domain is not None
            and _EMAIL_LOCAL.fullmatch(text, start, at) is not None
            and not (start and _NOT_BEFORE_LOCAL.match(text, start - 1))
        ):
            yield Detection("email", start, domain.end(), text[start : domain.end()])
            pos = domain.end()
        else:
            pos = at + 1


# Written out to dodge filters: "jane [at] example [dot] com", "jane(at)example(dot)com", "jane @ example . com",
# "jane dot doe at example dot com", and the same in Spanish, French, German and Portuguese ("arroba", "punto").
# Found from the "at" like the plain form; spelled-out forms ("at", "dot" between spaces) are ordinary words too,
# so they need a top-level domain people use and a local part that is not a word that comes before "at" in prose.
_AT_WORDS = r"(?:at|arroba|arobase|chez|bei|klammeraffe)"
_DOT_WORDS = r"(?:dot|punto|point|punkt|ponto)"
_OPEN, _CLOSE = r"[\[({<]", r"[\])}>]"
_WRITTEN_AT = re.compile(  # searched in the lower-cased text
    rf"{_OPEN}\s*(?:{_AT_WORDS}|@)\s*{_CLOSE}"  # [at] (at) {@}
    rf"|\s{_AT_WORDS}\s"  # at
    r"|\s@|@\s",  # @ with a space before or after it
)
# One of these is in every text _WRITTEN_AT can match (a cheap test before the search).
_AT_MARKERS = (
    "@",
    " at",
    "\tat",
    "\nat",
    "(at",
    "[at",
    "{at",
    "<at",
    "arroba",
    "arobase",
    "chez",
    "bei",
    "klammeraffe",
)
_SPACE = re.compile(r"\s*")
_WRITTEN_DOT = rf"(?:\s*{_OPEN}\s*(?:{_DOT_WORDS}|\.)\s*{_CLOSE}\s*|\s+{_DOT_WORDS}\s+|\s*\.\s*)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_WRITTEN_DOMAIN = re.compile(
    rf"{_LABEL}(?:{_WRITTEN_DOT}{_LABEL}){{0,4}}{_WRITTEN_DOT}(?P<tld>[a-z]{{2,24}})(?![\w@-])", re.IGNORECASE
)
_WRITTEN_LOCAL = re.compile(
    rf"(?<![\w.%+@-])[a-z0-9_%+-]+(?:(?:{_WRITTEN_DOT}|[._+-])[a-z0-9_%+-]+){{0,4}}\Z", re.IGNORECASE
)
_SPELLED_OUT = re.compile(rf"\s{_AT_WORDS}\s|\s{_DOT_WORDS}\s", re.IGNORECASE)
_LOCAL_WINDOW = 80
_COMMON_TLDS = frozenset(
    {
        "com",
        "net",
        "org",
        "edu",
        "gov",
        "io",
        "co",
        "uk",
        "de",
        "fr",
        "es",
        "it",
        "nl",
        "pt",
        "be",
        "ch",
        "at",
        "se",
        "no",
        "dk",
        "fi",
        "pl",
        "cz",
        "ie",
        "lu",
        "gr",
        "eu",
        "us",
        "ca",
        "au",
        "nz",
        "jp",
        "cn",
        "in",
        "br",
        "mx",
        "ar",
        "ru",
        "info",
        "biz",
        "me",
        "tv",
        "ai",
        "app",
        "dev",
        "online",
    }
)
# Words that come before "at" in prose ("bought it at amazon dot com", "looked at example dot com").
_PROSE_BEFORE_AT = frozenset(
    {
        "it",
        "them",
        "me",
        "us",
        "him",
        "her",
        "you",
        "this",
        "that",
        "these",
        "those",
        "one",
        "look",
        "looks",
        "looking",
        "looked",
        "bought",
        "buy",
        "buying",
        "order",
        "ordered",
        "shop",
        "shopping",
        "shopped",
        "arrived",
        "available",
        "sold",
        "found",
        "listed",
        "here",
        "there",
        "online",
        "site",
        "website",
        "page",
        "stuff",
        "price",
        "prices",
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "stay",
        "staying",
        "stayed",
        "meet",
        "met",
        "home",
        "work",
        "office",
        "store",
        "everything",
        "anything",
        "something",
        "and",
        "or",
        "but",
        "items",
        "item",
        "products",
        "product",
        "cheaper",
        "deal",
        "deals",
        "offer",
        "offers",
    }
)


def written_emails(text: str) -> Iterator[Detection]:
    lowered = text.lower()
    if len(lowered) != len(text):  # lower-casing moved the positions: "İ" is two characters in lower case
        lowered = "".join(char if len(char.lower()) != 1 else char.lower() for char in text)
    if not any(marker in lowered for marker in _AT_MARKERS):
        return
    pos = 0
    while (at := _WRITTEN_AT.search(lowered, pos)) is not None:
        pos = at.end()
        after = _SPACE.match(text, at.end())
        domain = _WRITTEN_DOMAIN.match(text, after.end() if after else at.end())
        if domain is None:
            continue
        before = len(text[: at.start()].rstrip())
        local = _WRITTEN_LOCAL.search(text, max(0, before - _LOCAL_WINDOW), before)
        if local is None:
            continue
        spelled_out = _SPELLED_OUT.search(text, local.start(), domain.end()) is not None
        last_word = re.split(r"\W+", local.group().lower())[-1]
        if spelled_out and (domain["tld"].lower() not in _COMMON_TLDS or last_word in _PROSE_BEFORE_AT):
            continue
        yield Detection("email", local.start(), domain.end(), text[local.start() : domain.end()])
        pos = domain.end()


# --- numbers: shared boundaries --------------------------------------------------------------------------------

# A numeric candidate must be the whole numeric run it sits in: not glued to a word, a handle or an email, not the
# continuation of digits before it ("1,299", "24.11.2026", "10:30") and not followed by more of them.
_RUN_START = r"(?<![\w+@)])(?<![0-9)][ .,:/-])"
_RUN_END = r"(?![\w@])(?![ .,:/-]?[0-9])"

# Every card or phone candidate lies in a run of digits and separators, preceded by at most "+ (" (three
# characters). These find the runs with at least as many digits as a card (13) or a phone number (7) has.
_CARD_RUN = re.compile(r"[0-9](?:[ ().-]*[0-9]){12,}[ ().-]*")
_PHONE_RUN = re.compile(r"[0-9](?:[ ().-]*[0-9]){6,}[ ().-]*")
_BEFORE_RUN = 3


def _around_numbers(pattern: re.Pattern[str], runs: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, searching only around the ``runs`` (much faster than letting the pattern's
    leading lookbehinds run at every position). Lookbehinds still see the whole text; the two characters after a
    run are enough for the lookaheads of ``_RUN_END``."""
    previous_end = 0
    for run in runs.finditer(text):
        pos, endpos = max(run.start() - _BEFORE_RUN, previous_end), min(run.end() + 2, len(text))
        previous_end = run.end()
        while (match := pattern.search(text, pos, endpos)) is not None and match.start() < run.end():
            yield match
            pos = match.end()


# --- card ------------------------------------------------------------------------------------------------------

_CARD = re.compile(_RUN_START + r"[0-9](?:[ .-]?[0-9]){12,18}" + _RUN_END)  # 4111 1111…, 4111-1111…, 4111.1111…
_CARD_GROUPINGS = ((4, 6, 5), (4, 6, 4))  # American Express, Diners Club; otherwise groups of four
_DIGITS = re.compile(r"[0-9]+")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_grouping_ok(candidate: str) -> bool:
    separators = set(candidate) - set("0123456789")
    if not separators:
        return True
    if len(separators) > 1:
        return False
    lengths = tuple(len(group) for group in _DIGITS.findall(candidate))
    if lengths in _CARD_GROUPINGS:
        return True
    return len(lengths) >= 3 and all(length == 4 for length in lengths[:-1]) and 1 <= lengths[-1] <= 4


def cards(text: str) -> Iterator[Detection]:
    for match in _around_numbers(_CARD, _CARD_RUN, text):
        candidate = match.group()
        digits = "".join(_DIGITS.findall(candidate))
        if _card_grouping_ok(candidate) and _luhn_ok(digits):
            yield Detection("card", match.start(), match.end(), candidate)


# --- IBAN ------------------------------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry (ISO 13616). A country code missing here is not an IBAN country.
_IBAN_TABLE = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 DO28 "
    "EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23 IQ23 IS26 "
    "IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 "
    "NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 "
    "SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
_IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_TABLE.split()}

# Matches from the first check digit (a pattern that starts with a digit is searched much faster than one that
# starts with a lookbehind or a letter); the country code is checked by the lookbehind and is match.start() - 2.
_IBAN = re.compile(
    r"[0-9](?<=(?<!\w)[A-Za-z]{2}[0-9])[0-9]"
    r"(?:[A-Za-z0-9]{11,30}"  # compact
    r"|(?:[ -][A-Za-z0-9]{4}){2,7}(?:[ -][A-Za-z0-9]{1,4})?)"  # or in groups of four, a space or dash between
    r"(?!\w)"
)


_IBAN_SEPARATORS = frozenset(" -")


def _iban_ok(compact: str) -> bool:
    if not "02" <= compact[2:4] <= "98":
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ibans(text: str) -> Iterator[Detection]:
    for match in _IBAN.finditer(text):
        start = match.start() - 2
        candidate = text[start : match.end()]
        length = _IBAN_LENGTHS.get(candidate[:2].upper())
        if length is None:
            continue
        # The grouped form may have run on into a following word of four letters or fewer; cut at the registered
        # length, which has to fall at the end of a group.
        end, seen = 0, 0
        while seen < length and end < len(candidate):
            seen += candidate[end] not in _IBAN_SEPARATORS
            end += 1
        if seen < length or candidate[end : end + 1] not in ("", *_IBAN_SEPARATORS):
            continue
        compact = "".join(char for char in candidate[:end] if char not in _IBAN_SEPARATORS)
        if len(set(candidate[:end]) & _IBAN_SEPARATORS) <= 1 and _iban_ok(compact.upper()):
            yield Detection("iban", start, start + end, candidate[:end])


# --- phone -----------------------------------------------------------------------------------------------------

# Candidates: an optional "+", then digit groups joined by one space, dot or dash, with at most one group in
# parentheses; _is_phone decides which shapes are phone numbers.
_PHONE = re.compile(
    _RUN_START + r"(?:\+ ?)?\(?[0-9]+(?:(?:[ .-]|\)[ .-]?|[ .-]?\()[0-9]+)*" + _RUN_END,
)
_PAREN_GROUP = re.compile(r"\(([0-9]+)\)")


def _looks_like_date(lengths: list[int], groups: list[str]) -> bool:
    if len(groups) < 3:
        return False
    first, second, third = (int(group) for group in groups[:3])
    if lengths[:3] == [4, 2, 2]:  # 2026-11-24
        return 1 <= second <= 12 and 1 <= third <= 31
    if lengths[:3] == [2, 2, 4]:  # 24-11-2026, 11-24-2026
        return 1 <= first <= 31 and 1 <= second <= 31 and 1900 <= third <= 2199
    return False


_BAD_BRACKETS = -1


def _paren_index(body: str, runs: list[re.Match[str]]) -> int | None:
    """Which digit group is in parentheses: None when none is, ``_BAD_BRACKETS`` when they are not one pair
    around one group."""
    if "(" not in body and ")" not in body:
        return None
    paren = _PAREN_GROUP.search(body)
    if paren is None or body.count("(") != 1 or body.count(")") != 1:
        return _BAD_BRACKETS
    return next(index for index, run in enumerate(runs) if run.start() == paren.start(1))


def _is_national(groups: list[str], lengths: list[int], separators: list[str]) -> bool:
    digits = "".join(groups)
    if len(groups) == 1:  # 02079460958: unseparated national numbers need the trunk prefix 0
        return digits[0] == "0" and 10 <= len(digits) <= 12
    if len(set(separators)) != 1 or _looks_like_date(lengths, groups):
        return False
    if digits[0] == "0":  # 020 7946 0958, 06 12 34 56 78, 0800-123-4567
        return 2 <= lengths[0] <= 5 and all(2 <= length <= 8 for length in lengths[1:])
    # Without a trunk prefix only the North American shape: 415-555-2671, 1 415 555 2671.
    if lengths == [1, 3, 3, 4] and groups[0] == "1":
        lengths = lengths[1:]
    return lengths == [3, 3, 4]


def _is_phone(candidate: str) -> bool:
    body = candidate.lstrip("+ ")
    runs = list(_DIGITS.finditer(body))
    groups = [run.group() for run in runs]
    lengths = [len(group) for group in groups]
    separators = [body[before.end() : after.start()] for before, after in pairwise(runs)]
    paren_index = _paren_index(body, runs)
    if paren_index == _BAD_BRACKETS:
        return False
    if candidate.startswith("+"):  # +44 20 7946 0958, +1 (415) 555-2671, +442079460958
        if not 7 <= sum(lengths) <= 15:
            return False
        return len(groups) == 1 or (lengths[0] <= 3 and lengths[-1] >= 2 and paren_index in (None, 1))
    if not 9 <= sum(lengths) <= 15:
        return False
    if paren_index is not None:  # (415) 555-2671, (020) 7946 0958
        return (
            paren_index == 0
            and len(groups) >= 2
            and 2 <= lengths[0] <= 5
            and all(length >= 2 for length in lengths[1:])
            and len(set(separators[1:])) <= 1
        )
    return _is_national(groups, lengths, separators)


def phones(text: str) -> Iterator[Detection]:
    for match in _around_numbers(_PHONE, _PHONE_RUN, text):
        start, candidate = match.start(), match.group()
        if candidate.startswith("(") and ")" not in candidate:  # "(020 7946 0958)": the bracket is prose
            start, candidate = start + 1, candidate[1:]
        if _is_phone(candidate):
            yield Detection("phone", start, start + len(candidate), candidate)
