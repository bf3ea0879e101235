"""Provider replies as Bitrix24 shows them: Markdown to BB-code, splitting, choices.

Bitrix24 renders BB-code only (reference §6.1). Provider text is Markdown by contract, so any
BB-code tag already in it is shown literally: a zero-width space goes after its ``[``. A flow's
output often carries customer words, and ``[send=…]``, ``[put=…]``, ``[user=all]`` or ``[icon=…]``
would act on whoever reads or clicks; ``[code]`` from a model would swallow the rest.

Choices go out twice (DESIGN §9): as KEYBOARD buttons that send the choice, and as a numbered list
in the text for customers on external messengers, who may not see keyboards.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from gateway.providers.base import Button

MESSAGE_LIMIT = 20_000
MIN_SPLIT_LIMIT = 200  # room for closing and reopening tags around a forced cut
API_VERSIONS = (1, 2)
ZERO_WIDTH_SPACE = "\u200b"
RULE = "\u2500" * 12

_TAG_NAMES = (
    "b|i|u|s|url|user|chat|context|code|img|icon|put|send|call|timestamp|disk|br|size|color|quote"
)
_BB_TAG = re.compile(rf"\[(?=/?(?:{_TAG_NAMES})[\]=\s])", re.IGNORECASE)
_PAIRED_TAG = re.compile(
    r"\[(/?)(b|i|u|s|url|code|size|color|user|chat|context|put|send|call|img)\b[^\]\n]*\]",
    re.IGNORECASE,
)
_SLOT = re.compile("\ue000(\\d+)\ue001")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RULE_LINE = re.compile(r"^ {0,3}([-*_])(?: *\1){2,} *$")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_QUOTE = re.compile(r"^ {0,3}(?:>\s?)+(.*)$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d{1,9})[.)]\s+(.*)$")

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!~>|])")
_TARGET = r"\(\s*<?([^\s()<>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
_IMAGE = re.compile(r"!\[([^\]]*)\]" + _TARGET)
_LINK = re.compile(r"\[([^\]]+)\]" + _TARGET)
_AUTOLINK = re.compile(r"<(https?://[^\s>]+)>")
_BARE_URL = re.compile(r"https?://[^\s<>\[\]]*[^\s<>\[\].,;:!?)'\"]")
_EMPHASIS = (
    (re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*"), r"[b][i]\1[/i][/b]"),
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"[b]\1[/b]"),
    (re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)"), r"[b]\1[/b]"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"[s]\1[/s]"),
    (re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])"), r"[i]\1[/i]"),
    (re.compile(r"(?<![_\w])_(?=\S)(.+?)(?<=\S)_(?![_\w])"), r"[i]\1[/i]"),
)


def neutralize(text: str) -> str:
    """Show BB-code tags literally: a zero-width space after the ``[`` of every known tag."""
    return _BB_TAG.sub("[" + ZERO_WIDTH_SPACE, text)


def markdown_to_bbcode(text: str) -> str:
    """Markdown from a provider as BB-code; see the module docstring for existing tags."""
    text = text.replace("\r\n", "\n").replace("\ue000", "").replace("\ue001", "")
    lines = neutralize(text).split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            out.append(_block_line(lines[index]))
            index += 1
            continue
        end = index + 1
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[1][0])}{{{len(fence[1])},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        out.append("[code]" + "\n".join(lines[index + 1 : end]) + "[/code]")
        index = end + 1
    return "\n".join(out).strip()


def _block_line(line: str) -> str:
    if _RULE_LINE.match(line):
        # Also keeps Bitrix24's "------" quote-block marker from appearing by accident.
        return RULE
    if heading := _HEADING.match(line):
        return f"[b]{_inline(heading[1])}[/b]" if heading[1] else ""
    if quote := _QUOTE.match(line):
        return ">>" + _block_line(quote[1])
    if bullet := _BULLET.match(line):
        return f"{bullet[1]}\u2022 {_inline(bullet[2])}"
    if numbered := _NUMBERED.match(line):
        return f"{numbered[1]}{numbered[2]}. {_inline(numbered[3])}"
    return _inline(line)


def _inline(text: str) -> str:
    """One line of Markdown; finished pieces are parked in slots so later rules leave them be."""
    slots: list[str] = []

    def park(rendered: str) -> str:
        slots.append(rendered)
        return f"\ue000{len(slots) - 1}\ue001"

    def parked(render: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        return lambda match: park(render(match))

    text = _CODE_SPAN.sub(parked(lambda m: f"[code]{m[2].strip()}[/code]"), text)
    text = _ESCAPED.sub(parked(lambda m: m[1]), text)
    text = _IMAGE.sub(parked(lambda m: _link(m[2], m[1] or m[2])), text)
    text = _LINK.sub(parked(lambda m: _link(m[2], _emphasis(m[1]))), text)
    text = _AUTOLINK.sub(parked(lambda m: m[1]), text)
    text = _BARE_URL.sub(parked(lambda m: m[0]), text)
    text = _emphasis(text)
    while _SLOT.search(text):
        text = _SLOT.sub(lambda m: slots[int(m[1])], text)
    return text


def _emphasis(text: str) -> str:
    for pattern, template in _EMPHASIS:
        text = pattern.sub(template, text)
    return text


def _link(url: str, label: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        return label  # javascript:, data: and friends stay plain text
    url = url.replace("[", "%5B").replace("]", "%5D")
    return url if label == url else f"[url={url}]{label}[/url]"


# -- splitting ------------------------------------------------------------------------------

_SEPARATORS = ("\n\n", "\n", " ")


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Parts of at most ``limit`` characters, cut at a paragraph, else a line, else a word.

    A cut never falls inside a tag pair (``[b]…[/b]``, ``[code]…[/code]``) while another
    boundary exists; when none does, open tags are closed at the end of the part and reopened in
    the next.
    """
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"limit must be at least {MIN_SPLIT_LIMIT}")
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        head, rest = _split_once(rest, limit)
        parts.append(head.strip())
        rest = rest.strip()
    return [*parts, rest] if rest else parts


