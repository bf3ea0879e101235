"""A scripted Typebot flow and how Typebot renders it: bubbles, inputs and reply matching.

Shapes follow reference dify-typebot.md §B3 to §B5: text bubbles carry Plate rich text (or markdown
when asked), inputs are the block itself, ``{{Variable}}`` templates are filled server-side.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

JSON = dict[str, Any]
TextFormat = Literal["richText", "markdown"]

_TEMPLATE = re.compile(r"\{\{([^{}]+)\}\}")


@dataclass(frozen=True)
class TextBubble:
    """Plain text; every line becomes a paragraph, as in Typebot's editor."""

    text: str


@dataclass(frozen=True)
class RichTextBubble:
    """Plate nodes given as-is (bold leaves, ``a`` links, lists...)."""

    rich_text: Sequence[JSON]


@dataclass(frozen=True)
class ImageBubble:
    url: str
    click_link: str | None = None


Bubble = TextBubble | RichTextBubble | ImageBubble


@dataclass(frozen=True)
class TextInput:
    variable: str | None = None
    """Variable name that stores the answer."""
    placeholder: str | None = None
    button: str | None = None


@dataclass(frozen=True)
class Choice:
    content: str
    value: str | None = None


@dataclass(frozen=True)
class ChoiceInput:
    items: Sequence[str | Choice]
    variable: str | None = None

    def choices(self) -> list[Choice]:
        return [item if isinstance(item, Choice) else Choice(item) for item in self.items]


Input = TextInput | ChoiceInput


@dataclass(frozen=True)
class Step:
    """Bubbles shown together, then what the bot waits for (none: the flow goes on or ends)."""

    bubbles: Sequence[Bubble] = ()
    input: Input | None = None
    client_side_actions: Sequence[JSON] = ()

    @property
    def waits(self) -> bool:
        dedicated = any(action.get("expectsDedicatedReply") for action in self.client_side_actions)
        return self.input is not None or dedicated


@dataclass(frozen=True)
class Reply:
    """A parsed ``message`` of the Chat API (a bare string is a text message)."""

    type: str
    text: str = ""
    reply_id: str | None = None


def bubble_id(step: int, index: int) -> str:
    return f"bubble-{step}-{index}"


def input_id(step: int) -> str:
    return f"input-{step}"


def render_bubbles(
    step_index: int, step: Step, variables: Mapping[str, Any], text_format: TextFormat
) -> list[JSON]:
    return [
        _render_bubble(bubble_id(step_index, index), bubble, variables, text_format)
        for index, bubble in enumerate(step.bubbles)
    ]


def render_actions(step_index: int, step: Step) -> list[JSON]:
    last_bubble = bubble_id(step_index, len(step.bubbles) - 1) if step.bubbles else None
    return [
        {"lastBubbleBlockId": last_bubble, **action} if last_bubble else dict(action)
        for action in step.client_side_actions
    ]


def render_input(step_index: int, block: Input, variables: Mapping[str, Any]) -> JSON:
    options: JSON = {"variableId": f"var-{block.variable}"} if block.variable else {}
    rendered: JSON = {"id": input_id(step_index)}
    if isinstance(block, TextInput):
        labels = {"placeholder": block.placeholder, "button": block.button}
        labels = {key: value for key, value in labels.items() if value is not None}
        rendered["type"] = "text input"
        options = {"labels": labels, **options} if labels else options
    else:
        rendered["type"] = "choice input"
        rendered["items"] = [
            _render_choice(step_index, index, choice, variables)
            for index, choice in enumerate(block.choices())
        ]
    if options:
        rendered["options"] = options
    return rendered


def text_bubble(block_id: str, rich_text: list[JSON], text_format: TextFormat) -> JSON:
    if text_format == "markdown":
        content: JSON = {"type": "markdown", "markdown": to_markdown(rich_text)}
    else:
        content = {"type": "richText", "richText": rich_text}
    return {"id": block_id, "type": "text", "content": content}


def paragraphs(text: str) -> list[JSON]:
    return [{"type": "p", "children": [{"text": line}]} for line in text.split("\n")]


