"""HTTP front of the emulator: VK's wire format, auth, rate limits, quotas, faults, stats.

Only the standard library is used (http.server.ThreadingHTTPServer). The server never logs or
stores tokens: they appear only as `sha256(token)[:8]` in stats.
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vk_pipeline.emulator import vkscript
from vk_pipeline.emulator.faults import INJECTED_ERRORS, Decision, FaultInjector, FaultSpec
from vk_pipeline.emulator.methods import (
    GROUP_AUTH_MSG,
    PARAM_ERR,
    USER_ONLY,
    ApiError,
    CallContext,
    call_method,
    parse_version,
)
from vk_pipeline.emulator.world import World, WorldSpec

DEMO_TOKEN = "vk-emulator-demo-token"
QUOTA_PERIOD_SECONDS = 86_400.0
RATE_WINDOW_SECONDS = 1.0
_HTML_5XX = {
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}
_NON_JSON_BODY = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ВКонтакте</title></head>"
    "<body><p>Сервис временно недоступен. Попробуйте позже.</p></body></html>"
).encode()


def token_key(token: str | None) -> str:
    if not token:
        return "none"
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def dumps_vk(obj: Any) -> bytes:
    # VK emits compact UTF-8 JSON and escapes "/" as "\/" (only legal inside strings).
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode("utf-8")


def _empty_counters() -> dict[str, Any]:
    return {"http_requests": 0, "api_calls": 0, "errors": {}}


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._data = {**_empty_counters(), "by_method": {}, "by_token": {}, "faults": {}}

    def _scopes(self, tkey: str, method: str) -> list[dict[str, Any]]:
        d = self._data
        tok = d["by_token"].setdefault(tkey, {**_empty_counters(), "by_method": {}})
        return [
            d,
            d["by_method"].setdefault(method, _empty_counters()),
            tok,
            tok["by_method"].setdefault(method, _empty_counters()),
        ]

    def bump(self, tkey: str, method: str, what: str) -> None:
        with self._lock:
            for scope in self._scopes(tkey, method):
                scope[what] += 1

    def error(self, tkey: str, method: str, code: int) -> None:
        key = str(code)
        with self._lock:
            for scope in self._scopes(tkey, method):
                scope["errors"][key] = scope["errors"].get(key, 0) + 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._data["faults"][kind] = self._data["faults"].get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._data)


@dataclass
class _TokenState:
    kind: str  # "user" | "group"
    key: str
    window: deque[float] = field(default_factory=deque)
    wall_get_used: int = 0


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emu: EmulatorServer


class EmulatorServer:
    """A local VK API over HTTP; see the package README for the behaviour it reproduces."""

    def __init__(
        self,
        world: World | None = None,
        *,
        rate: float = 3,
        group_rate: float | None = None,
        tokens: Iterable[str] | None = None,
        group_tokens: Iterable[str] = (),
        wall_get_daily_quota: int = 5000,
        max_response_bytes: int = 5_000_000,
        max_execute_calls: int = 25,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world if world is not None else World(WorldSpec())
        self.host = host
        self._port = port
        self._rate = float(rate)
        self._group_rate = None if group_rate is None else float(group_rate)
        self.wall_get_daily_quota = wall_get_daily_quota
        self.max_response_bytes = max_response_bytes
        self.max_execute_calls = max_execute_calls
        user_tokens = list(tokens or []) or [DEMO_TOKEN]
        self._tokens: dict[str, _TokenState] = {}
        for t in user_tokens:
            self._tokens[t] = _TokenState("user", token_key(t))
        for t in group_tokens:
            self._tokens[t] = _TokenState("group", token_key(t))
        self._state_lock = threading.Lock()
        self._quota_started = time.monotonic()
        self._faults = FaultInjector(seed)
        self._stats = _Stats()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        httpd = _HttpServer((self.host, self._port), _Handler)
        httpd.emu = self
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"vk-emulator-{self._port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/method"

    @property
    def rate(self) -> float:
        """Allowed requests per sliding second for user tokens."""
        return self._rate

    @property
    def group_rate(self) -> float:
        return self._rate if self._group_rate is None else self._group_rate

    @property
    def token_count(self) -> int:
        return len(self._tokens)

    # ------------------------------------------------------------------ control

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def reset_quota(self) -> None:
        with self._state_lock:
            self._quota_started = time.monotonic()
            for st in self._tokens.values():
                st.wall_get_used = 0

    def set_faults(self, method: str, spec: FaultSpec) -> None:
        self._faults.set(method, spec)

    def clear_faults(self, method: str | None = None) -> None:
        self._faults.clear(method)

    def faults(self) -> dict[str, dict[str, float]]:
        return self._faults.snapshot()

    def set_rate(self, rate: float, group_rate: float | None = None) -> None:
        with self._state_lock:
            self._rate = float(rate)
            if group_rate is not None:
                self._group_rate = float(group_rate)

    def advance(self, **kwargs: Any) -> dict[str, Any]:
        return self.world.advance(**kwargs)

    # ------------------------------------------------------------------ API core

    def _admit(self, st: _TokenState, arrival: float) -> bool:
        """Sliding 1 s window over accepted arrivals; rejected requests don't count."""
        with self._state_lock:
            limit = (
                self._rate if st.kind == "user" or self._group_rate is None else self._group_rate
            )
            win = st.window
            while win and win[0] <= arrival - RATE_WINDOW_SECONDS:
                win.popleft()
            if len(win) >= limit:
                return False
            win.append(arrival)
            return True

    def _take_quota(self, st: _TokenState) -> bool:
        with self._state_lock:
            now = time.monotonic()
            if now - self._quota_started >= QUOTA_PERIOD_SECONDS:
                self._quota_started = now
                for other in self._tokens.values():
                    other.wall_get_used = 0
            if st.wall_get_used >= self.wall_get_daily_quota:
                return False
            st.wall_get_used += 1
            return True

    def _invoke(
        self, method: str, params: dict[str, str], st: _TokenState, ctx: CallContext
    ) -> Any:
        """One non-execute method call, direct or inside execute (counts as an api call)."""
        self._stats.bump(st.key, method, "api_calls")
        if st.kind == "group" and method in USER_ONLY:
            raise ApiError(27, GROUP_AUTH_MSG)
        if method == "wall.get" and not self._take_quota(st):
            raise ApiError(29, "Rate limit reached")
        return call_method(self.world, method, params, ctx)

    def _execute(
        self, params: dict[str, str], st: _TokenState, ctx: CallContext
    ) -> tuple[Any, list[dict[str, Any]]]:
        code = params.get("code")
        if code is None or not code.strip():
            raise ApiError(100, f"{PARAM_ERR}code is undefined")
        try:
            prog = vkscript.parse(code)
        except vkscript.CompileError:
            raise ApiError(12, "Unable to compile code") from None
        errors: list[dict[str, Any]] = []

        def inner(method: str, p: dict[str, str]) -> Any:
            try:
                injected = self._faults.inner_error(method)
                if injected is not None:
                    self._stats.bump(st.key, method, "api_calls")
                    self._stats.fault(f"error_{injected}")
                    raise ApiError(injected, INJECTED_ERRORS[injected])
                if method == "execute":
                    raise ApiError(3, "Unknown method passed")
                return self._invoke(method, p, st, ctx)
            except ApiError as e:
                self._stats.error(st.key, method, e.code)
                # A failed inner call yields `false` in its slot plus an execute_errors entry.
                errors.append({"method": method, "error_code": e.code, "error_msg": e.msg})
                return False

        args = {k: v for k, v in params.items() if k not in ("code", "v")}
        interp = vkscript.Interpreter(inner, args, max_calls=self.max_execute_calls)
        try:
            result = interp.run(prog)
        except vkscript.ScriptRuntimeError as e:
            raise ApiError(13, f"Runtime error occurred during code invocation: {e}") from None
        return result, errors

    def handle_api(
        self, method: str, params: dict[str, str], token: str | None, arrival: float
    ) -> bytes:
        """Process one /method/<name> request and return the JSON body (always HTTP 200)."""
        st = self._tokens.get(token) if token else None
        tkey = st.key if st is not None else token_key(token)
        try:
            if not token:
                raise ApiError(5, "User authorization failed: no access_token passed.")
            if st is None:
                raise ApiError(5, "User authorization failed: invalid access_token (4).")
            if not self._admit(st, arrival):
                raise ApiError(6, "Too many requests per second")
            v = params.get("v", "").strip()
            if not v:
                raise ApiError(8, "Invalid request: v (version) is required")
            version = parse_version(v)
            if version is None:
                raise ApiError(8, "Invalid request: v (version) is invalid")
            ctx = CallContext(st.kind, version)
            if method == "execute":
                result, errors = self._execute(params, st, ctx)
                body: dict[str, Any] = {"response": result}
                if errors:
                    body["execute_errors"] = errors
                data = dumps_vk(body)
                if len(data) > self.max_response_bytes:
                    raise ApiError(
                        13,
                        "Runtime error occurred during code invocation: response size is too big",
                    )
                return data
            return dumps_vk({"response": self._invoke(method, params, st, ctx)})
        except ApiError as e:
            self._stats.error(tkey, method, e.code)
            return self._error_body(e, method, params)

    def inject_error(
        self, method: str, token: str | None, code: int, params: dict[str, str]
    ) -> bytes:
        st = self._tokens.get(token) if token else None
        tkey = st.key if st is not None else token_key(token)
        if method != "execute":
            # The error stands for the method failing, so the call reached it (as in execute).
            self._stats.bump(tkey, method, "api_calls")
        self._stats.error(tkey, method, code)
        self._stats.fault(f"error_{code}")
        return self._error_body(ApiError(code, INJECTED_ERRORS[code]), method, params)

    @staticmethod
    def _error_body(e: ApiError, method: str, params: dict[str, str]) -> bytes:
        req = [{"key": "oauth", "value": "1"}, {"key": "method", "value": method}]
        # access_token never reaches `params` (it is split off on parsing).
        req += [{"key": k, "value": v} for k, v in params.items()]
        return dumps_vk(
            {"error": {"error_code": e.code, "error_msg": e.msg, "request_params": req}}
        )

    def decide_faults(self, method: str) -> Decision:
        return self._faults.decide(method)

    def count_http(self, method: str, token: str | None) -> None:
        st = self._tokens.get(token) if token else None
        self._stats.bump(st.key if st is not None else token_key(token), method, "http_requests")

    def count_fault(self, kind: str) -> None:
        self._stats.fault(kind)

    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def admit_for_fault(self, token: str | None, arrival: float) -> bool:
        """Injected API errors come from the API layer, so they still pass auth and rate."""
        st = self._tokens.get(token) if token else None
        return st is not None and self._admit(st, arrival)


