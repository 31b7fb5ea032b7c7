"""DynamoDB's wire format, the AttributeValue (`{"S": ...}`, `{"N": ...}`, `{"M": ...}`,
`{"L": ...}`, ...), in one place: reading stream images into plain values, so that nothing
beyond the store and the stream adapters sees the format, and the size DynamoDB counts.

A value that is not a well-formed AttributeValue becomes an `Unreadable` (saying where and why)
instead of failing the whole image: only a reader of that attribute finds it of no type it
expects, as when each attribute was read apart. (DynamoDB Local 3.3.1 delivers an empty map in
a stream image as `{}`; an interaction's `returned` is one, and the loyalty consumer never
reads it.)

boto3's TypeDeserializer reads the same way, but importing it imports boto3 (60-120 ms more on
a consumer's cold start, which otherwise never loads boto3), and it raises for the whole image
without saying where the bad value is."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


class UnreadableImage(ValueError):
    """An image that is not a map of attributes at all."""


class _Malformed(ValueError):
    pass


@dataclass(frozen=True)
class Unreadable:
    """In place of a value that is not a well-formed AttributeValue: of no type a reader
    expects. `reason` says where and why (e.g. "items.0.quantity is not a number")."""

    reason: str


def plain_image(image: Mapping | None) -> dict[str, Any] | None:
    """A stream image (or keys, or a raw item) as plain values: text as str, numbers as
    Decimal, NULL as None, BOOL as bool, binary as bytes, L as list, M as dict, the sets as
    sets, and what is none of them as `Unreadable`. None for no image."""
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise UnreadableImage("the image is not a map of attributes")
    return {name: plain(value, name) for name, value in image.items()}


def plain(value: object, where: str = "the value") -> Any:
    """One AttributeValue as a plain value; `where` names it in an `Unreadable` (`items.0.sku`)."""
    try:
        return _read(value, where)
    except _Malformed as error:
        return Unreadable(str(error))


def _read(value: object, where: str) -> Any:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _Malformed(f"{where} is not an AttributeValue")
    [(kind, data)] = value.items()
    reader = _READERS.get(kind)
    if reader is None:
        raise _Malformed(f"{where} has the unknown type {kind!r}")
    return reader(data, where)


def _text(data: object, where: str) -> str:
    if not isinstance(data, str):
        raise _Malformed(f"{where} is not a string")
    return data


def _number(data: object, where: str) -> Decimal:
    try:
        number = Decimal(_text(data, where))
    except (InvalidOperation, _Malformed):
        number = None
    if number is None or not number.is_finite():
        raise _Malformed(f"{where} is not a number")
    return number


def _binary(data: object, where: str) -> bytes:
    # Lambda's JSON events carry base64; boto3 (the local event pump) passes bytes.
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        return base64.b64decode(_text(data, where), validate=True)
    except (binascii.Error, _Malformed):
        raise _Malformed(f"{where} is not base64-encoded binary") from None


def _bool(data: object, where: str) -> bool:
    if not isinstance(data, bool):
        raise _Malformed(f"{where} is not a boolean")
    return data


def _map(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise _Malformed(f"{where} is not a map")
    return {name: plain(value, f"{where}.{name}") for name, value in data.items()}


def _list(data: object, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise _Malformed(f"{where} is not a list")
    return [plain(value, f"{where}.{i}") for i, value in enumerate(data)]


def _set_of(read: Callable[[object, str], Any]) -> Callable[[object, str], set]:
    def read_set(data: object, where: str) -> set:
        if not isinstance(data, list):
            raise _Malformed(f"{where} is not a list")
        return {read(value, f"{where}.{i}") for i, value in enumerate(data)}

    return read_set


_READERS: dict[str, Callable[[object, str], Any]] = {
    "S": _text,
    "N": _number,
    "B": _binary,
    "BOOL": _bool,
    "NULL": lambda data, where: None,
    "M": _map,
    "L": _list,
    "SS": _set_of(_text),
    "NS": _set_of(_number),
    "BS": _set_of(_binary),
}


def size_of(value: Mapping[str, Any]) -> int:
    """DynamoDB's size of an AttributeValue, rounded up (numbers at their widest)."""
    if "S" in value:
        return len(value["S"].encode())
    if "N" in value:
        return 21
    if "M" in value:
        return 3 + sum(len(k.encode()) + size_of(v) + 1 for k, v in value["M"].items())
    if "L" in value:
        return 3 + sum(size_of(v) + 1 for v in value["L"])
    return 1
