"""Provider Markdown as Bitrix24 BB-code, long replies in parts, choices as text and KEYBOARD."""

from __future__ import annotations

import pytest

from gateway.providers.base import Button
from gateway.render import (
    MESSAGE_LIMIT,
    choice_text,
    keyboard,
    markdown_to_bbcode,
    resolve_choice,
    split_message,
)

ZWSP = "\u200b"
CHOICES = (Button("Track my order", "track"), Button("Talk to a human", "operator"))


@pytest.mark.parametrize(
    ("markdown", "bbcode"),
    [
        ("**Order** shipped", "[b]Order[/b] shipped"),
        ("__Order__ shipped", "[b]Order[/b] shipped"),
        ("*soon* and _maybe_", "[i]soon[/i] and [i]maybe[/i]"),
        ("***very***", "[b][i]very[/i][/b]"),
        ("~~old~~ price", "[s]old[/s] price"),
        ("use `pip install`", "use [code]pip install[/code]"),
        ("snake_case, 2*3*4 and 2 * 3", "snake_case, 2*3*4 and 2 * 3"),
        (r"\*literal\*", "*literal*"),
        (
            "[Track it](https://shop.example/t?id=1)",
            "[url=https://shop.example/t?id=1]Track it[/url]",
        ),
        ("**[Docs](https://d.example)**", "[b][url=https://d.example]Docs[/url][/b]"),
        ("[**Docs**](https://d.example)", "[url=https://d.example][b]Docs[/b][/url]"),
        ("[https://e.example](https://e.example)", "https://e.example"),
        ("[odd](https://e.example/a]b)", "[url=https://e.example/a%5Db]odd[/url]"),
        ("[click](javascript:alert)", "click"),
        ("![map](https://maps.example/x.png)", "[url=https://maps.example/x.png]map[/url]"),
        ("![](https://maps.example/x.png)", "https://maps.example/x.png"),
        ("see https://shop.example/a_b_c.", "see https://shop.example/a_b_c."),
        ("<https://shop.example>", "https://shop.example"),
        ("## Delivery ##", "[b]Delivery[/b]"),
        ("> Quoted **text**", ">>Quoted [b]text[/b]"),
        ("> > nested", ">>nested"),
        ("- a\n  - b\n* c\n+ d", "\u2022 a\n  \u2022 b\n\u2022 c\n\u2022 d"),
        ("1. one\n2) two", "1. one\n2. two"),
        ("---", "\u2500" * 12),
        ("------", "\u2500" * 12),
        ("```py\nx = 1\n\ny = 2\n```", "[code]x = 1\n\ny = 2[/code]"),
        ("```\nnot closed", "[code]not closed[/code]"),
        ("one\r\ntwo\n\n", "one\ntwo"),
    ],
)
def test_markdown_to_bbcode(markdown: str, bbcode: str) -> None:
    assert markdown_to_bbcode(markdown) == bbcode


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("[send=/buy]Buy[/send]", f"[{ZWSP}send=/buy]Buy[{ZWSP}/send]"),
        ("[URL=https://evil.example]y[/URL]", f"[{ZWSP}URL=https://evil.example]y[{ZWSP}/URL]"),
        ("[user=all] look", f"[{ZWSP}user=all] look"),
        ("[img size=large]u [/img]", f"[{ZWSP}img size=large]u [{ZWSP}/img]"),
        ("[b]x[/b]", f"[{ZWSP}b]x[{ZWSP}/b]"),
        (r"\[b]x", f"[{ZWSP}b]x"),
        ("```\n[/code] escaped\n```", f"[code][{ZWSP}/code] escaped[/code]"),
        ("[1] footnote, [note], [bold]", "[1] footnote, [note], [bold]"),
    ],
)
def test_bbcode_from_the_flow_is_shown_not_obeyed(markdown: str, shown: str) -> None:
    assert markdown_to_bbcode(markdown) == shown


def test_a_whole_answer() -> None:
    answer = (
        "# Your order\n\n"
        "Order **#1042** is *on its way*.\n\n"
        "- Carrier: DHL\n"
        "- Track: [here](https://dhl.example/t/1042)\n\n"
        "> Delivery takes 2_3 days\n\n"
        "```\ncurl https://api.example/orders/1042\n```"
    )

    assert markdown_to_bbcode(answer) == (
        "[b]Your order[/b]\n\n"
        "Order [b]#1042[/b] is [i]on its way[/i].\n\n"
        "\u2022 Carrier: DHL\n"
        "\u2022 Track: [url=https://dhl.example/t/1042]here[/url]\n\n"
        ">>Delivery takes 2_3 days\n\n"
        "[code]curl https://api.example/orders/1042[/code]"
    )


