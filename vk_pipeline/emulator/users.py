"""User profiles as `users.get` (API 5.199) serves them: `users_user_full`.

Every positive id is a user (VK has about a billion ids, nearly all taken), so benchmarks can
ask for any number of new authors. A profile is fixed by its id, except that a world can
deactivate a user later (`World.deactivate_user`), as VK accounts get deleted or banned while a
crawl goes on. What VK shows of whom:

- a deleted account comes back as `first_name: "DELETED"`, `last_name: ""`, `deactivated:
  "deleted"` and nothing else; a banned one keeps its name, `deactivated: "banned"`;
- a closed profile (`is_closed: true`, every fifth id, as in the wall's `profiles`) still shows
  name, sex and screen name, but not birth date, city or country;
- `bdate` is "D.M.YYYY", or "D.M" when the user hides the year, or absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vk_pipeline.emulator import texts

MAX_USER_IDS = 1000
USER_FIELDS = ("sex", "bdate", "city", "country", "screen_name", "photo_50", "photo_100")
CITIES = (
    (1, "Москва"),
    (2, "Санкт-Петербург"),
    (49, "Екатеринбург"),
    (99, "Новосибирск"),
    (60, "Казань"),
    (314, "Киев"),
    (282, "Минск"),
    (1057, "Алматы"),
)
COUNTRIES = {1: "Россия", 2: "Украина", 3: "Беларусь", 4: "Казахстан"}
CITY_COUNTRY = {1: 1, 2: 1, 49: 1, 99: 1, 60: 1, 314: 2, 282: 3, 1057: 4}
NICKS = ("sunny", "coffee_lover", "ivan_ivanov", "petrova", "neo", "moscow_guy", "kot", "lisa")


def initial_deactivation(uid: int) -> str | None:
    if uid % 53 == 0:
        return "deleted"
    if uid % 97 == 0:
        return "banned"
    return None


def _mix(uid: int) -> int:
    # A cheap deterministic hash so that fields do not all move with the same residues.
    return (uid * 2654435761) & 0xFFFFFFFF


def render_user(
    uid: int, fields: Iterable[str], deactivated: str | None, private: bool
) -> dict[str, Any]:
    if deactivated == "deleted":
        return {
            "id": uid,
            "first_name": "DELETED",
            "last_name": "",
            "deactivated": "deleted",
            "can_access_closed": True,
            "is_closed": False,
        }
    first, last = texts.person_name(uid)
    d: dict[str, Any] = {"id": uid, "first_name": first, "last_name": last}
    if deactivated:
        d.update({"deactivated": deactivated, "can_access_closed": True, "is_closed": False})
        return d
    d.update({"can_access_closed": not private, "is_closed": private})
    wanted = set(fields)
    h = _mix(uid)
    full: dict[str, Any] = {
        # texts.person_name: odd first-name indices are female.
        "sex": 1 if (uid % len(texts.FIRST_NAMES)) % 2 == 1 else 2,
        "screen_name": f"{NICKS[h % len(NICKS)]}{uid}" if h % 4 == 0 else f"id{uid}",
        "photo_50": f"https://sun9-{uid % 80}.userapi.com/u/{uid}.jpg?size=50x50",
        "photo_100": f"https://sun9-{uid % 80}.userapi.com/u/{uid}.jpg?size=100x100",
    }
    if not private:
        year = 1960 + (h >> 8) % 50
        day, month = 1 + (h >> 4) % 28, 1 + (h >> 12) % 12
        shown = (h >> 16) % 3  # 0 full date, 1 year hidden, 2 no date
        if shown == 0:
            full["bdate"] = f"{day}.{month}.{year}"
        elif shown == 1:
            full["bdate"] = f"{day}.{month}"
        if (h >> 20) % 4:
            cid, title = CITIES[(h >> 22) % len(CITIES)]
            full["city"] = {"id": cid, "title": title}
            country = CITY_COUNTRY[cid]
            full["country"] = {"id": country, "title": COUNTRIES[country]}
    for k in USER_FIELDS:
        if k in wanted and k in full:
            d[k] = full[k]
    return d


def user_ids(refs: Iterable[str]) -> list[int]:
    """The distinct user ids named by `user_ids` items ("42" or "id42"), in order. Items that are
    no positive id are skipped, as VK skips unknown ids (screen names are not resolved here)."""
    out: list[int] = []
    seen: set[int] = set()
    for ref in refs:
        low = ref.strip().lower()
        digits = low[2:] if low.startswith("id") else low
        if not digits.isdigit() or not 0 < int(digits) < 2**31:
            continue
        uid = int(digits)
        if uid not in seen:
            seen.add(uid)
            out.append(uid)
    return out
