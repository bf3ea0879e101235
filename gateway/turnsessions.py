"""The ``Sessions`` a provider adapter sees during one turn.

The dialog's session id is read together with the turn's other keys (one round trip at the start
of the turn), and what the adapter writes is kept until the turn saves it beside the reply, so
neither the read nor the write waits on its own round trip on the way to the answer. One turn per
dialog runs at a time (``gateway.dialogs``), so nothing else writes the key meanwhile.
"""

from __future__ import annotations

from gateway.providers.base import Sessions

_FORGET = object()


class TurnSessions:
    def __init__(self, store: Sessions, key: str, value: str | None) -> None:
        self._store = store
        self._key = key
        self._value = value
        self._pending: dict[str, tuple[object, int]] = {}  # key -> (value or _FORGET, ttl)

    async def get(self, key: str) -> str | None:
        if key == self._key:
            return self._value
        pending = self._pending.get(key)
        if pending is not None:
            return None if pending[0] is _FORGET else str(pending[0])
        return await self._store.get(key)

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        self._pending[key] = (value, ttl_s)
        if key == self._key:
            self._value = value

    async def forget(self, key: str) -> None:
        self._pending[key] = (_FORGET, 0)
        if key == self._key:
            self._value = None

    async def save(self) -> None:
        """Write what the adapter changed; the turn awaits this before it counts as done."""
        pending, self._pending = self._pending, {}
        for key, (value, ttl_s) in pending.items():
            if value is _FORGET:
                await self._store.forget(key)
            else:
                await self._store.set(key, str(value), ttl_s)
