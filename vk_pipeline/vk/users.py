"""users.get for any number of ids: 1,000 ids a call, many calls an `execute`.

VK answers at most 5 MB per `execute`; a profile with the fields below is about 200 bytes, so
25 calls of 1,000 (the most `execute` takes) come out larger than that and VK refuses them
with error 13. Packs of `CALLS_PER_EXECUTE` calls stay under the limit (20,000 profiles, one
HTTP request); should VK's profiles be larger, the client halves the pack on error 13 itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vk_pipeline.vk.client import Call, VKClient
from vk_pipeline.vk.errors import ObjectError

USER_FIELDS = ("sex", "bdate", "city", "country", "screen_name")
USERS_PER_CALL = 1000
CALLS_PER_EXECUTE = 20


@dataclass
class UsersChunk:
    """Profiles VK returned for one pack of ids; `missing` are ids it returned nothing for
    (or refused, with the reason in `errors`)."""

    profiles: list[dict[str, Any]]
    missing: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def fetch_users(
    client: VKClient,
    ids: Sequence[int],
    fields: Sequence[str] = USER_FIELDS,
    calls_per_request: int = CALLS_PER_EXECUTE,
) -> Iterator[UsersChunk]:
    """Profiles of `ids`, a chunk per pack of `calls_per_request` calls, in order."""
    wanted = list(dict.fromkeys(int(i) for i in ids if int(i) > 0))
    per_pack = USERS_PER_CALL * max(1, calls_per_request)
    for start in range(0, len(wanted), per_pack):
        pack_ids = wanted[start : start + per_pack]
        slices = [pack_ids[i : i + USERS_PER_CALL] for i in range(0, len(pack_ids), USERS_PER_CALL)]
        calls = [
            Call(
                "users.get",
                {"user_ids": ",".join(map(str, s)), "fields": ",".join(fields)},
            )
            for s in slices
        ]
        results = client.call_many(calls)
        chunk = UsersChunk([])
        for asked, result in zip(slices, results, strict=True):
            if isinstance(result, ObjectError) or result is None:
                reason = result.reason if isinstance(result, ObjectError) else "no answer"
                chunk.missing.extend(asked)
                chunk.errors.update(dict.fromkeys(asked, reason))
                continue
            got = {int(p["id"]) for p in result}
            chunk.profiles.extend(result)
            chunk.missing.extend(i for i in asked if i not in got)
        yield chunk
