"""Emulator responses validated against VK's official JSON schema (VKCOM/vk-api-schema, 5.199).

The schema is validated *leniently*, relaxing exactly what VK itself does not honour or what the
schema gets wrong as a JSON Schema document:

* Requiredness is written draft-03 style (`"required": true` on a property). It is converted to
  draft-07 `required` lists, except for `inner_type`, which the schema marks required but VK
  does not send (VK_API_NOTES §4, vkbottle/vkbottle#1210 -> vkbottle/types#55).
* `additionalProperties: false` is dropped from `groups_group`: `groups_group_full` is
  `allOf[groups_group, ...]`, so under allOf every full-only field (members_count, wall, ...)
  would be "additional" to the first branch; the schema cannot be satisfied by any full group.
* `format` is not checked (URLs are synthetic).
Everything else (types, enums, nested objects, `$ref`s) is enforced.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from vk_pipeline_tests.fixtures.emulator import Api

BASE_URI = "https://vk-api-schema.invalid/"
RELAXED_REQUIRED = frozenset({"inner_type"})


# Vendored (MIT, with its LICENSE and SOURCE.txt) so a fresh clone runs these tests.
VENDORED_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "vk-api-schema"


def _schema_dir() -> Path | None:
    candidates = [os.environ.get("VK_API_SCHEMA_DIR", ""), str(VENDORED_SCHEMA)]
    for c in candidates:
        if c and (Path(c) / "wall" / "objects.json").is_file():
            return Path(c)
    return None


def _relax(node: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_relax(x, path) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _relax(v, (*path, k)) for k, v in node.items()}
    if isinstance(out.get("required"), bool):
        del out["required"]
    props = node.get("properties")
    if isinstance(props, dict):
        req = [
            name
            for name, sub in props.items()
            if isinstance(sub, dict)
            and sub.get("required") is True
            and name not in RELAXED_REQUIRED
        ]
        if req:
            out["required"] = req
    if path[-2:] == ("definitions", "groups_group"):
        out.pop("additionalProperties", None)
    return out


@cache
def _registry() -> Registry | None:
    root = _schema_dir()
    if root is None:
        return None
    registry: Registry = Registry()
    for f in sorted(root.rglob("*.json")):
        rel = f.relative_to(root).as_posix()
        contents = _relax(json.loads(f.read_text(encoding="utf-8")))
        registry = registry.with_resource(BASE_URI + rel, DRAFT7.create_resource(contents))
    return registry.crawl()


def validator(ref: str) -> Draft7Validator:
    registry = _registry()
    if registry is None:
        pytest.skip("vk-api-schema not found (set VK_API_SCHEMA_DIR)")
    return Draft7Validator({"$ref": BASE_URI + ref}, registry=registry)


def assert_valid(ref: str, instance: Any) -> None:
    errors = sorted(validator(ref).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def _open_groups(api: Api) -> list[int]:
    w = api.server.world
    return [g for g in w.group_ids() if w.group_kind(g) == "open" and w.posts(g)]


def test_relaxation_keeps_real_requirements() -> None:
    v = validator("wall/objects.json#/definitions/wall_wall_comment")
    assert not v.is_valid({"id": 1, "from_id": 1, "date": 1})  # text is required
    assert v.is_valid({"id": 1, "from_id": 1, "date": 1, "text": ""})
    assert not validator("base/objects.json#/definitions/base_likes_info").is_valid({"count": 1})


def test_wall_get_matches_schema(api: Api) -> None:
    for gid in _open_groups(api):
        body = api("wall.get", owner_id=-gid, count=100)
        assert_valid("wall/responses.json#/definitions/wall_get_response", body)
        ext = api("wall.get", owner_id=-gid, count=30, extended=1)
        assert_valid("wall/responses.json#/definitions/wall_get_extended_response", ext)


def test_wall_get_by_id_matches_schema(api: Api) -> None:
    w = api.server.world
    keys = [f"-{gid}_{p['id']}" for gid in _open_groups(api) for p in w.posts(gid)[:20]]
    body = api("wall.getById", posts=",".join(keys))
    assert len(body["response"]["items"]) == len(keys)
    assert_valid("wall/responses.json#/definitions/wall_getById_response", body)
    ext = api("wall.getById", posts=",".join(keys), extended=1)
    assert_valid("wall/responses.json#/definitions/wall_getById_extended_response", ext)


def test_get_comments_matches_schema(api: Api) -> None:
    w = api.server.world
    checked = 0
    for gid in _open_groups(api):
        for post in w.posts(gid):
            if not post["comments"]["count"]:
                continue
            params = {"owner_id": -gid, "post_id": post["id"], "count": 100}
            body = api("wall.getComments", **params, need_likes=1, thread_items_count=10)
            assert_valid("wall/responses.json#/definitions/wall_getComments_response", body)
            ext = api("wall.getComments", **params, extended=1)
            assert_valid("wall/responses.json#/definitions/wall_getComments_extended_response", ext)
            checked += 1
            if checked >= 25:
                return


def test_groups_get_by_id_matches_schema(api: Api) -> None:
    w = api.server.world
    ids = ",".join(map(str, w.group_ids()))
    fields = (
        "members_count,description,wall,activity,status,verified,site,counters,cover,fixed_post"
    )
    body = api("groups.getById", group_ids=ids, fields=fields)
    assert_valid("groups/responses.json#/definitions/groups_getById_object_response", body)
    # 5.131 had a bare list (legacy response is gone from this schema version): items only.
    old = api("groups.getById", group_ids=ids, fields=fields, v="5.131")["response"]
    for g in old:
        assert_valid("groups/objects.json#/definitions/groups_group_full", g)


def test_resolve_screen_name_and_errors_match_schema(api: Api) -> None:
    w = api.server.world
    name = w.group(w.group_ids()[0])["screen_name"]
    body = api("utils.resolveScreenName", screen_name=name)
    assert_valid("utils/responses.json#/definitions/utils_resolveScreenName_response", body)
    err = api("wall.get", owner_id=-w.group_ids()[-1])["error"]
    assert_valid("base/objects.json#/definitions/base_error", err)


def test_users_get_matches_schema_for_every_kind_of_profile(api: Api) -> None:
    # 53: deleted, 97: banned, 5: closed; the rest with full, partial or no birth date.
    ids = [53, 97, 5, *range(1, 40), 2**31 - 1]
    fields = "sex,bdate,city,country,screen_name,photo_100,nonsense"
    body = api("users.get", user_ids=",".join(map(str, ids)), fields=fields)
    assert_valid("users/responses.json#/definitions/users_get_response", body)
    users = {u["id"]: u for u in body["response"]}
    assert users[53] == {
        "id": 53,
        "first_name": "DELETED",
        "last_name": "",
        "deactivated": "deleted",
        "can_access_closed": True,
        "is_closed": False,
    }
    assert users[97]["deactivated"] == "banned" and users[97]["first_name"] != "DELETED"
    assert users[5]["is_closed"] is True and "bdate" not in users[5] and "sex" in users[5]
    bdates = [u.get("bdate") for u in users.values()]
    assert any(b and b.count(".") == 2 for b in bdates)  # full date
    assert any(b and b.count(".") == 1 for b in bdates)  # year hidden
    assert any(b is None for b in bdates)
    assert all(u["city"]["title"] for u in users.values() if "city" in u)
