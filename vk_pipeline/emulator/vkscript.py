"""A small VKScript interpreter: the subset of `execute` code that API clients send.

Supported: `var a = expr, b = expr;`, assignment `a = expr;`, `return expr;`, expression
statements, literals (numbers incl. negative and fractional, strings in single or double quotes
with JSON/JS escapes, true/false/null), arrays, objects with bare or quoted keys (trailing
commas allowed), `API.<section>.<method>(<object>?)`, `Args.<name>`, variables, property access
`.name` / `[expr]`, parentheses, unary minus and the binary operators `+ - * /`.
Comments `// ...` and `/* ... */` are skipped. Not supported (compile error 12): control flow
(`if`, `while`), the `@.` projection operator and method calls on values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>[{}\[\](),:;.=+\-*/])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


class CompileError(Exception):
    """Unparseable code: VK error 12 "Unable to compile code"."""


class ScriptRuntimeError(Exception):
    """VK error 13 "Runtime error occurred during code invocation: <msg>"."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, name, op, eof
    value: str
    pos: int


def _unescape(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise CompileError(f"bad escape at {pos + i}")
        esc = body[i + 1]
        if esc == "u":
            hexs = body[i + 2 : i + 6]
            if len(hexs) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexs):
                raise CompileError(f"bad \\u escape at {pos + i}")
            out.append(chr(int(hexs, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(esc, esc))
        i += 2
    text = "".join(out)
    # \uD83D\uDE00-style surrogate pairs (what JSON encoders emit for emoji) -> one code point.
    return text.encode("utf-16", "surrogatepass").decode("utf-16")


def tokenize(code: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(code):
        m = _TOKEN_RE.match(code, pos)
        if m is None:
            raise CompileError(f"unexpected character {code[pos]!r} at {pos}")
        kind = m.lastgroup
        assert kind is not None
        text = m.group()
        if kind == "str":
            toks.append(_Tok("str", _unescape(text[1:-1], pos + 1), pos))
        elif kind != "ws":
            toks.append(_Tok(kind, text, pos))
        pos = m.end()
    toks.append(_Tok("eof", "", pos))
    return toks


# ---------------------------------------------------------------------- AST


@dataclass
class Lit:
    value: Any


@dataclass
class Arr:
    items: list[Any]


@dataclass
class Obj:
    items: list[tuple[str, Any]]


@dataclass
class Var:
    name: str


@dataclass
class ArgRef:
    name: str


@dataclass
class Call:
    method: str
    arg: Any | None


@dataclass
class Member:
    target: Any
    key: Any  # expression node


@dataclass
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass
class Neg:
    operand: Any


@dataclass
class Assign:
    name: str
    expr: Any


@dataclass
class Return:
    expr: Any


@dataclass
class ExprStmt:
    expr: Any


@dataclass
class Program:
    body: list[Any] = field(default_factory=list)
    api_calls: int = 0  # static count of API.* call sites


class _Parser:
    def __init__(self, code: str) -> None:
        self.toks = tokenize(code)
        self.i = 0
        self.vars: set[str] = set()
        self.calls = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, value: str | None = None) -> _Tok | None:
        tok = self.peek()
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, value: str | None = None) -> _Tok:
        tok = self.accept(kind, value)
        if tok is None:
            got = self.peek()
            raise CompileError(f"expected {value or kind} at {got.pos}, got {got.value!r}")
        return tok

    def program(self) -> Program:
        prog = Program()
        while self.peek().kind != "eof":
            if self.accept("op", ";"):
                continue
            prog.body.extend(self.statement())
        prog.api_calls = self.calls
        return prog

    def _end_statement(self) -> None:
        if not self.accept("op", ";") and self.peek().kind != "eof":
            tok = self.peek()
            raise CompileError(f"expected ; at {tok.pos}, got {tok.value!r}")

    def statement(self) -> list[Any]:
        tok = self.peek()
        if tok.kind == "name" and tok.value == "var":
            self.next()
            decls: list[Any] = []
            while True:
                name = self.expect("name").value
                expr = self.expression() if self.accept("op", "=") else Lit(None)
                self.vars.add(name)
                decls.append(Assign(name, expr))
                if not self.accept("op", ","):
                    break
            self._end_statement()
            return decls
        if tok.kind == "name" and tok.value == "return":
            self.next()
            expr = self.expression()
            self._end_statement()
            return [Return(expr)]
        if tok.kind == "name" and tok.value in ("if", "while", "for", "function", "delete"):
            raise CompileError(f"unsupported statement {tok.value!r} at {tok.pos}")
        if (
            tok.kind == "name"
            and self.toks[self.i + 1].kind == "op"
            and self.toks[self.i + 1].value == "="
        ):
            if tok.value not in self.vars:
                raise CompileError(f"assignment to undeclared variable {tok.value!r}")
            self.i += 2
            expr = self.expression()
            self._end_statement()
            return [Assign(tok.value, expr)]
        expr = self.expression()
        self._end_statement()
        return [ExprStmt(expr)]

    def expression(self) -> Any:
        left = self.term()
        while (tok := self.peek()).kind == "op" and tok.value in "+-":
            self.next()
            left = BinOp(tok.value, left, self.term())
        return left

    def term(self) -> Any:
        left = self.unary()
        while (tok := self.peek()).kind == "op" and tok.value in "*/":
            self.next()
            left = BinOp(tok.value, left, self.unary())
        return left

    def unary(self) -> Any:
        if self.accept("op", "-"):
            operand = self.unary()
            if isinstance(operand, Lit) and isinstance(operand.value, int | float):
                return Lit(-operand.value)
            return Neg(operand)
        if self.accept("op", "+"):
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            if self.accept("op", "."):
                node = Member(node, Lit(self.expect("name").value))
            elif self.accept("op", "["):
                key = self.expression()
                self.expect("op", "]")
                node = Member(node, key)
            elif self.peek().kind == "op" and self.peek().value == "(":
                raise CompileError(f"calling a value is not supported at {self.peek().pos}")
            else:
                return node

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind == "num":
            f = float(tok.value)
            return Lit(int(tok.value) if tok.value.isdigit() else f)
        if tok.kind == "str":
            return Lit(tok.value)
        if tok.kind == "op" and tok.value == "(":
            expr = self.expression()
            self.expect("op", ")")
            return expr
        if tok.kind == "op" and tok.value == "[":
            items: list[Any] = []
            while not self.accept("op", "]"):
                items.append(self.expression())
                if not self.accept("op", ","):
                    self.expect("op", "]")
                    break
            return Arr(items)
        if tok.kind == "op" and tok.value == "{":
            pairs: list[tuple[str, Any]] = []
            while not self.accept("op", "}"):
                key_tok = self.next()
                if key_tok.kind not in ("name", "str", "num"):
                    raise CompileError(f"bad object key at {key_tok.pos}")
                self.expect("op", ":")
                pairs.append((key_tok.value, self.expression()))
                if not self.accept("op", ","):
                    self.expect("op", "}")
                    break
            return Obj(pairs)
        if tok.kind == "name":
            if tok.value == "true":
                return Lit(True)
            if tok.value == "false":
                return Lit(False)
            if tok.value == "null":
                return Lit(None)
            if tok.value == "API":
                parts = []
                while self.accept("op", "."):
                    parts.append(self.expect("name").value)
                if len(parts) != 2:
                    raise CompileError(f"bad API method name at {tok.pos}")
                self.expect("op", "(")
                arg = None if self.peek().value == ")" else self.expression()
                self.expect("op", ")")
                self.calls += 1
                return Call(".".join(parts), arg)
            if tok.value == "Args":
                self.expect("op", ".")
                return ArgRef(self.expect("name").value)
            if tok.value in self.vars:
                return Var(tok.value)
            raise CompileError(f"undefined identifier {tok.value!r} at {tok.pos}")
        raise CompileError(f"unexpected {tok.value or 'end of code'!r} at {tok.pos}")


def parse(code: str) -> Program:
    return _Parser(code).program()


def to_param(value: Any) -> str | None:
    """How VK turns a VKScript value into a method parameter string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(p for p in (to_param(v) for v in value) if p is not None)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


ApiCaller = Callable[[str, dict[str, str]], Any]


class Interpreter:
    def __init__(self, call_api: ApiCaller, args: dict[str, str], max_calls: int = 25) -> None:
        self.call_api = call_api
        self.args = args
        self.max_calls = max_calls
        self.calls = 0
        self.env: dict[str, Any] = {}

    def run(self, prog: Program) -> Any:
        for stmt in prog.body:
            if isinstance(stmt, Return):
                return self.eval(stmt.expr)
            if isinstance(stmt, Assign):
                self.env[stmt.name] = self.eval(stmt.expr)
            elif isinstance(stmt, ExprStmt):
                self.eval(stmt.expr)
        return None

    def eval(self, node: Any) -> Any:
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Arr):
            return [self.eval(x) for x in node.items]
        if isinstance(node, Obj):
            return {k: self.eval(v) for k, v in node.items}
        if isinstance(node, Var):
            return self.env.get(node.name)
        if isinstance(node, ArgRef):
            return self.args.get(node.name)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, Member):
            return self._member(self.eval(node.target), self.eval(node.key))
        if isinstance(node, Neg):
            v = self.eval(node.operand)
            return -v if isinstance(v, int | float) and not isinstance(v, bool) else None
        if isinstance(node, BinOp):
            return self._binop(node.op, self.eval(node.left), self.eval(node.right))
        raise ScriptRuntimeError(f"cannot evaluate {type(node).__name__}")

    def _call(self, node: Call) -> Any:
        arg = self.eval(node.arg) if node.arg is not None else {}
        if not isinstance(arg, dict):
            raise ScriptRuntimeError("method arguments must be an object")
        self.calls += 1
        if self.calls > self.max_calls:
            raise ScriptRuntimeError("Too many API calls")
        params = {k: p for k, v in arg.items() if (p := to_param(v)) is not None}
        return self.call_api(node.method, params)

    @staticmethod
    def _member(target: Any, key: Any) -> Any:
        if isinstance(target, dict):
            return target.get(str(key))
        if isinstance(target, list):
            if key == "length":
                return len(target)
            if isinstance(key, int | float) and not isinstance(key, bool):
                i = int(key)
                return target[i] if 0 <= i < len(target) else None
        if isinstance(target, str) and key == "length":
            return len(target)
        return None

    @staticmethod
    def _binop(op: str, a: Any, b: Any) -> Any:
        if op == "+" and (isinstance(a, str) or isinstance(b, str)):
            return f"{'' if a is None else a}{'' if b is None else b}"
        if isinstance(a, list) and isinstance(b, list) and op == "+":
            return a + b
        nums = (int, float)
        if (
            not (isinstance(a, nums) and isinstance(b, nums))
            or isinstance(a, bool)
            or isinstance(b, bool)
        ):
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            return None
        r = a / b
        return int(r) if r.is_integer() else r