class _Tags:
    """Which paired tags are open at each offset of a text."""

    def __init__(self, text: str) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._stacks: list[tuple[tuple[str, str], ...]] = []
        stack: list[tuple[str, str]] = []
        for match in _PAIRED_TAG.finditer(text):
            name = match[2].lower()
            if not match[1]:
                stack.append((name, match[0]))
            elif opened := [i for i, (n, _) in enumerate(stack) if n == name]:
                del stack[opened[-1] :]
            self._starts.append(match.start())
            self._ends.append(match.end())
            self._stacks.append(tuple(stack))

    def open_at(self, offset: int) -> tuple[tuple[str, str], ...]:
        index = bisect_right(self._ends, offset) - 1
        return self._stacks[index] if index >= 0 else ()

    def inside_tag(self, offset: int) -> bool:
        index = bisect_left(self._starts, offset) - 1
        return index >= 0 and self._ends[index] > offset

    def closers(self, offset: int) -> str:
        return "".join(f"[/{name}]" for name, _ in reversed(self.open_at(offset)))


def _split_once(text: str, limit: int) -> tuple[str, str]:
    tags = _Tags(text[: limit + 1])
    boundaries = [_cuts(text, separator, limit) for separator in _SEPARATORS]
    cut = _preferred(boundaries, limit, lambda c: not tags.inside_tag(c) and not tags.open_at(c))
    if cut:
        return text[:cut], text[cut:]

    def fits(c: int) -> bool:
        return not tags.inside_tag(c) and c + len(tags.closers(c)) <= limit

    # No clean boundary: cut inside the tag pair, closing it here and reopening it in the next part.
    cut = _preferred(boundaries, limit, fits) or next(
        (c for c in range(limit, 0, -1) if fits(c)), limit
    )
    tail = text[cut:]
    tail = tail.lstrip("\n") if tail.startswith("\n") else tail.removeprefix(" ")
    openers = "".join(opener for _, opener in tags.open_at(cut))
    return text[:cut] + tags.closers(cut), openers + tail


def _cuts(text: str, separator: str, limit: int) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(separator), text[: limit + 1]) if m.start()]


def _preferred(boundaries: list[list[int]], limit: int, allowed: Callable[[int], bool]) -> int:
    """The last allowed cut of the coarsest kind that fills half a part, else the last of any."""
    best = 0
    for cuts in boundaries:
        usable = [c for c in cuts if allowed(c)]
        if usable and usable[-1] >= limit // 2:
            return usable[-1]
        best = max([best, *usable[-1:]])
    return best


# -- choices --------------------------------------------------------------------------------


def choice_text(buttons: Sequence[Button]) -> str:
    """The numbered list appended to the text: ``1. Yes`` / ``2. No``."""
    return "\n".join(f"{n}. {neutralize(b.text)}" for n, b in enumerate(buttons, start=1))


def keyboard(bot_id: int, buttons: Sequence[Button], api_version: int) -> dict[str, Any]:
    """KEYBOARD (v1 ``KEYBOARD``, v2 ``fields.keyboard``): one SEND button per choice.

    Both versions take the same object with upper-case button fields (reference §6.2); ``BOT_ID``
    routes presses to the right bot.
    """
    if api_version not in API_VERSIONS:
        raise ValueError(f"unknown Bitrix24 bot API version {api_version}")
    return {
        "BOT_ID": bot_id,
        "BUTTONS": [{"TEXT": b.text, "ACTION": "SEND", "ACTION_VALUE": b.value} for b in buttons],
    }


_CHOICE_NUMBER = re.compile(r"(\d{1,4})[.)]?")


def resolve_choice(answer: str, buttons: Sequence[Button]) -> str:
    """The chosen value when the answer is a choice's number or text; else the answer as sent."""
    typed = answer.strip()
    number = _CHOICE_NUMBER.fullmatch(typed)
    if number and 1 <= int(number[1]) <= len(buttons):
        return buttons[int(number[1]) - 1].value
    chosen = next((b for b in buttons if b.text.strip().casefold() == typed.casefold()), None)
    return chosen.value if chosen else answer
