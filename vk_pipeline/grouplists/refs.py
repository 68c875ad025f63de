"""One written reference to a VK community -> a numeric id, a screen name, or a reason it is not one.

People name a community as `123`, `-123`, `club123`, `public123`, `event123`, `@zerno`,
`Zerno_Coffee`, `vk.com/zerno`, `https://m.vk.ru/public123/?from=x#wall`, `vk.com/wall-123_456`
or VK's own mention markup `[club123|Зерно]`. Everything here is pure string work: resolving
screen names to ids needs VK and lives in `resolve.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# VK ids are far below this; anything larger is a typo or a different kind of number.
MAX_GROUP_ID = 10**10
MAX_SCREEN_NAME = 32
MAX_TOKEN = 300

VK_HOSTS = frozenset({"vk.com", "vk.ru", "vkontakte.ru", "vkontakte.com"})
_HOST_PREFIXES = ("www.", "m.", "new.", "mobile.", "0.")

# First path segments that are VK's own pages, not communities (vk.com/feed, vk.com/im ...).
VK_SECTIONS = _wordset(
    "feed im friends groups search settings music audio audios video videos photos albums "
    "docs apps games market login join about support help dev blog jobs terms privacy ads "
    "away.php away page pages wiki notes bookmarks fave messages mail stats edit restore "
    "reg clips narratives stories services catalog discover mini_apps vkpay bugs legal "
    "public club event id wall photo topic board away.php share.php"
)

# Top-level domains that make `name.tld` a site, not a dotted VK screen name.
_TLDS = _wordset(
    "com ru net org io me info su рф ua by kz de uk us biz tv app dev co xyz online site "
    "shop pro edu gov eu fr it es pl cz cn jp tk ly gl to gg am fm ai be"
)

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_DOMAIN_RE = re.compile(r"^((?:[a-z0-9а-я\-]+\.)+([a-zа-я]{2,}))(?::\d+)?([/?#]|$)")
_NUMBER_RE = re.compile(r"^[+\-]?\d+$")
_PREFIXED_RE = re.compile(r"^(club|public|event)(-?\d+)$")
_USER_RE = re.compile(r"^id(-?\d+)$")
_CONTENT_RE = re.compile(r"^(wall|photo|video|album|topic|market|clip|product)(-?\d+)_(\d+)$")
_BOARD_RE = re.compile(r"^board(\d+)$")
_NAME_RE = re.compile(r"^[a-z0-9_.]+$")
# The common case of a VK link, without urllib: scheme, host prefix, host, first path segment.
_VK_LINK_RE = re.compile(
    r"^(?:https?://)?(?:(?:www|m|new|mobile|0)\.)?(?:vk\.com|vk\.ru|vkontakte\.ru|vkontakte\.com)"
    r"/([a-z0-9_.\-]+)/?(?:[?#]|$)"
)
_MENTION_RE = re.compile(r"^\[([a-z0-9_.\-]+)\|")
# Wrappers people paste around links: quotes, brackets, angle brackets, guillemets.
_STRIP_LEAD = "\"'«“‘<([{"
_STRIP_TRAIL = "\"'»”’>)]},;:!?."


@dataclass(frozen=True, slots=True)
class Ref:
    """A community as written: a numeric id, or a lower-cased screen name VK must resolve."""

    kind: Literal["id", "name"]
    value: int | str

    def __str__(self) -> str:
        return str(self.value) if self.kind == "id" else f"@{self.value}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome for one token: `ref` or `reason`; `strong` marks unmistakable spellings.

    A strong token (a link, `@name`, `club123`, `id5`, a post link) was meant as a reference,
    good or bad; a bare word or number might also be a label or a count beside one.
    """

    ref: Ref | None
    reason: str | None = None
    strong: bool = False


def _bad(reason: str, strong: bool = False) -> Parsed:
    return Parsed(None, reason, strong)


def _id(value: int, text: str, *, strong: bool) -> Parsed:
    if value == 0:
        return _bad(f"{text!r}: 0 is not a community id", strong)
    if value < 0:
        return _bad(f"{text!r}: a community id is a positive number", strong)
    if value >= MAX_GROUP_ID:
        return _bad(f"{text!r}: {value} is too large to be a VK community id", strong)
    return Parsed(Ref("id", value), strong=strong)


def clean_token(token: str) -> str:
    """The token without the quotes, brackets and sentence punctuation pasted around it."""
    token = token.strip().lstrip(_STRIP_LEAD)
    # A trailing ")" or "." belongs to the sentence the link was pasted from, never to VK.
    return token.rstrip(_STRIP_TRAIL)