def accept(block: Input, step_index: int, reply: Reply | None) -> str | None:
    """The answer Typebot saves for ``reply``, or ``None`` when it asks again."""
    if reply is None or reply.type != "text" or not reply.text:
        return None
    if isinstance(block, TextInput):
        return reply.text
    for index, choice in enumerate(block.choices()):
        if _matches(choice, choice_id(step_index, index), reply):
            return choice.value if choice.value is not None else choice.content
    return None


def choice_id(step: int, index: int) -> str:
    return f"choice-{step}-{index}"


def fill(text: str, variables: Mapping[str, Any]) -> str:
    return _TEMPLATE.sub(lambda match: _stringify(variables.get(match.group(1))), text)


def referenced_variables(steps: Sequence[Step]) -> set[str]:
    names: set[str] = set()
    for step in steps:
        for text in _templated_texts(step):
            names.update(_TEMPLATE.findall(text))
        if step.input is not None and step.input.variable:
            names.add(step.input.variable)
    return names


def to_markdown(rich_text: Sequence[JSON]) -> str:
    """Typebot's ``convertRichTextToMarkdown``: one line per paragraph, entities decoded."""
    return html.unescape("\n".join(_markdown_block(node) for node in rich_text))


def _render_bubble(
    block_id: str, bubble: Bubble, variables: Mapping[str, Any], text_format: TextFormat
) -> JSON:
    if isinstance(bubble, ImageBubble):
        content: JSON = {"url": fill(bubble.url, variables)}
        if bubble.click_link:
            content["clickLink"] = {"url": fill(bubble.click_link, variables)}
        return {"id": block_id, "type": "image", "content": content}
    nodes = paragraphs(bubble.text) if isinstance(bubble, TextBubble) else list(bubble.rich_text)
    return text_bubble(block_id, [_fill_node(node, variables) for node in nodes], text_format)


def _render_choice(
    step_index: int, index: int, choice: Choice, variables: Mapping[str, Any]
) -> JSON:
    item: JSON = {"id": choice_id(step_index, index), "content": fill(choice.content, variables)}
    if choice.value is not None:
        item["value"] = choice.value
    return item


def _fill_node(node: JSON, variables: Mapping[str, Any]) -> JSON:
    filled = dict(node)
    for key in ("text", "url"):
        if isinstance(node.get(key), str):
            filled[key] = fill(node[key], variables)
    if "children" in node:
        filled["children"] = [_fill_node(child, variables) for child in node["children"]]
    return filled


def _matches(choice: Choice, item_id: str, reply: Reply) -> bool:
    text = reply.text.strip()
    return (
        reply.reply_id == item_id
        or reply.text == item_id
        or (choice.value is not None and text == choice.value.strip())
        or text == choice.content.strip()
    )


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_stringify(item) for item in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _templated_texts(step: Step) -> Iterator[str]:
    for bubble in step.bubbles:
        if isinstance(bubble, TextBubble):
            yield bubble.text
        elif isinstance(bubble, ImageBubble):
            yield bubble.url
        else:
            yield from _node_texts(bubble.rich_text)
    if isinstance(step.input, ChoiceInput):
        yield from (choice.content for choice in step.input.choices())


def _node_texts(nodes: Sequence[JSON]) -> Iterator[str]:
    for node in nodes:
        yield from (node[key] for key in ("text", "url") if isinstance(node.get(key), str))
        yield from _node_texts(node.get("children", []))


def _markdown_block(node: JSON) -> str:
    if node.get("type") in ("ul", "ol"):
        ordered = node["type"] == "ol"
        return "\n".join(
            f"{f'{number}.' if ordered else '-'} {_markdown_inline(item.get('children', []))}"
            for number, item in enumerate(node.get("children", []), start=1)
        )
    return _markdown_inline(node.get("children", []))


def _markdown_inline(children: Sequence[JSON]) -> str:
    return "".join(_markdown_node(child) for child in children)


def _markdown_node(node: JSON) -> str:
    if "text" in node:
        return _markdown_leaf(node)
    inner = _markdown_inline(node.get("children", []))
    return f"[{inner}]({node.get('url', '')})" if node.get("type") == "a" else inner


def _markdown_leaf(leaf: JSON) -> str:
    text = str(leaf["text"])
    if not text:
        return ""
    if leaf.get("italic"):
        text = f"_{text}_"
    if leaf.get("bold"):
        text = f"**{text}**"
    return text
