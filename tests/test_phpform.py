"""PHP-style form decoding: the same pairs ``parse_qsl`` reads, nested the way PHP nests them."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from tenants.bitrix24.phpform import FormError, decode

TRICKY = [
    "a=1&b=two+words&c=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82",
    "bad=%zz%4&plus=%2B&&empty=&bare",
    "x=1&x=2",
    "k%20ey+name=v",
]


@pytest.mark.parametrize("body", TRICKY)
def test_flat_forms_read_as_parse_qsl_reads_them(body: str) -> None:
    assert decode(body.encode()) == dict(parse_qsl(body, keep_blank_values=True))


def test_php_keys_nest_and_lists_append() -> None:
    body = "data[PARAMS][MESSAGE]=hi&data[PARAMS][FILE_ID][]=5&data[PARAMS][FILE_ID][]=6"
    for _ in range(2):  # the second read comes from the cache of split names
        form = decode(body.encode())
        assert form == {"data": {"PARAMS": {"MESSAGE": "hi", "FILE_ID": {"0": "5", "1": "6"}}}}
    escaped = b"data%5BPARAMS%5D%5BMESSAGE%5D=hi&data%5bPARAMS%5d%5bDIALOG_ID%5d=chat7"
    assert decode(escaped) == {"data": {"PARAMS": {"MESSAGE": "hi", "DIALOG_ID": "chat7"}}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe=1", "not UTF-8"),
        (b"=1", "malformed field name"),
        (b"[]=1", "malformed field name"),
        (b"a=1&a[b]=2", "both a value and a group"),
        (b"a[b]=2&a=1", "both a value and a group"),
        (b"a=1" + b"&a=1" * 10_000, "more than 10000 fields"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(FormError, match=reason):
        decode(body)


def test_values_read_as_parse_qsl_reads_them_whatever_they_hold() -> None:
    """Escapes valid, broken and cut short, pluses, and raw non-ASCII text next to them."""
    pieces = ["a", "Z", "+", "%", "%2", "%41", "%zz", "%C3", "%A9", "%C3%A9", "%E2%82", "%2B",
              "%26", "%3D", "é", "ж", "€", "😀", " ", "%F0%9F", "%ff"]  # fmt: skip
    chosen = random.Random(20261125)
    for _ in range(2_000):
        value = "".join(chosen.choice(pieces) for _ in range(chosen.randint(0, 8)))
        body = f"k={value}"
        assert decode(body.encode()) == dict(parse_qsl(body, keep_blank_values=True)), value