@lru_cache(maxsize=65536)
def parse_token(raw: str) -> Parsed:
    """One whitespace-free token -> `Parsed` (cached: lists repeat themselves a lot)."""
    if len(raw) > MAX_TOKEN:
        return _bad(f"{raw[:40]!r}…: {len(raw):,} characters is too long for a community address")
    mention = _MENTION_RE.match(raw.lower())
    if mention:
        return _identifier(mention.group(1), raw, strong=True, in_link=True)
    text = clean_token(raw)
    if not text:
        return _bad(f"{raw!r} is not a community address")
    lower = text.lower()
    if _SCHEME_RE.match(lower) or _looks_like_host(lower):
        return _link(text, lower)
    if lower.startswith("@"):
        return _identifier(lower[1:], text, strong=True, in_link=False)
    if lower.startswith("+") and lower[1:].isdigit():
        return _bad(f"{text!r} looks like a phone number, not a community id")
    if _NUMBER_RE.match(lower):
        # `-123` is how VK writes a community as a wall owner.
        return _id(abs(int(lower)), text, strong=False)
    if "@" in lower:
        return _bad(f"{text!r} looks like an e-mail address, not a VK community")
    return _identifier(lower, text, strong=False, in_link=False)


def _looks_like_host(lower: str) -> bool:
    """`vk.com/x`, `example.org`, `site.xyz/page`; not a dotted screen name like `zerno.club`."""
    m = _DOMAIN_RE.match(lower)
    if m is None:
        return False
    host, tld, after = m.group(1), m.group(2), m.group(3)
    return bool(after) or tld in _TLDS or _strip_host_prefix(host) in VK_HOSTS


def _strip_host_prefix(host: str) -> str:
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host[len(prefix) :] in VK_HOSTS:
            return host[len(prefix) :]
    return host


def _link(text: str, lower: str) -> Parsed:
    fast = _VK_LINK_RE.match(lower)
    # A query may carry the community (feed?w=wall-1_2); only then is the full parse needed.
    if fast and not ("w=" in lower or "z=" in lower):
        return _identifier(fast.group(1), text, strong=True, in_link=True)
    url = lower if _SCHEME_RE.match(lower) else "https://" + lower
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return _bad(f"{text!r} is not a valid link", True)
    if parts.scheme not in ("http", "https"):
        return _bad(f"{text!r} is a {parts.scheme}: link, not a VK page", True)
    host = _strip_host_prefix(host)
    if host not in VK_HOSTS:
        if "vk" in host.split(".") or host.endswith(".vk.com"):
            return _bad(f"{text!r} links to {host}, which is not a community page", True)
        return _bad(f"{text!r} links to {host or 'an unknown site'}, not to VK", True)
    segments = [s for s in unquote(parts.path).split("/") if s]
    query = parse_qs(parts.query)
    # A post opened over another page (vk.com/feed?w=wall-123_456) names its community in `w`.
    for key in ("w", "z"):
        for value in query.get(key, []):
            inner = _CONTENT_RE.match(value.split("/")[0])
            if inner and (not segments or segments[0] in VK_SECTIONS):
                return _content(inner, text)
    if not segments:
        return _bad(f"{text!r} is VK's front page; it names no community", True)
    return _identifier(segments[0], text, strong=True, in_link=True)


def _content(match: re.Match[str], text: str) -> Parsed:
    kind, owner = match.group(1), int(match.group(2))
    if owner > 0:
        what = "a post on a user's wall" if kind == "wall" else f"a {kind} of a user"
        return _bad(f"{text!r} is {what}, not a community", True)
    return _id(-owner, text, strong=True)


def _identifier(ident: str, text: str, *, strong: bool, in_link: bool) -> Parsed:
    """`club123`, `id1`, `wall-1_2`, `board5` or a screen name (already lower-cased)."""
    m = _PREFIXED_RE.match(ident)
    if m:
        return _id(int(m.group(2)), text, strong=True)
    if _USER_RE.match(ident):
        return _bad(f"{text!r} is a user's profile, not a community", True)
    m = _CONTENT_RE.match(ident)
    if m:
        return _content(m, text)
    m = _BOARD_RE.match(ident)
    if m:
        return _id(int(m.group(1)), text, strong=True)
    if ident.isdigit():
        # vk.com/123 is not a VK address; @123 is not either. Say what it probably meant.
        return _bad(f"{text!r}: write a community id as 123 or club123", strong)
    if in_link and ident in VK_SECTIONS:
        return _bad(f"{text!r} is a VK service page, not a community", strong)
    if not _NAME_RE.match(ident):
        return _bad(
            f"{text!r} is not a community address (an id, a screen name or a vk.com link)", strong
        )
    if ident.startswith(".") or ident.endswith(".") or ".." in ident:
        return _bad(f"{text!r} is not a valid VK screen name", strong)
    if len(ident) > MAX_SCREEN_NAME:
        return _bad(
            f"{text!r}: {len(ident)} characters is longer than a VK screen name can be "
            f"({MAX_SCREEN_NAME})",
            strong,
        )
    if len(ident) < 2:
        return _bad(f"{text!r} is too short to be a VK screen name", strong)
    return Parsed(Ref("name", ident), strong=strong)
