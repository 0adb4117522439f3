"""Reading a JSON body strictly, before Litestar shapes it into the handler's Struct.

Litestar decodes a body into plain values and then converts them to the handler's
type with msgspec in its lax mode (``strict=False``, needed for path and query
strings), so ``"seq": "5"`` became 5. Here the decoded body is first converted in
strict mode (numbers must be JSON numbers, booleans JSON booleans), and a body
nested so deep that the decoder gives up is a 400 instead of a ``RecursionError``.
An error inside a batch names the operation: its index and its ``seq``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType

from sampling.errors import BodyTooDeep, InvalidBody

#: ``$.ops[3].seq`` -> the list and the index of the element at fault.
_ITEM: Final = re.compile(r"^\$\.(\w+)\[(\d+)\]")
_NO_TYPE: Final = object()


def _body_type(handler: Any) -> Any:
    """The Struct a handler's JSON ``data`` is shaped into, or ``_NO_TYPE``.

    Read from the handler each time (two lookups): a cache keyed by ``id()`` would
    hand one app's handler type to another app's handler at the same address.
    """
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return _NO_TYPE
    media = getattr(field.kwarg_definition, "media_type", RequestEncodingType.JSON)
    return field.annotation if media == RequestEncodingType.JSON else _NO_TYPE


def _where(raw: Any, path: str) -> dict[str, Any]:
    """``index`` and ``seq`` of the batch element a validation error points into."""
    m = _ITEM.match(path)
    if m is None or not isinstance(raw, dict):
        return {}
    items = raw.get(m.group(1))
    index = int(m.group(2))
    out: dict[str, Any] = {"index": index}
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        seq = items[index].get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            out["seq"] = seq
    return out


def check_strict(raw: Any, target: Any) -> None:
    """Raise :class:`InvalidBody` unless ``raw`` converts to ``target`` without coercion."""
    try:
        msgspec.convert(raw, type=target, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, path = text.rpartition(" - at `")
        path = path.rstrip("`") if message else ""
        message = message or text
        where = _where(raw, path)
        prefix = ""
        if "index" in where:
            seq = f" (seq {where['seq']})" if "seq" in where else ""
            prefix = f"{path[2:].split('[')[0]}[{where['index']}]{seq}: "
        key = path.removeprefix("$.") if path else ""
        raise InvalidBody(
            f"{prefix}{message}"
            + (f" at {key}" if key else "")
            + ". Fix the request and send it again.",
            errors=[{"message": message, "key": key, "source": "body"}],
            **where,
        ) from None


class SamplingRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            raw = await super().json()
        except RecursionError:
            raise BodyTooDeep(
                "the JSON body is nested too deep to be a request of this API; "
                "send the documented shape"
            ) from None
        target = _body_type(self.route_handler)
        if target is not _NO_TYPE:
            check_strict(raw, target)
        return raw