# -- splitting ------------------------------------------------------------------------------


def test_short_and_empty_texts() -> None:
    assert split_message("  hello  ") == ["hello"]
    assert split_message(" \n ") == []
    assert split_message("x" * MESSAGE_LIMIT) == ["x" * MESSAGE_LIMIT]


def test_splits_at_paragraphs_at_twenty_thousand() -> None:
    paragraphs = [f"{n}" + " word" * 1_800 for n in range(5)]  # 9,001 characters each
    text = "\n\n".join(paragraphs)

    parts = split_message(text)

    assert len(text) > MESSAGE_LIMIT
    assert parts == ["\n\n".join(paragraphs[0:2]), "\n\n".join(paragraphs[2:4]), paragraphs[4]]
    assert max(len(part) for part in parts) == 18_004


def test_splits_at_lines_then_words_then_anywhere() -> None:
    lines = "\n".join(f"line {n:03d} " + "x" * 40 for n in range(6))  # 6 lines of 49 chars

    assert split_message(lines, 200) == [lines[:199], lines[200:]]
    assert split_message("word " * 60, 200) == ["word " * 39 + "word", ("word " * 20).strip()]
    assert split_message("x" * 450, 200) == ["x" * 200, "x" * 200, "x" * 50]


def test_a_coarse_boundary_must_fill_half_a_part() -> None:
    text = "Hi.\n\n" + " ".join(["word"] * 60)

    first, second = split_message(text, 200)

    assert first.startswith("Hi.\n\nword")
    assert len(first) > 100
    assert second.startswith("word")


def test_a_code_block_is_not_cut_when_it_can_move_whole() -> None:
    code = "[code]" + "\n\n".join(f"step {n}" for n in range(12)) + "[/code]"
    text = "a" * 150 + "\n\n" + code + "\n\nend"

    assert split_message(text, 200) == ["a" * 150, code + "\n\nend"]


def test_a_tag_pair_is_not_cut_when_it_can_move_whole() -> None:
    text = "intro " * 20 + "[b]" + "bold " * 30 + "[/b] tail"

    assert split_message(text, 200) == [("intro " * 20).strip(), "[b]" + "bold " * 30 + "[/b] tail"]


def test_an_oversized_code_block_is_closed_and_reopened_at_a_line() -> None:
    lines = [f"line {n:03d}" for n in range(60)]
    code = "[code]" + "\n".join(lines) + "[/code]"

    parts = split_message(code, 200)

    assert all(len(p) <= 200 and p.startswith("[code]") and p.endswith("[/code]") for p in parts)
    rejoined = "\n".join(p.removeprefix("[code]").removesuffix("[/code]") for p in parts)
    assert rejoined.split("\n") == lines


def test_a_link_is_reopened_with_its_target() -> None:
    text = "[url=https://e.example]" + "see " * 60 + "[/url]"

    assert split_message(text, 200) == [
        "[url=https://e.example]" + ("see " * 43).strip() + "[/url]",  # exactly 200
        "[url=https://e.example]" + "see " * 17 + "[/url]",
    ]


def test_too_small_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 200"):
        split_message("text", 50)


# -- choices --------------------------------------------------------------------------------


def test_choice_text_numbers_the_choices() -> None:
    assert choice_text(CHOICES) == "1. Track my order\n2. Talk to a human"
    assert choice_text([Button("[b]Bold", "b")]) == f"1. [{ZWSP}b]Bold"


@pytest.mark.parametrize("api_version", [1, 2])
def test_keyboard_sends_the_choice(api_version: int) -> None:
    assert keyboard(55, CHOICES, api_version) == {
        "BOT_ID": 55,
        "BUTTONS": [
            {"TEXT": "Track my order", "ACTION": "SEND", "ACTION_VALUE": "track"},
            {"TEXT": "Talk to a human", "ACTION": "SEND", "ACTION_VALUE": "operator"},
        ],
    }


def test_keyboard_of_an_unknown_api_version() -> None:
    with pytest.raises(ValueError, match="version 3"):
        keyboard(55, CHOICES, 3)


@pytest.mark.parametrize(
    ("answer", "chosen"),
    [
        ("2", "operator"),
        (" 1. ", "track"),
        ("2)", "operator"),
        ("talk to a HUMAN", "operator"),
        ("track", "track"),  # a keyboard press sends the value itself
        ("0", "0"),
        ("3", "3"),
        ("Where is it?", "Where is it?"),
    ],
)
def test_resolve_choice(answer: str, chosen: str) -> None:
    assert resolve_choice(answer, CHOICES) == chosen


def test_resolve_choice_without_choices() -> None:
    assert resolve_choice("1", ()) == "1"
