"""Rules for what is not prose: code, Markdown, links, URLs, e-mail addresses, emoji."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

import emoji

from gateway.core.textnorm.en.common import Context, piece
from gateway.core.textnorm.en.data import CODE_LANGUAGES, TLD_SPELLED, TLD_WORDS
from gateway.core.textnorm.model import Replacement
from gateway.core.textnorm.numbers import digits

Group = Sequence[Replacement]

# -- code ----------------------------------------------------------------------------------------

_FENCE: Final = re.compile(
    r"(?:^|(?<=\s))(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*"
    r"(?P<body>(?:\n.*?)??)(?:\n[ \t]*(?P=fence)[ \t]*(?=\n|$)|\Z)",
    re.DOTALL | re.MULTILINE,
)


def code_blocks(text: str, ctx: Context) -> Iterator[Group]:
    """Fenced code blocks: skipped, or announced ("Python code block"). An opening fence with
    no closing one runs to the end of the segment; a fence with nothing after it (the closing
    fence of a block from an earlier segment) is dropped."""
    for match in _FENCE.finditer(text):
        body = match.group("body").strip()
        lang = match.group("lang").lower()
        if ctx.code_blocks == "skip" or (not body and not lang):
            spoken = ""
        else:
            name = CODE_LANGUAGES.get(lang, lang)
            spoken = f"{name} code block" if name else "code block"
        yield (Replacement(match.start(), match.end(), spoken, "code"),)


_INLINE_CODE: Final = re.compile(
    r"(?<!`)(?P<tick>`+)(?!`)(?P<code>[^\n`](?:[^\n]*?[^\n`])?)(?P=tick)(?!`)"
)
_CODE_TOKEN: Final = re.compile(r"\S+")
_CODE_PART: Final = re.compile(r"[A-Za-z]+|[0-9]+(?:\.[0-9]+)?|\s+|.", re.DOTALL)
_CAMEL: Final = re.compile(r"(?<=[a-z])(?=[A-Z])")
_CODE_SYMBOLS: Final = {
    ".": "dot",
    "/": "slash",
    "\\": "backslash",
    "=": "equals",
    "+": "plus",
    "*": "star",
    "#": "hash",
    "@": "at",
    "$": "dollar",
    "%": "percent",
    "&": "and",
    "|": "pipe",
    "<": "less than",
    ">": "greater than",
    "~": "tilde",
    "^": "caret",
    "!": "not",
    "-": "dash",
    ":": "colon",
}
_CODE_SILENT: Final = frozenset("()[]{};,'\"`_")
_CODE_OPERATORS: Final = {
    "==": "equals equals",
    "!=": "not equals",
    "<=": "less than or equal to",
    ">=": "greater than or equal to",
    "->": "arrow",
    "=>": "arrow",
    "::": "colon colon",
    "&&": "and",
    "||": "or",
    "**": "star star",
    "--": "dash dash",
    "//": "slash slash",
}
_OPERATOR: Final = re.compile("|".join(re.escape(op) for op in _CODE_OPERATORS))


def read_code(token: str, ctx: Context) -> str:
    """One whitespace-free token of code as words: ``snake_case`` -> "snake case",
    ``getUser()`` -> "get User", ``a.b`` -> "a dot b", ``python3`` -> "python three"."""
    words: list[str] = []
    position = 0
    while position < len(token):
        operator = _OPERATOR.match(token, position)
        if operator:
            words.append(_CODE_OPERATORS[operator.group()])
            position = operator.end()
            continue
        match = _CODE_PART.match(token, position)
        assert match is not None  # "." matches any character
        part = match.group()
        position = match.end()
        if part.isalpha():
            words.extend(_CAMEL.split(part))
        elif part[0].isdigit():
            words.append(ctx.number(part))
        elif part in _CODE_SILENT:
            continue
        else:
            words.append(_CODE_SYMBOLS.get(part, part))
    return " ".join(words)


def inline_code(text: str, ctx: Context) -> Iterator[Group]:
    """`code`: backticks dropped, each token of the code read with :func:`read_code`."""
    for match in _INLINE_CODE.finditer(text):
        group = [piece(match, "tick", "", "code")]
        base = match.start("code")
        for token in _CODE_TOKEN.finditer(match.group("code")):
            spoken = read_code(token.group(), ctx)
            group.append(Replacement(base + token.start(), base + token.end(), spoken, "code"))
        close = match.end("code")
        group.append(Replacement(close, match.end(), "", "code"))
        yield group


# -- links, URLs, e-mail -------------------------------------------------------------------------

_LINK: Final = re.compile(
    r"(?P<open>!?\[)(?P<label>[^\]\n]*)(?P<close>\]\((?P<target>[^)\s]*)(?:\s+\"[^\"\n]*\")?\))"
)
_AUTOLINK: Final = re.compile(r"(?P<open><)(?=(?:https?://|mailto:)[^>\s]+>)[^>\s]+(?P<close>>)")


def links(text: str, ctx: Context) -> Iterator[Group]:
    """``[text](url)`` reads "text"; ``![alt](src)`` reads "image alt"; ``<url>`` loses its
    brackets."""
    for match in _LINK.finditer(text):
        image = match.group("open").startswith("!")
        label = match.group("label").strip()
        if image:  # "!" reads "image", "[" is dropped (and so separates "image" from the alt)
            start = match.start("open")
            yield (
                Replacement(start, start + 1, "image" if label else "", "markup"),
                Replacement(start + 1, match.end("open"), "", "markup"),
                Replacement(match.start("close"), match.end("close"), "", "markup"),
            )
        elif not label:  # "[](url)": read the address
            yield (
                Replacement(
                    match.start(), match.end(), url_words(match.group("target"), ctx), "url"
                ),
            )
        else:
            yield (
                Replacement(match.start("open"), match.end("open"), "", "markup"),
                Replacement(match.start("close"), match.end("close"), "", "markup"),
            )
    for match in _AUTOLINK.finditer(text):
        yield (piece(match, "open", "", "markup"), piece(match, "close", "", "markup"))


_URL: Final = re.compile(
    r"(?<![\w@/.])(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+"
    r"|(?<![\w@/.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:com|org|net|edu|gov|io|ai|dev|app|co|uk|de|fr|jp|ca|au|us|info|me|tv|ly|gg|xyz)"
    r"(?::[0-9]{2,5})?(?:/[^\s<>\"'`]*)?(?![\w-])"
    r"|(?<![\w@/.-])localhost(?::[0-9]{2,5})?(?:/[^\s<>\"'`]*)?(?![\w-])"
)
_EMAIL: Final = re.compile(
    r"(?<![\w.+-])(?:mailto:)?[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])"
)
_TRAILING_PUNCTUATION: Final = ".,;:!?'\""


def _trim_url(url: str) -> str:
    """Trailing punctuation is the sentence's, as is a closing bracket with no opening one."""
    while url:
        if url[-1] in _TRAILING_PUNCTUATION or (
            url[-1] in ")]}"
            and url.count(url[-1]) > url.count({")": "(", "]": "[", "}": "{"}[url[-1]])
        ):
            url = url[:-1]
        else:
            break
    return url


