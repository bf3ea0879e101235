"""English and Russian, chosen from the viewing user's Bitrix24 ``LANG``."""

from __future__ import annotations

from collections.abc import Mapping

from admin_ui.portal.messages_en import MESSAGES as ENGLISH
from admin_ui.portal.messages_ru import MESSAGES as RUSSIAN
from admin_ui.portal.validation import Message

CATALOGS: Mapping[str, Mapping[str, str]] = {"en": ENGLISH, "ru": RUSSIAN}
# Bitrix24 interface languages whose users read Russian more readily than English.
RUSSIAN_SPEAKING = frozenset({"ru", "by", "kz"})


def language_for(bitrix24_lang: str | None) -> str:
    code = (bitrix24_lang or "").strip().lower()[:8]
    return "ru" if code in RUSSIAN_SPEAKING else "en"


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language if language in CATALOGS else "en"
        self._catalog = CATALOGS[self.language]

    def __call__(self, key: str, **params: object) -> str:
        text = self._catalog.get(key) or ENGLISH.get(key) or key
        try:
            return text.format(**params) if params else text
        except (KeyError, IndexError, ValueError):
            return text

    def message(self, message: Message) -> str:
        return self(message.key, **dict(message.params))

    def fields(self, fields: Mapping[str, Message]) -> dict[str, str]:
        return {name: self.message(problem) for name, problem in fields.items()}
