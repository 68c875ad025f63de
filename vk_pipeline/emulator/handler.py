"""HTTP side of the emulator: VK's wire format on /method/*, transport faults, /_emulator/*."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from vk_pipeline.emulator.faults import FaultSpec

if TYPE_CHECKING:
    from vk_pipeline.emulator.server import EmulatorServer

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
_CAPTCHA_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Я не робот</title></head><body>"
    "<p>VK emulator: on VK a person would prove here that they are not a robot. The emulator's "
    "captcha is lifted through POST /_emulator/captcha only.</p></body></html>"
).encode()
_ADVANCE_ARGS = frozenset({"days", "new_posts", "commented_posts", "edits", "deletions"})


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emu: EmulatorServer


def serve(emu: EmulatorServer, host: str, port: int) -> tuple[_HttpServer, threading.Thread]:
    httpd = _HttpServer((host, port), _Handler)
    httpd.emu = emu
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = f"vk-emulator-{httpd.server_address[1]}"
    thread.start()
    return httpd, thread


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
        emu = self.server.emu
        arrival = emu.clock()
        parts = urlsplit(self.path)
        body = self._read_body()
        path = parts.path
        try:
            if path.startswith("/method/"):
                self._api(emu, path[len("/method/") :], parts.query, body, arrival)
            elif path.startswith("/_emulator/"):
                self._control(emu, path[len("/_emulator/") :], parts.query, body)
            elif path == "/oauth2/auth":
                self._vkid(emu, parts.query, body)
            elif path == "/not_robot_captcha" and self.command == "GET":
                self._send(200, _CAPTCHA_PAGE, "text/html; charset=utf-8")
            else:
                self._send(404, b"<html><body>404 Not Found</body></html>", "text/html")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _form(self, query: str, body: bytes) -> dict[str, str]:
        """Query string plus an urlencoded or multipart body (body wins), as VK reads them."""
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
        return params

    # ------------------------------------------------------------------ /oauth2/auth

    def _vkid(self, emu: EmulatorServer, query: str, body: bytes) -> None:
        if self.command != "POST":
            self._send(405, b"<html><body>405 Not Allowed</body></html>", "text/html")
            return
        # VK's web SDK sends grant_type/client_id/device_id/state in the query string and the
        # refresh token in the body; the Android and iOS SDKs send everything in the body.
        status, data = emu.vkid_refresh(self._form(query, body))
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")  # RFC 6749 §5.1, for token answers
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ------------------------------------------------------------------ /method/*

    def _api(
        self, emu: EmulatorServer, method: str, query: str, body: bytes, arrival: float
    ) -> None:
        if self.command not in ("GET", "POST"):
            self._send(405, b"<html><body>405 Not Allowed</body></html>", "text/html")
            return
        params = self._form(query, body)
        token = params.pop("access_token", None)
        auth = self.headers.get("Authorization", "")
        if not token and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()

        emu.count_http(method, token)
        decision = emu.decide_faults(method)
        if decision.transport in ("http_5xx", "non_json"):
            # A frontend failure: nothing reaches the API (no rate window, quota or call).
            emu.count_fault(token, decision.transport)
            if decision.slow_seconds:
                emu.count_fault(token, "slow")
                emu.sleep(decision.slow_seconds)
            if decision.transport == "http_5xx":
                page = f"<html><body><h1>{_HTML_5XX[decision.status]}</h1></body></html>"
                self._send(decision.status, page.encode(), "text/html")
            else:
                self._send(200, _NON_JSON_BODY, "text/html; charset=utf-8")
            return
        data = emu.handle_api(method, params, token, arrival, decision.error_code)
        if decision.slow_seconds:
            emu.count_fault(token, "slow")
            emu.sleep(decision.slow_seconds)
        if decision.transport == "drop":
            # The request was processed (limits and quotas consumed) but the answer is lost.
            emu.count_fault(token, "drop")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if decision.transport == "truncated":
            # Processed too; a well-formed HTTP 200 whose JSON body stops part-way.
            emu.count_fault(token, "truncated")
            data = data[: 1 + int(decision.cut * (len(data) - 1))]
        self._send(200, data)

    # ------------------------------------------------------------------ /_emulator/*

    def _control(self, emu: EmulatorServer, what: str, query: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("JSON object expected")
            result = _control_result(emu, self.command, what, dict(parse_qsl(query)), payload)
        except (ValueError, TypeError, KeyError) as e:
            self._send(400, json.dumps({"error": str(e)}).encode())
            return
        if result is None:
            self._send(404, json.dumps({"error": f"unknown endpoint {what}"}).encode())
            return
        self._send(200, json.dumps(result, ensure_ascii=False).encode())


def _token_ref(payload: dict[str, Any]) -> dict[str, Any] | None:
    """{"token": ...} or {"token_key": sha256[:8]} in a control request, if any."""
    if "token" in payload:
        return {"token": str(payload["token"])}
    if "token_key" in payload:
        return {"token": None, "key": str(payload["token_key"])}
    return None


def _control_result(
    emu: EmulatorServer, cmd: str, what: str, query: dict[str, str], payload: dict[str, Any]
) -> Any:
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
        ref = _token_ref(payload)
        if ref is not None:
            rate = payload.get("rate")
            emu.set_token_rate(**ref, rate=None if rate is None else float(rate))
            return {"ok": True, "rate": emu.token_rate(**ref)}
        group_rate, service_rate = payload.get("group_rate"), payload.get("service_rate")
        emu.set_rate(
            float(payload["rate"]),
            None if group_rate is None else float(group_rate),
            None if service_rate is None else float(service_rate),
        )
        return {"ok": True}
    if what == "tokens" and cmd == "GET":
        return emu.tokens()
    if what == "token" and cmd == "POST":
        ref = _token_ref(payload)
        if ref is None:
            raise ValueError("token or token_key is required")
        if payload.get("revoke"):
            emu.revoke_token(**ref)
        if payload.get("expire"):
            emu.expire_token(**ref)
        return {"ok": True, "tokens": emu.tokens()}
    if what == "captcha" and cmd == "POST":
        ref = _token_ref(payload)
        if ref is None:
            raise ValueError("token or token_key is required")
        requests, seconds = payload.get("requests"), payload.get("seconds")
        emu.require_captcha(
            **ref,
            requests=None if requests is None else int(requests),
            seconds=None if seconds is None else float(seconds),
        )
        return {"ok": True, "tokens": emu.tokens()}
    if what == "vkid":
        if cmd == "GET":
            return {"access_ttl": emu.vkid.access_ttl, "clients": emu.vkid.snapshot()}
        if cmd == "POST":
            if "access_ttl" in payload:
                emu.vkid.set_access_ttl(float(payload["access_ttl"]))
            if "client_id" in payload:
                cid = str(payload["client_id"])
                if payload.get("revoke_refresh"):
                    emu.vkid.revoke_refresh(cid)
                if "refresh_token" in payload:
                    emu.vkid.add_client(cid, str(payload["refresh_token"]))
            return {"ok": True, "clients": emu.vkid.snapshot()}
    if what == "quota":
        if cmd == "GET":
            return emu.quotas()
        if cmd == "POST":
            ref = _token_ref(payload)
            if ref is None:
                raise ValueError("token or token_key is required")
            method = str(payload.get("method", "wall.get"))
            if payload.get("exhaust"):
                emu.exhaust_quota(**ref, method=method)
            if "limit" in payload:
                limit = payload["limit"]
                emu.set_token_quota(
                    **ref, method=method, limit=None if limit is None else int(limit)
                )
            return {"ok": True, "quotas": emu.quotas()}
    if what == "advance" and cmd == "POST":
        bad = set(payload) - _ADVANCE_ARGS
        if bad:
            raise ValueError(f"unknown advance arguments: {sorted(bad)}")
        return emu.advance(**{k: float(v) for k, v in payload.items()})
    return None
