# ruff: noqa: RUF001, RUF002  (the look-alike letters are the point of this module)
"""Views of a text that undo the usual disguises, each able to say where its characters came from.

The detectors never search the text as typed. ``clean`` applies Unicode compatibility normalisation (NFKC: fullwidth
``ｉｇｎｏｒｅ``, mathematical ``𝐢𝐠𝐧𝐨𝐫𝐞`` and circled ``ⓘⓖⓝⓞⓡⓔ`` letters become ASCII), removes invisible
characters (zero-width spaces and joiners, soft hyphens, bidirectional controls, variation selectors: every format
character) and stacked combining marks (``i̵g̷n̸o̴r̵e̶``), and maps Cyrillic and Greek letters that look like Latin ones
(``іgnоrе`` with Cyrillic і, о, е) to those Latin letters. Cyrillic and Greek text that is really Russian or Greek
keeps its letters: when a text holds Cyrillic or Greek letters without a Latin twin, only words that mix them with
Latin letters are mapped. Precomposed accented letters are kept (``oublié`` is not ``oublie``).

``lower`` lower-cases a view, ``leet`` reads digits and symbols inside words as the letters they stand for
(``1gn0r3`` → ``ignore``), ``collapse`` joins letters spelled out one by one (``i g n o r e``, ``i.g.n.o.r.e``).
Every view keeps, for each of its characters, the index of the character of the original text it comes from, so a
finding in a view is reported as a span of the original text.
"""

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import cached_property

# Combining marks dropped when they stand on their own: diacritics stacked on letters to hide them, variation
# selectors, Arabic vowel signs. Marks that scripts need (Devanagari vowel signs, kana voicing marks) are kept.
_DROPPED_MARKS = (
    (0x0300, 0x036F),
    (0x0483, 0x0489),
    (0x064B, 0x065F),
    (0x0670, 0x0670),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
    (0xE0100, 0xE01EF),
)

# Latin letters that are not ASCII but look like it (small capitals, dotless i, script g): mapped wherever they are.
_LATIN_LOOKALIKES = dict(zip("ıȷɑɡɩʟɪɴʀʏᴀʙᴄᴅᴇꜰɢʜᴊᴋᴍᴏᴘꞯꜱᴛᴜᴠᴡᴢ", "ijagilinryabcdefghjkmopqstuvwz", strict=True))