def _name_words(name: str, ctx: Context) -> str:
    """A host label or path segment: separators become spaces, short numbers are read as
    numbers and long ones digit by digit."""
    words: list[str] = []
    for part in re.split(r"[-_+~%]+", name):
        if not part:
            continue
        for chunk in re.findall(r"[0-9]+|[^0-9]+", part):
            if chunk.isdigit():
                chunk = ctx.number(chunk) if len(chunk) <= 4 else digits(chunk)
            words.append(chunk)
    return " ".join(words)


def host_words(host: str, ctx: Context) -> str:
    labels = [label for label in host.lower().split(".") if label]
    if labels and labels[0] == "www":
        labels = labels[1:]
    spoken: list[str] = []
    for index, label in enumerate(labels):
        last = index == len(labels) - 1
        if last and (label in TLD_SPELLED or (len(label) <= 3 and label not in TLD_WORDS)):
            spoken.append("-".join(label.upper()))
        else:
            spoken.append(_name_words(label, ctx))
    return " dot ".join(spoken)


def url_words(url: str, ctx: Context) -> str:
    """The short reading: host and the first two path segments; scheme, "www.", the query
    and the fragment are not read ("https://www.example.com/docs/api?x=1" -> "example dot com
    slash docs slash api")."""
    rest = re.sub(r"^(?:[a-z]+:)?//", "", url, flags=re.IGNORECASE)
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    host, _, path = rest.partition("/")
    host, _, port = host.partition(":")
    spoken = host_words(host, ctx)
    if port.isdigit():
        spoken += f" port {ctx.number(port) if len(port) <= 4 else digits(port)}"
    segments = [segment for segment in path.split("/") if segment][:2]
    for segment in segments:
        stem, dot, extension = segment.rpartition(".")
        if dot and stem and extension.isalpha() and len(extension) <= 4:
            spoken += f" slash {_name_words(stem, ctx)} dot {_name_words(extension, ctx)}"
        else:
            spoken += f" slash {_name_words(segment, ctx)}"
    return spoken


def urls(text: str, ctx: Context) -> Iterator[Group]:
    for match in _URL.finditer(text):
        url = _trim_url(match.group())
        host = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE)
        if "." not in host and not host.startswith("localhost"):
            continue
        yield (Replacement(match.start(), match.start() + len(url), url_words(url, ctx), "url"),)


