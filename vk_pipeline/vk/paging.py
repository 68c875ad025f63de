"""Whole collections out of VK's pages: every group, every wall post, every comment and reply.

Pages of many objects (walls of many groups, comments of many posts) share `execute` packs, so
the request count follows the number of pages, not the number of objects. Every result says what
it cost: the API calls made for it and its share of the HTTP requests (a pack of 25 calls is one
request; a call's share of it is 1/25).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vk_pipeline.vk.client import Call, VKClient
from vk_pipeline.vk.errors import ObjectError, VKQuotaError

GROUP_FIELDS = (
    "members_count",
    "description",
    "wall",
    "activity",
    "status",
    "verified",
    "site",
    "counters",
    "can_see_all_posts",
    "fixed_post",
)
GROUPS_PER_CALL = 500
PAGE_SIZE = 100
THREAD_ITEMS_INLINE = 10  # VK's maximum for thread_items_count


@dataclass(frozen=True)
class GroupResult:
    key: str  # the id or screen name asked for
    group: dict[str, Any] | None
    error: ObjectError | None = None


@dataclass(frozen=True)
class WallRequest:
    owner_id: int
    since: int | None = None  # unix time; None reads the whole wall


@dataclass
class Cost:
    calls: int = 0
    requests: float = 0.0


@dataclass
class WallResult:
    owner_id: int
    posts: list[dict[str, Any]]
    total: int | None
    error: ObjectError | None = None
    complete: bool = True  # False when a `since` cutoff or an error stopped paging early
    cost: Cost = field(default_factory=Cost)
    # Streaming (`chunk_posts`): `final` is False on the chunks handed out while the wall is
    # still being read; the final result holds the posts not handed out yet and, in `ids`,
    # every post id the wall returned.
    final: bool = True
    ids: set[int] = field(default_factory=set)
    read: int = 0  # posts read so far, handed out or not


@dataclass(frozen=True)
class PostRef:
    owner_id: int
    post_id: int


@dataclass
class CommentsResult:
    post: PostRef
    comments: list[dict[str, Any]]
    error: ObjectError | None = None
    cost: Cost = field(default_factory=Cost)


def fetch_groups(
    client: VKClient, keys: Sequence[int | str], fields: Sequence[str] = GROUP_FIELDS
) -> list[GroupResult]:
    """groups.getById for any number of ids or screen names, one result per key."""
    out: list[GroupResult] = []
    for start in range(0, len(keys), GROUPS_PER_CALL):
        chunk = [str(k) for k in keys[start : start + GROUPS_PER_CALL]]
        out.extend(_fetch_group_chunk(client, chunk, fields))
    return out


def _fetch_group_chunk(
    client: VKClient, keys: list[str], fields: Sequence[str]
) -> list[GroupResult]:
    response = client.call("groups.getById", group_ids=keys, fields=list(fields))
    if isinstance(response, ObjectError):
        if len(keys) == 1:
            return [GroupResult(keys[0], None, response)]
        # VK refuses a whole list when no id in it is valid; halve until the bad ones stand alone.
        mid = len(keys) // 2
        return _fetch_group_chunk(client, keys[:mid], fields) + _fetch_group_chunk(
            client, keys[mid:], fields
        )
    # 5.199 wraps the list in {"groups": [...], "profiles": [...]}; older versions send it bare.
    groups = response["groups"] if isinstance(response, dict) else response
    by_id = {str(g["id"]): g for g in groups}
    by_name = {str(g.get("screen_name", "")).lower(): g for g in groups}
    results = []
    for key in keys:
        group = by_id.get(key.lstrip("-")) or by_name.get(key.lower())
        if group is None:
            results.append(GroupResult(key, None, ObjectError(100, "group not found")))
        else:
            results.append(GroupResult(key, group))
    return results


# -- the pack engine ---------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
S = TypeVar("S")


@dataclass
class _Job(Generic[K, S]):
    key: K
    state: S
    pending: int = 0
    cost: Cost = field(default_factory=Cost)


@dataclass(frozen=True)
class _Task(Generic[K]):
    key: K
    call: Call
    info: Any = None


def _drive(
    client: VKClient,
    seeds: Iterable[tuple[K, S, list[_Task[K]]]],
    absorb: Callable[[_Job[K, S], _Task[K], Any], list[_Task[K]]],
    max_in_flight: int,
    *,
    heartbeat: bool = False,
) -> Iterator[_Job[K, S] | None]:
    """Runs page tasks through packs; a task's result may spawn follow-ups for the same object.

    An object is done (and yielded) when none of its tasks is pending. Follow-ups jump the queue
    so objects finish and leave memory early; new objects fill what is left of each pack. Up to
    `client.concurrency` packs are in flight at once (one per token keeps each token's budget
    busy); results are absorbed here, in the caller's thread, as they arrive.

    On a quota stop the results that did arrive are absorbed first, so every object completed
    before the stop is still yielded; then the `VKQuotaError` propagates. With `heartbeat`, a
    None follows every pack absorbed, so the caller can hand out partial state as it grows.
    """
    source = iter(seeds)
    queue: deque[_Task[K]] = deque()
    jobs: dict[K, _Job[K, S]] = {}
    exhausted = False

    def push(task: _Task[K], *, front: bool = False) -> None:
        jobs[task.key].pending += 1
        (queue.appendleft if front else queue.append)(task)

    def top_up() -> Iterator[_Job[K, S]]:
        nonlocal exhausted
        while (
            not exhausted and len(jobs) < max_in_flight and len(queue) < client.execute_batch_size
        ):
            seed = next(source, None)
            if seed is None:
                exhausted = True
                break
            key, state, tasks = seed
            if key in jobs:
                continue
            jobs[key] = job = _Job(key, state)
            for task in tasks:
                push(task)
            if not tasks:
                del jobs[key]
                yield job

    def settle(pack: list[_Task[K]], results: Sequence[Any]) -> Iterator[_Job[K, S]]:
        share = 1 / len(pack) if client.use_execute else 1
        for task, result in zip(pack, results, strict=True):
            job = jobs[task.key]
            job.pending -= 1
            job.cost.calls += 1
            job.cost.requests += share
            if result is None:  # never arrived (quota stop): the object stays incomplete
                continue
            for follow_up in reversed(absorb(job, task, result)):
                push(follow_up, front=True)
            if job.pending == 0:
                del jobs[task.key]
                yield job

    def next_pack() -> list[_Task[K]]:
        return [queue.popleft() for _ in range(min(client.execute_batch_size, len(queue)))]

    if client.concurrency <= 1:
        while True:
            yield from top_up()
            if not queue:
                return
            pack = next_pack()
            try:
                results = client.call_many([t.call for t in pack])
            except VKQuotaError as error:
                yield from settle(pack, error.partial or [None] * len(pack))
                raise
            yield from settle(pack, results)
            if heartbeat:
                yield None

    in_flight: dict[Future[list[Any]], list[_Task[K]]] = {}
    stop: VKQuotaError | BaseException | None = None
    with ThreadPoolExecutor(client.concurrency, thread_name_prefix="vk-pack") as pool:
        try:
            while True:
                if stop is None:
                    yield from top_up()
                    while queue and len(in_flight) < client.concurrency:
                        pack = next_pack()
                        in_flight[pool.submit(client.call_many, [t.call for t in pack])] = pack
                        yield from top_up()
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    pack = in_flight.pop(future)
                    try:
                        results = future.result()
                    except VKQuotaError as error:
                        stop = stop or error
                        results = error.partial or [None] * len(pack)
                    except BaseException as error:
                        stop = stop or error
                        results = [None] * len(pack)
                    yield from settle(pack, results)
                    if heartbeat:
                        yield None
        finally:
            for future in in_flight:
                future.cancel()
    if stop is not None:
        raise stop


# -- walls -------------------------------------------------------------------------------------


@dataclass
class _Wall:
    request: WallRequest
    ids: set[int] = field(default_factory=set)
    posts: list[dict[str, Any]] = field(default_factory=list)  # not handed out yet
    base_count: int | None = None
    latest_count: int = 0
    # Positions are counted in the wall as it was at the first page ("base"). Everything before
    # `frontier` has been read; `covered` holds the base ranges of the pages now coming back.
    frontier: int = 0
    covered: list[tuple[int, int]] = field(default_factory=list)
    reached_cutoff: bool = False
    error: ObjectError | None = None
    # The wall's count when its head was last read; posts published while paging land there.
    head_count: int | None = None
    head_rounds: int = 0


HEAD = "head"
MAX_HEAD_ROUNDS = 3


def _wall_call(owner_id: int, offset: int) -> Call:
    return Call("wall.get", {"owner_id": owner_id, "offset": offset, "count": PAGE_SIZE})


def fetch_walls(
    client: VKClient,
    requests: Iterable[WallRequest],
    *,
    on_page: Callable[[WallResult], None] | None = None,
    max_in_flight: int = 100,
    chunk_posts: int | None = None,
) -> Iterator[WallResult]:
    """Every post (or every post since a date) of many walls, newest first, one result per wall.

    With `chunk_posts`, a wall's posts are handed out as they arrive, `chunk_posts` at a time
    (results with `final` False), so memory stays bounded by the chunk, not the wall.

    Offsets drift while new posts arrive (everything moves down) or old ones go (everything moves
    up): each page's `count` says by how much, later offsets follow it, and posts are deduped by
    id. Posts published while the wall was paged sit at its head, ahead of where paging began:
    when the count grew, the head is read again once the scan is done. The pinned post comes
    first whatever its date, so it never ends a `since` scan.
    """

    def keep(wall: _Wall, post: dict[str, Any]) -> None:
        since = wall.request.since
        if since is not None and post["date"] < since:
            wall.reached_cutoff = wall.reached_cutoff or not post.get("is_pinned")
            return
        add(wall, post)

    def add(wall: _Wall, post: dict[str, Any]) -> None:
        if post["id"] not in wall.ids:
            wall.ids.add(post["id"])
            wall.posts.append(post)
            if chunk_posts and len(wall.posts) >= chunk_posts:
                outbox.append(_wall_result(wall_jobs[wall.request.owner_id], final=False))
                wall.posts = []

    def absorb(job: _Job[int, _Wall], task: _Task[int], page: Any) -> list[_Task[int]]:
        wall = job.state
        wall_jobs[job.key] = job
        if isinstance(page, ObjectError):
            # The wall is (or became) unreadable: keep what was read, say why it stopped.
            wall.error = page
            return []
        wall.latest_count = page["count"]
        if wall.base_count is None:
            wall.base_count = wall.head_count = page["count"]
        if task.info == HEAD:
            for post in page["items"]:
                if not (wall.request.since is not None and post["date"] < wall.request.since):
                    add(wall, post)
        else:
            # Posts that arrived since the first page pushed everything down by the count's
            # growth (deleted ones pulled it up): this page holds base positions shifted back.
            start = task.info - (page["count"] - wall.base_count)
            wall.covered.append((start, start + max(len(page["items"]), 1)))
            for post in page["items"]:
                keep(wall, post)
        if on_page:
            on_page(_wall_result(job))
        if job.pending > 0 or wall.error:
            return []
        follow_ups = [] if wall.reached_cutoff else _next_pages(job, wall)
        return follow_ups or _head_pages(job, wall)

    def seeds() -> Iterator[tuple[int, _Wall, list[_Task[int]]]]:
        for request in requests:
            first = _Task(request.owner_id, _wall_call(request.owner_id, 0), 0)
            yield request.owner_id, _Wall(request), [first]

    def _next_pages(job: _Job[int, _Wall], wall: _Wall) -> list[_Task[int]]:
        for lo, hi in sorted(wall.covered):
            if lo <= wall.frontier:
                wall.frontier = max(wall.frontier, hi)
        wall.covered.clear()
        # With a cutoff the next page most likely ends the scan: ask for one page at a time.
        width = 1 if wall.request.since is not None else client.execute_batch_size
        assert wall.base_count is not None
        shift = wall.latest_count - wall.base_count
        follow_ups = []
        for k in range(width):
            offset = wall.frontier + k * PAGE_SIZE + shift
            if offset >= wall.latest_count:
                break
            follow_ups.append(_Task(job.key, _wall_call(job.key, offset), offset))
        return follow_ups

    def _head_pages(job: _Job[int, _Wall], wall: _Wall) -> list[_Task[int]]:
        assert wall.head_count is not None
        grown = wall.latest_count - wall.head_count
        if grown <= 0 or wall.head_rounds >= MAX_HEAD_ROUNDS:
            return []
        wall.head_count = wall.latest_count
        wall.head_rounds += 1
        # A pinned post holds offset 0, so the newcomers may start at 1: read one more.
        return [
            _Task(job.key, _wall_call(job.key, offset), HEAD)
            for offset in range(0, grown + 1, PAGE_SIZE)
        ]

    outbox: list[WallResult] = []
    wall_jobs: dict[int, _Job[int, _Wall]] = {}
    for job in _drive(client, seeds(), absorb, max_in_flight, heartbeat=bool(chunk_posts)):
        yield from outbox
        outbox.clear()
        if job is not None:
            wall_jobs.pop(job.key, None)
            yield _wall_result(job)


def _wall_result(job: _Job[int, _Wall], *, final: bool = True) -> WallResult:
    wall = job.state
    return WallResult(
        owner_id=job.key,
        posts=list(wall.posts),
        total=wall.latest_count if wall.base_count is not None else None,
        error=wall.error,
        complete=not wall.reached_cutoff and wall.error is None,
        cost=job.cost,
        final=final,
        ids=set(wall.ids) if final else set(),
        read=len(wall.ids),
    )


def fetch_wall(
    client: VKClient,
    owner_id: int,
    *,
    since: int | None = None,
    on_page: Callable[[WallResult], None] | None = None,
) -> WallResult:
    """One wall; see `fetch_walls`."""
    [result] = fetch_walls(client, [WallRequest(owner_id, since)], on_page=on_page)
    return result


# -- comments ----------------------------------------------------------------------------------


@dataclass
class _Comments:
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    error: ObjectError | None = None


def fetch_comments(
    client: VKClient,
    posts: Iterable[PostRef],
    *,
    threads: bool = True,
    need_likes: bool = True,
    max_posts_in_flight: int = 200,
) -> Iterator[CommentsResult]:
    """Every comment and reply of every post, one result per post as soon as it is complete.

    Top-level pages carry the first `THREAD_ITEMS_INLINE` replies of each thread inline, so only
    longer threads cost calls of their own (`comment_id` paging). At most `max_posts_in_flight`
    posts are held in memory at once.
    """
    base = {"count": PAGE_SIZE, "sort": "asc", "preview_length": 0, "need_likes": int(need_likes)}

    def page(ref: PostRef, offset: int, thread_of: int | None = None) -> _Task[PostRef]:
        params = {
            **base,
            "owner_id": ref.owner_id,
            "post_id": ref.post_id,
            "offset": offset,
            "thread_items_count": THREAD_ITEMS_INLINE if threads and thread_of is None else 0,
        }
        if thread_of is not None:
            params["comment_id"] = thread_of
        return _Task(ref, Call("wall.getComments", params), (offset, thread_of))

    def absorb(
        job: _Job[PostRef, _Comments], task: _Task[PostRef], result: Any
    ) -> list[_Task[PostRef]]:
        offset, thread_of = task.info
        state = job.state
        if isinstance(result, ObjectError):
            # Only a refusal of the post itself (its first page) makes the post's result an
            # error; a thread that vanished between pages is simply shorter.
            if thread_of is None and offset == 0:
                state.error = result
            return []
        follow_ups: list[_Task[PostRef]] = []
        items = result.get("items", [])
        if thread_of is None:
            if offset == 0:
                level_total = result.get("current_level_count", result.get("count", 0))
                follow_ups.extend(
                    page(job.key, o) for o in range(PAGE_SIZE, level_total, PAGE_SIZE)
                )
            for comment in items:
                thread = comment.get("thread") or {}
                inline = thread.get("items") or []
                for reply in inline:
                    state.comments.setdefault(reply["id"], reply)
                replies = thread.get("count", 0)
                if threads and replies > len(inline):
                    follow_ups.extend(
                        page(job.key, o, comment["id"]) for o in range(0, replies, PAGE_SIZE)
                    )
        for comment in items:
            state.comments[comment["id"]] = comment
        return follow_ups

    seeds = ((ref, _Comments(), [page(ref, 0)]) for ref in posts)
    for job in _drive(client, seeds, absorb, max_posts_in_flight):
        yield CommentsResult(job.key, list(job.state.comments.values()), job.state.error, job.cost)