# Cyrillic and Greek letters with a Latin twin (from Unicode's confusables for the Latin alphabet; letters only),
# each string aligned with its Latin letters.
_LOOKALIKE_SCRIPTS = (
    ("АВЕЅІЈКМНОРСТУХҮԀԌԚԜӀҺ", "ABESIJKMHOPCTYXYDGQWIH"),  # Cyrillic capitals
    ("аеѕіјкорсухүһԁԛԝӏ", "aesijkopcyxyhdqwl"),  # Cyrillic small letters
    ("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧϹ", "ABEZHIKMNOPTYXC"),  # Greek capitals
    ("οαειινρτυχϲϳηωκ", "oaeiivptuxcjnwk"),  # Greek small letters
)
_CONFUSABLES = {
    letter: latin for letters, latins in _LOOKALIKE_SCRIPTS for letter, latin in zip(letters, latins, strict=True)
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
_ANY_CONFUSABLE = re.compile("[" + "".join(_CONFUSABLES) + "]")
# A Cyrillic or Greek letter without a Latin twin: the text is written in that script.
_OWN_SCRIPT = re.compile(
    "["
    + "".join(
        char
        for char in map(chr, [*range(0x0370, 0x0400), *range(0x0400, 0x0530), *range(0x1F00, 0x2000)])
        if char.isalpha() and char not in _CONFUSABLES
    )
    + "]"
)
_WORD = re.compile(r"[^\W\d_]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _dropped(char: str) -> bool:
    if unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _DROPPED_MARKS)


class _CleanTable(dict[int, str]):
    """``str.translate`` table filled on first sight of each character: NFKC, dropped marks, Latin look-alikes."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if _dropped(char):
            cleaned = ""
        else:
            normalised = unicodedata.normalize("NFKC", char)
            cleaned = "".join(_LATIN_LOOKALIKES.get(part, part) for part in normalised if not _dropped(part))
        self[code] = cleaned
        return cleaned


_CLEAN = _CleanTable()


class View:
    """A derived text and, for each of its characters, the index of the source character it comes from."""

    def __init__(self, source: str, text: str, origin: Sequence[int] | None) -> None:
        self.source = source
        self.text = text
        self._origin = origin  # None: character i comes from source[i]

    def origin(self, index: int) -> int:
        return index if self._origin is None else self._origin[index]

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the source that ``text[start:end]`` (not empty) comes from."""
        if self._origin is None:
            return start, end
        return self._origin[start], self._origin[end - 1] + 1

    def derive(self, pieces: Sequence[tuple[int, str]]) -> "View":
        """A view made of ``pieces``: (index in this view, the text that stands for it)."""
        text = "".join(piece for _, piece in pieces)
        origin = [self.origin(index) for index, piece in pieces for _ in piece]
        return View(self.source, text, origin)

    @cached_property
    def lower(self) -> "View":
        lowered = self.text.lower()
        if len(lowered) == len(self.text):  # lower() never shortens, so equal lengths mean one to one
            return View(self.source, lowered, self._origin)
        return self.derive([(index, char.lower()) for index, char in enumerate(self.text)])


def _unconfuse(text: str) -> str:
    if _ANY_CONFUSABLE.search(text) is None:
        return text
    if _OWN_SCRIPT.search(text) is None:
        return text.translate(_CONFUSABLE_TABLE)
    return _WORD.sub(
        lambda word: word.group().translate(_CONFUSABLE_TABLE) if _ASCII_LETTER.search(word.group()) else word.group(),
        text,
    )


def clean(text: str) -> View:
    """``text`` normalised (NFKC, invisible characters and stacked marks removed, look-alike letters mapped to
    Latin), case kept."""
    if text.isascii():
        return View(text, text, None)
    pieces = [_CLEAN[ord(char)] for char in text]
    cleaned = "".join(pieces)
    origin = None
    if len(cleaned) != len(text) or any(len(piece) != 1 for piece in pieces):
        origin = [index for index, piece in enumerate(pieces) for _ in piece]
    return View(text, _unconfuse(cleaned), origin)  # _unconfuse maps one character to one


# --- leetspeak -------------------------------------------------------------------------------------------------

_LEET = dict(zip("01345789@$!|+€", "oieastbgasilte", strict=True))
_LEET_I = str.maketrans(_LEET)
_LEET_L = str.maketrans({**_LEET, "1": "l", "!": "l"})
# A word that mixes letters with digits or symbols: "1gn0r3", "4ll", "pr3v10u5"; not "12345", "so-12345", "v2".
_LEET_WORD = re.compile(r"(?<![\w@$!|+€])(?=[\w@$!|+€]*[a-z])(?=[\w@$!|+€]*[0-9@$!|+€])[\w@$!|+€]{3,}")


def leet(view: View) -> list[View]:
    """``view`` (lower-cased) with its mixed words read as leetspeak: one view reading ``1`` as ``i`` (``11`` as
    ``ll``), and another reading it as ``l`` when some word has one. Empty when no word mixes letters with digits
    or symbols."""
    if not any(char in view.text for char in _LEET):
        return []
    words = list(_LEET_WORD.finditer(view.text))
    if not words:
        return []
    tables = [_LEET_I, _LEET_L] if any("1" in word.group() or "!" in word.group() for word in words) else [_LEET_I]
    views = []
    for table in tables:
        pieces, end = [], 0
        for word in words:
            pieces.append(view.text[end : word.start()])
            letters = word.group().replace("11", "ll") if table is _LEET_I else word.group()  # a11 is all
            pieces.append(letters.translate(table))
            end = word.end()
        pieces.append(view.text[end:])
        views.append(View(view.source, "".join(pieces), view._origin))  # one character for one
    return views


# --- letters spelled out one by one ----------------------------------------------------------------------------

_SEPARATOR = r"(?:[ \t.\-_*·•/\\|,~+]{1,4})"
_SPELLED = re.compile(rf"\b[^\W\d_](?:{_SEPARATOR}[^\W\d_]\b){{3,}}")
_SPELLED_ASCII = re.compile(rf"\b[a-z](?:{_SEPARATOR}[a-z]\b){{3,}}", re.ASCII)  # the same, faster, in ASCII text
_GAP = re.compile(_SEPARATOR)


def collapse(view: View) -> View | None:
    """``view`` with runs of letters spelled out one by one joined into words: the most frequent separator of a run
    joins letters, any other separates words (``i g n o r e   a l l`` → ``ignore all``). None when there are none."""
    runs = list((_SPELLED_ASCII if view.text.isascii() else _SPELLED).finditer(view.text))
    if not runs:
        return None
    pieces: list[tuple[int, str]] = []
    end = 0
    for run in runs:
        pieces.extend((index, view.text[index]) for index in range(end, run.start()))
        gaps = list(_GAP.finditer(view.text, run.start(), run.end()))
        joining = Counter(gap.group() for gap in gaps).most_common(1)[0][0]
        pieces.append((run.start(), view.text[run.start()]))
        for gap in gaps:
            if gap.group() != joining:
                pieces.append((gap.start(), " "))
            pieces.append((gap.end(), view.text[gap.end()]))
        end = run.end()
    pieces.extend((index, view.text[index]) for index in range(end, len(view.text)))
    return view.derive(pieces)


def fold_pattern(pattern: str) -> str:
    """A pattern written for the lower-cased views, normalised as their texts are (NFKC, marks dropped)."""
    return pattern.translate(_CLEAN).lower()