def emails(text: str, ctx: Context) -> Iterator[Group]:
    """ "jane.doe@example.com" -> "jane dot doe at example dot com"."""
    for match in _EMAIL.finditer(text):
        address = match.group()
        address = address.removeprefix("mailto:")
        local, _, host = address.rpartition("@")
        words = re.sub(
            r"[._+-]",
            lambda m: {".": " dot ", "_": " underscore ", "+": " plus ", "-": " dash "}[m[0]],
            local,
        )
        words = re.sub(r"[0-9]+", lambda m: f" {digits(m[0])} ", words)
        spoken = " ".join(f"{words} at {host_words(host, ctx)}".split())
        yield (Replacement(match.start(), match.end(), spoken, "email"),)


# -- emoji ---------------------------------------------------------------------------------------

_SKIN_TONE: Final = re.compile(r"_(?:light|medium-light|medium|medium-dark|dark)_skin_tone")


def emoji_name(symbol: str) -> str:
    """An emoji's English CLDR name as words: "👍🏽" -> "thumbs up"."""
    data = emoji.EMOJI_DATA.get(symbol) or emoji.EMOJI_DATA.get(symbol.replace("\ufe0f", ""))
    name = str(data["en"]) if data else emoji.demojize(symbol)
    name = _SKIN_TONE.sub("", name.strip(":"))
    name = name.replace("_", " ").replace(":", "")
    return " ".join(name.split())


def emojis(text: str, ctx: Context) -> Iterator[Group]:
    """Emoji dropped, or read by name (a keycap's digit is read too)."""
    if text.isascii():  # every emoji has a non-ASCII code point; the scan is the costly part
        return
    for found in emoji.emoji_list(text):
        start, end = int(found["match_start"]), int(found["match_end"])
        if ctx.emoji == "drop":
            spoken = ""
        else:
            spoken = re.sub(r"[0-9]+", lambda m: ctx.number(m[0]), emoji_name(found["emoji"]))
        yield (Replacement(start, end, spoken, "emoji"),)


# -- Markdown ------------------------------------------------------------------------------------

_HEADING: Final = re.compile(r"(?m)^[ \t]{0,3}(#{1,6})[ \t]+(?=\S)")
_CLOSING_HASHES: Final = re.compile(r"(?m)(?<=\S)[ \t]+#+[ \t]*$")
_QUOTE: Final = re.compile(r"(?m)^[ \t]*(?:>[ \t]?)+")
_RULE_LINE: Final = re.compile(r"(?m)^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET: Final = re.compile(r"(?m)^[ \t]*[-*+•][ \t]+(?:\[[ xX]\][ \t]+)?(?=\S)")
_TABLE_SEPARATOR: Final = re.compile(
    r"(?m)^[ \t]*\|?(?:[ \t]*:?-{3,}:?[ \t]*\|)+(?:[ \t]*:?-{3,}:?[ \t]*)?\|?[ \t]*$"
)
_TABLE_ROW: Final = re.compile(r"(?m)^[ \t]*\|.*\|[ \t]*$")
_CELL_BORDER: Final = re.compile(r"[ \t]*(?<!\\)\|[ \t]*")
_EMPHASIS: Final = re.compile(
    r"(?<![\w*\\])\*{1,3}(?=[^\s*])|(?<=[^\s*\\])\*{1,3}(?![\w*])"
    r"|(?<![\w\\])_{1,3}(?=[^\s_])|(?<=[^\s_\\])_{1,3}(?!\w)"
    r"|~~"
)
_HTML_TAG: Final = re.compile(
    r"</?(?:b|i|u|s|em|strong|br|p|span|div|code|pre|sup|sub|small|mark|kbd|del|ins)\b[^>]*>",
    re.IGNORECASE,
)
_FOOTNOTE: Final = re.compile(r"\[\^[^\]\s]+\]")


def markdown(text: str, ctx: Context) -> Iterator[Group]:
    """Marks dropped: headings, quotes, bullets, rules, emphasis, HTML tags, footnote marks;
    table rows read cell by cell with a pause between cells; separator rows dropped."""
    del ctx
    for pattern in (_RULE_LINE, _TABLE_SEPARATOR):
        for match in pattern.finditer(text):
            if match.end() > match.start():
                yield (Replacement(match.start(), match.end(), "", "markup"),)
    for row in _TABLE_ROW.finditer(text):
        line = row.group()
        borders = list(_CELL_BORDER.finditer(line))
        if len(borders) < 2:
            continue
        group: list[Replacement] = []
        for index, border in enumerate(borders):
            first, last = index == 0, index == len(borders) - 1
            start, end = row.start() + border.start(), row.start() + border.end()
            at_line_edge = first and not line[: border.start()].strip()
            at_line_edge = at_line_edge or (last and not line[border.end() :].strip())
            group.append(Replacement(start, end, "" if at_line_edge else ", ", "markup"))
        yield group
    for pattern in (_HEADING, _CLOSING_HASHES, _QUOTE, _BULLET, _HTML_TAG, _FOOTNOTE, _EMPHASIS):
        for match in pattern.finditer(text):
            yield (Replacement(match.start(), match.end(), "", "markup"),)
