"""Netstrings (`<len>:<payload>,`), the framing of Kamailio's evapi module."""

from __future__ import annotations


class NetstringError(ValueError):
    pass


MAX_LENGTH = 1 << 20


def encode(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class NetstringDecoder:
    """Incremental decoder for a TCP stream; raises on framing errors, which desynchronise the stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer.extend(data)
        messages: list[bytes] = []
        while True:
            colon = self._buffer.find(b":")
            if colon < 0:
                if len(self._buffer) > 10:
                    raise NetstringError("length prefix too long")
                return messages
            prefix = bytes(self._buffer[:colon])
            if not prefix.isdigit():
                raise NetstringError(f"bad length prefix {prefix[:20]!r}")
            length = int(prefix)
            if length > MAX_LENGTH:
                raise NetstringError(f"message of {length} bytes exceeds {MAX_LENGTH}")
            end = colon + 1 + length
            if len(self._buffer) < end + 1:
                return messages
            if self._buffer[end : end + 1] != b",":
                raise NetstringError("missing ',' terminator")
            messages.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]
