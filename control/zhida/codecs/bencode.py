"""Bencode, the encoding of rtpengine's ng control protocol."""

from __future__ import annotations

from typing import Any

BencodeValue = int | bytes | str | list[Any] | dict[Any, Any]


class BencodeError(ValueError):
    pass


def encode(value: BencodeValue) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, bool):  # bool is an int subclass; ng wants no booleans
        raise BencodeError("booleans have no bencode form; use flags lists")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str):
        _encode(value.encode(), out)
    elif isinstance(value, bytes | bytearray):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        for key in sorted(k.encode() if isinstance(k, str) else k for k in value):
            out.append(b"%d:" % len(key))
            out.append(key)
            item = value[key.decode()] if key.decode() in value else value[key]
            _encode(item, out)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decodes one value; byte strings come back as str where they are valid UTF-8."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"trailing bytes at offset {end}")
    return value


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise BencodeError("truncated input")
    lead = data[pos : pos + 1]
    if lead == b"i":
        end = data.find(b"e", pos)
        if end < 0:
            raise BencodeError("unterminated integer")
        try:
            return int(data[pos + 1 : end]), end + 1
        except ValueError as exc:
            raise BencodeError(f"bad integer at offset {pos}") from exc
    if lead == b"l":
        items = []
        pos += 1
        while data[pos : pos + 1] != b"e":
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + 1
    if lead == b"d":
        result: dict[str, Any] = {}
        pos += 1
        while data[pos : pos + 1] != b"e":
            key, pos = _decode(data, pos)
            if not isinstance(key, str):
                raise BencodeError("dictionary key is not a string")
            result[key], pos = _decode(data, pos)
        return result, pos + 1
    if lead.isdigit():
        colon = data.find(b":", pos)
        if colon < 0:
            raise BencodeError("unterminated string length")
        length = int(data[pos:colon])
        start, end = colon + 1, colon + 1 + length
        if end > len(data):
            raise BencodeError("truncated string")
        raw = data[start:end]
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            return raw, end
    raise BencodeError(f"unexpected byte {lead!r} at offset {pos}")