def _parse_multipart(ctype_header: str, body: bytes) -> list[tuple[str, str]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype_header.encode("latin-1") + b"\r\n\r\n" + body
    )
    out: list[tuple[str, str]] = []
    if not msg.is_multipart():
        return out
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        out.append((str(name), payload.decode(charset, "replace")))
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kittenx"  # the Server header VK's API frontends send
    sys_version = ""
    # Headers and body go out in separate writes; with Nagle + delayed ACK each keep-alive
    # request would otherwise stall ~40 ms.
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        # The default access log prints the query string, which may carry access_token.
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(
        self, status: int, body: bytes, ctype: str = "application/json; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        arrival = time.monotonic()
        emu = self.server.emu
        parts = urlsplit(self.path)
        body = self._read_body()
        path = parts.path
        try:
            if path.startswith("/method/"):
                self._api(emu, path[len("/method/") :], parts.query, body, arrival)
            elif path.startswith("/_emulator/"):
                self._control(emu, path[len("/_emulator/") :], parts.query, body)
            else:
                self._send(404, b"<html><body>404 Not Found</body></html>", "text/html")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ------------------------------------------------------------------ /method/*

    def _api(
        self, emu: EmulatorServer, method: str, query: str, body: bytes, arrival: float
    ) -> None:
        if self.command not in ("GET", "POST"):
            self._send(405, b"<html><body>405 Not Allowed</body></html>", "text/html")
            return
        pairs = parse_qsl(query, keep_blank_values=True)
        ctype_header = self.headers.get("Content-Type", "")
        ctype = ctype_header.split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype == "multipart/form-data":
            pairs += _parse_multipart(ctype_header, body)
        # Any other body (application/json included) is not read by VK: its parameters are
        # simply absent, which surfaces as error 5 (no token) or 8/100 (missing params).
        params: dict[str, str] = {}
        for k, v in pairs:
            params[k] = v
        token = params.pop("access_token", None)
        auth = self.headers.get("Authorization", "")
        if not token and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()

        emu.count_http(method, token)
        decision = emu.decide_faults(method)
        if decision.transport == "http_5xx":
            emu.count_fault("http_5xx")
            status = decision.status
            if decision.slow_seconds:
                emu.count_fault("slow")
                emu.sleep(decision.slow_seconds)
            self._send(
                status,
                f"<html><body><h1>{_HTML_5XX[status]}</h1></body></html>".encode(),
                "text/html",
            )
            return
        if decision.transport == "non_json":
            emu.count_fault("non_json")
            if decision.slow_seconds:
                emu.count_fault("slow")
                emu.sleep(decision.slow_seconds)
            self._send(200, _NON_JSON_BODY, "text/html; charset=utf-8")
            return
        if decision.error_code is not None and emu.admit_for_fault(token, arrival):
            data = emu.inject_error(method, token, decision.error_code, params)
        else:
            data = emu.handle_api(method, params, token, arrival)
        if decision.slow_seconds:
            emu.count_fault("slow")
            emu.sleep(decision.slow_seconds)
        if decision.transport == "drop":
            # The request was processed (limits and quotas consumed) but the answer is lost.
            emu.count_fault("drop")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, data)

    # ------------------------------------------------------------------ /_emulator/*

    def _control(self, emu: EmulatorServer, what: str, query: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("JSON object expected")
            result = self._control_result(emu, what, dict(parse_qsl(query)), payload)
        except (ValueError, TypeError) as e:
            self._send(400, json.dumps({"error": str(e)}).encode())
            return
        if result is None:
            self._send(404, json.dumps({"error": f"unknown endpoint {what}"}).encode())
            return
        self._send(200, json.dumps(result, ensure_ascii=False).encode())

    def _control_result(
        self, emu: EmulatorServer, what: str, query: dict[str, str], payload: dict[str, Any]
    ) -> Any:
        cmd = self.command
        if what == "stats" and cmd == "GET":
            return emu.stats()
        if what == "health" and cmd == "GET":
            return {"ok": True, "now": emu.world.now, "base_url": emu.base_url}
        if what == "reset" and cmd == "POST":
            emu.reset_stats()
            if payload.get("quota"):
                emu.reset_quota()
            return {"ok": True}
        if what == "reset_quota" and cmd == "POST":
            emu.reset_quota()
            return {"ok": True}
        if what == "faults":
            if cmd == "GET":
                return emu.faults()
            if cmd == "POST":
                method = str(payload.pop("method", "*"))
                emu.set_faults(method, FaultSpec.from_dict(payload))
                return {"ok": True, "faults": emu.faults()}
            if cmd == "DELETE":
                emu.clear_faults(query.get("method") or payload.get("method"))
                return {"ok": True, "faults": emu.faults()}
        if what == "rate" and cmd == "POST":
            emu.set_rate(float(payload["rate"]), payload.get("group_rate"))
            return {"ok": True}
        if what == "advance" and cmd == "POST":
            allowed = {"days", "new_posts", "commented_posts", "edits", "deletions"}
            bad = set(payload) - allowed
            if bad:
                raise ValueError(f"unknown advance arguments: {sorted(bad)}")
            return emu.advance(**{k: float(v) for k, v in payload.items()})
        return None


__all__ = ["DEMO_TOKEN", "EmulatorServer", "FaultSpec", "dumps_vk", "token_key"]
