"""References -> VK communities through `groups.getById`, 500 per call, packed into `execute`.

Numeric ids are asked too: VK confirms they exist and says whether a community is banned or
deleted. No `fields` are requested, so a pack of 25 calls stays far from `execute`'s 5 MB response
limit; packs are sized from a conservative estimate of the bytes one community costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vk_pipeline.grouplists.refs import Ref
from vk_pipeline.vk import Call, ObjectError, VKClient

GROUPS_PER_CALL = 500  # groups.getById's documented maximum
CALLS_PER_EXECUTE = 25
# VK refuses execute responses above 5 MB (error 13). A community without extra fields is about
# 450 bytes of JSON (names, three photo URLs); 600 leaves room for long names.
RESPONSE_BUDGET_BYTES = 4_000_000
BYTES_PER_GROUP = 600


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A community as VK answered for it; `deactivated` is "banned" or "deleted" (or None)."""

    id: int
    screen_name: str | None = None
    name: str | None = None
    deactivated: str | None = None
    type: str | None = None
    is_closed: int | None = None

    @classmethod
    def from_vk(cls, group: dict[str, Any]) -> GroupInfo:
        return cls(
            id=int(group["id"]),
            screen_name=group.get("screen_name") or None,
            name=group.get("name") or None,
            deactivated=group.get("deactivated") or None,
            type=group.get("type") or None,
            is_closed=group.get("is_closed"),
        )

    @property
    def status(self) -> str:
        return self.deactivated or "active"


@dataclass
class Resolution:
    found: dict[Ref, GroupInfo] = field(default_factory=dict)
    missing: dict[Ref, str] = field(default_factory=dict)  # ref -> why VK gave nothing
    http_requests: int = 0
    calls: int = 0


def _key(ref: Ref) -> str:
    return str(ref.value)


def pack_sizes(calls: int, budget: int = RESPONSE_BUDGET_BYTES) -> list[int]:
    """Calls per execute request: as few requests as the response budget allows, evenly filled."""
    if calls <= 0:
        return []
    per_pack = max(1, min(CALLS_PER_EXECUTE, budget // (GROUPS_PER_CALL * BYTES_PER_GROUP)))
    packs = math.ceil(calls / per_pack)
    base, extra = divmod(calls, packs)
    return [base + (1 if i < extra else 0) for i in range(packs)]


def resolve(
    client: VKClient, refs: Iterable[Ref], *, budget: int = RESPONSE_BUDGET_BYTES
) -> Resolution:
    """Every distinct reference -> `GroupInfo`, or a reason in `missing`."""
    unique = list(dict.fromkeys(refs))
    result = Resolution()
    if not unique:
        return result
    chunks = [unique[i : i + GROUPS_PER_CALL] for i in range(0, len(unique), GROUPS_PER_CALL)]
    before = client.stats.http_requests
    start = 0
    for size in pack_sizes(len(chunks), budget):
        pack = chunks[start : start + size]
        start += size
        calls = [
            # A comma-joined string, as VK's form API takes it (an array would be sent as JSON).
            Call("groups.getById", {"group_ids": ",".join(_key(r) for r in chunk)})
            for chunk in pack
        ]
        answers = client.call_many(calls) if len(calls) > 1 else [_single(client, calls[0])]
        for chunk, answer in zip(pack, answers, strict=True):
            _match(chunk, answer, result)
    result.calls = len(chunks)
    result.http_requests = client.stats.http_requests - before
    return result


def _single(client: VKClient, call: Call) -> Any:
    # One call needs no execute wrapper; the answer and its errors have the same shape.
    return client.call(call.method, **call.params)


def _match(chunk: Sequence[Ref], answer: Any, result: Resolution) -> None:
    if isinstance(answer, ObjectError):
        # groups.getById drops unknown entries from a list and fails only when none is known
        # (error 100 "group_ids is undefined"): every reference of this call is unknown.
        for ref in chunk:
            result.missing[ref] = _missing_reason(ref, answer)
        return
    groups = answer.get("groups", []) if isinstance(answer, dict) else list(answer or [])
    infos = [GroupInfo.from_vk(g) for g in groups if isinstance(g, dict) and "id" in g]
    by_id = {g.id: g for g in infos}
    by_name = {g.screen_name.lower(): g for g in infos if g.screen_name}
    used: set[int] = set()
    unmatched: list[Ref] = []
    for ref in chunk:
        info = by_id.get(int(ref.value)) if ref.kind == "id" else by_name.get(str(ref.value))
        if info is None:
            unmatched.append(ref)
        else:
            result.found[ref] = info
            used.add(info.id)
    leftover = [g for g in infos if g.id not in used]
    names = [r for r in unmatched if r.kind == "name"]
    if len(names) == 1 and len(leftover) == 1:
        # VK answers an old screen name with the community under its new one; with one of each
        # left over, they are the same community.
        result.found[names[0]] = leftover[0]
        unmatched.remove(names[0])
    for ref in unmatched:
        result.missing[ref] = _missing_reason(ref, None)


def _missing_reason(ref: Ref, error: ObjectError | None) -> str:
    if error is not None and error.code != 100:
        return f"VK refused to look it up ({error.reason})"
    if ref.kind == "id":
        return f"VK has no community with id {ref.value}"
    return f"VK knows no community with the address {ref.value!r}"
