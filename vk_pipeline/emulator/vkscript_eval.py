"""Evaluation of parsed VKScript with VK's semantics (see the emulator README, "execute").

Values are JSON values (None, bool, int, float, str, list, dict). They are never mutated in
place: assignment to a field, `push` and the other mutating methods rebuild the path from the
variable down, so sharing is safe and assignment behaves as VK's value copy (`var y = x;
x.pop();` leaves `y` alone).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from vk_pipeline.emulator.vkscript import (
    MUTATING_METHODS,
    ArgRef,
    Arr,
    Assign,
    BinOp,
    Call,
    Cond,
    Delete,
    ExprStmt,
    Func,
    If,
    Lit,
    Logical,
    Member,
    MethodCall,
    Neg,
    Not,
    Obj,
    Program,
    Project,
    Return,
    ScriptRuntimeError,
    Var,
    VarDecl,
    While,
    is_lvalue,
)

ApiCaller = Callable[[str, dict[str, str]], Any]
# VK caps a script at 1000 operations; here an operation is one executed statement or one
# evaluation of a loop condition (vk_api's 25-page get_all loop takes about 350).
MAX_OPERATIONS = 1000
_INT_RE = re.compile(r"\s*[+-]?\d+")
_FLOAT_RE = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_COMPARE_ERR = "Comparing values of different or unsupported types"


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


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


def _i32(n: int) -> int:
    """VK's integers are 32-bit and wrap (1000000000 + 2000000000 == -1294967296)."""
    n &= 0xFFFFFFFF
    return n - 0x100000000 if n >= 0x80000000 else n


def truthy(v: Any) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | dict):
        return len(v) > 0
    return True


def to_string(v: Any) -> str:
    if v is None or v is False:
        return ""
    if v is True:
        return "1"
    if isinstance(v, float):
        return json.dumps(v)
    if isinstance(v, list):
        return ",".join(to_string(x) for x in v)
    if isinstance(v, dict):
        return ",".join(to_string(x) for x in v.values())
    return str(v)


def _number(v: Any) -> int | float | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            return None
    return None


def to_number(v: Any) -> int | float:
    n = _number(v)
    if n is None:
        raise ScriptRuntimeError("Numeric value is expected")
    return n


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        if isinstance(a, list) and isinstance(b, list):
            return a + b
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **b}
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return to_string(a) + to_string(b)
        if isinstance(a, list | dict) or isinstance(b, list | dict):
            raise ScriptRuntimeError("Unsupported operand types for +")
    x, y = to_number(a), to_number(b)
    both_int = isinstance(x, int) and isinstance(y, int)
    if op == "+":
        r: int | float = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    else:
        if y == 0:
            raise ScriptRuntimeError("Division by zero")
        if op == "%":
            # Remainder takes the sign of the dividend, as in C and JavaScript.
            r = abs(x) % abs(y) * (-1 if x < 0 else 1)
        else:
            r = x / y
            if both_int and r.is_integer():
                return _i32(int(r))
            return r
    return _i32(int(r)) if both_int else r


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("==", "!="):
        if a is None or b is None:
            eq = a is None and b is None
        elif isinstance(a, list | dict) or isinstance(b, list | dict):
            raise ScriptRuntimeError(_COMPARE_ERR)
        elif isinstance(a, str) and isinstance(b, str):
            eq = a == b
        else:
            x, y = _number(a), _number(b)
            if x is None or y is None:
                raise ScriptRuntimeError(_COMPARE_ERR)
            eq = x == y
        return eq if op == "==" else not eq
    if a is None or b is None or isinstance(a, list | dict) or isinstance(b, list | dict):
        raise ScriptRuntimeError(_COMPARE_ERR)
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a
        y: Any = b
    else:
        x, y = _number(a), _number(b)
        if x is None or y is None:
            raise ScriptRuntimeError(_COMPARE_ERR)
    if op == "<":
        return bool(x < y)
    if op == ">":
        return bool(x > y)
    if op == "<=":
        return bool(x <= y)
    return bool(x >= y)


def _index(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, float) and key.is_integer() and key >= 0:
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def _key(key: Any) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return to_string(key) if not isinstance(key, str) else key


def get_member(target: Any, key: Any) -> Any:
    """`target.key` / `target[key]`; anything missing (or a field of a non-object) is null."""
    if isinstance(target, dict):
        k = _key(key)
        if k in target:
            return target[k]
        return len(target) if k == "length" else None
    if isinstance(target, list):
        if key == "length":
            return len(target)
        i = _index(key)
        return target[i] if i is not None and i < len(target) else None
    if isinstance(target, str) and key == "length":
        return len(target)
    return None


def with_member(target: Any, key: Any, value: Any) -> Any:
    """A copy of `target` with `key` set: what `x.key = value` stores back into `x`."""
    if isinstance(target, dict):
        return {**target, _key(key): value}
    if isinstance(target, list):
        i = _index(key)
        if i is None:
            # A named field turns the array into an object, as on VK.
            return {**{str(n): v for n, v in enumerate(target)}, _key(key): value}
        out = list(target)
        if i < len(out):
            out[i] = value
        else:
            out.extend([None] * (i - len(out)))
            out.append(value)
        return out
    raise ScriptRuntimeError(f"setting field [{_key(key)}] on not array variable")


def without_member(target: Any, key: Any) -> Any:
    if isinstance(target, dict):
        k = _key(key)
        return {n: v for n, v in target.items() if n != k}
    if isinstance(target, list):
        i = _index(key)
        if i is None or i >= len(target):
            return target
        if i == len(target) - 1:
            return target[:-1]
        return {str(n): v for n, v in enumerate(target) if n != i}
    raise ScriptRuntimeError(f"deleting field [{_key(key)}] on not array variable")


def _slice_bounds(n: int, args: list[Any]) -> tuple[int, int]:
    def norm(v: Any) -> int:
        i = int(to_number(v) // 1)
        return max(0, i + n) if i < 0 else min(i, n)

    start = norm(args[0]) if args else 0
    end = norm(args[1]) if len(args) > 1 else n
    return start, max(start, end)


def _arity(name: str, args: list[Any], lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        raise ScriptRuntimeError(f"Bad argument count for method {name}")


def call_method(value: Any, name: str, args: list[Any]) -> tuple[Any, Any]:
    """(result, new value of the target) of `value.name(args)`."""
    if isinstance(value, list):
        if name == "slice":
            _arity(name, args, 1, 2)
            a, b = _slice_bounds(len(value), args)
            return value[a:b], value
        if name == "push":
            _arity(name, args, 1, 1)
            return None, [*value, args[0]]
        if name == "pop":
            _arity(name, args, 0, 0)
            return (value[-1], value[:-1]) if value else (None, value)
        if name == "shift":
            _arity(name, args, 0, 0)
            return (value[0], value[1:]) if value else (None, value)
        if name == "unshift":
            _arity(name, args, 1, 1)
            return None, [args[0], *value]
        if name == "splice":
            _arity(name, args, 2, 1000)
            start, _ = _slice_bounds(len(value), args[:1])
            count = max(0, int(to_number(args[1])))
            return None, value[:start] + args[2:] + value[start + count :]
        if name == "indexOf":
            _arity(name, args, 1, 1)
            return next((i for i, v in enumerate(value) if v == args[0]), -1), value
    if isinstance(value, str):
        if name == "substr":
            _arity(name, args, 1, 2)
            start, _ = _slice_bounds(len(value), args[:1])
            length = int(to_number(args[1])) if len(args) > 1 else len(value)
            return value[start : start + max(0, length)], value
        if name == "split":
            _arity(name, args, 1, 1)
            sep = to_string(args[0])
            return (value.split(sep) if sep else []), value
        if name == "indexOf":
            _arity(name, args, 1, 1)
            return value.find(to_string(args[0])), value
        if name == "slice":
            _arity(name, args, 1, 2)
            a, b = _slice_bounds(len(value), args)
            return value[a:b], value
    raise ScriptRuntimeError(f"method {name} is not supported for this value")


def _parse_prefix(fn: str, v: Any) -> int | float:
    text = to_string(v)
    if fn == "parseInt":
        m = _INT_RE.match(text)
        return _i32(int(m.group())) if m else 0
    m = _FLOAT_RE.match(text)
    return float(m.group()) if m else 0.0


class Interpreter:
    def __init__(
        self,
        call_api: ApiCaller,
        args: dict[str, str],
        max_calls: int = 25,
        max_operations: int = MAX_OPERATIONS,
    ) -> None:
        self.call_api = call_api
        self.args = args
        self.max_calls = max_calls
        self.max_operations = max_operations
        self.calls = 0
        self.operations = 0
        self.env: dict[str, Any] = {}

    def run(self, prog: Program) -> Any:
        try:
            self.exec_block(prog.body)
        except _Return as r:
            return r.value
        return None

    def _tick(self) -> None:
        self.operations += 1
        if self.operations > self.max_operations:
            raise ScriptRuntimeError("Too many operations")

    def exec_block(self, body: list[Any]) -> None:
        for stmt in body:
            self._tick()
            if isinstance(stmt, ExprStmt):
                self.eval(stmt.expr)
            elif isinstance(stmt, VarDecl):
                for name, expr in stmt.decls:
                    self.env[name] = self.eval(expr)
            elif isinstance(stmt, If):
                self.exec_block(stmt.then if truthy(self.eval(stmt.test)) else stmt.other)
            elif isinstance(stmt, While):
                while truthy(self.eval(stmt.test)):
                    self.exec_block(stmt.body)
                    self._tick()
            elif isinstance(stmt, Return):
                raise _Return(self.eval(stmt.expr))
            elif isinstance(stmt, Delete):
                name, keys = self._path(stmt.target)
                self._store(name, keys[:-1], without_member(self._load(name, keys[:-1]), keys[-1]))
            else:  # pragma: no cover - the parser produces nothing else
                raise ScriptRuntimeError(f"cannot execute {type(stmt).__name__}")

    # ------------------------------------------------------------------ lvalues

    def _path(self, node: Any) -> tuple[str, list[Any]]:
        """Variable name and evaluated keys of `x.a[i].b`, outermost key first."""
        keys: list[Any] = []
        while isinstance(node, Member):
            keys.append(node.key)
            node = node.target
        assert isinstance(node, Var)
        return node.name, [self.eval(k) for k in reversed(keys)]

    def _load(self, name: str, keys: list[Any]) -> Any:
        value = self.env.get(name)
        for k in keys:
            value = get_member(value, k)
        return value

    def _store(self, name: str, keys: list[Any], value: Any) -> None:
        def rebuild(container: Any, rest: list[Any]) -> Any:
            if not rest:
                return value
            child = rebuild(get_member(container, rest[0]), rest[1:]) if len(rest) > 1 else value
            return with_member(container, rest[0], child)

        self.env[name] = rebuild(self.env.get(name), keys)

    # ------------------------------------------------------------------ expressions

    def eval(self, node: Any) -> Any:
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Var):
            return self.env.get(node.name)
        if isinstance(node, Member):
            return get_member(self.eval(node.target), self.eval(node.key))
        if isinstance(node, BinOp):
            left, right = self.eval(node.left), self.eval(node.right)
            if node.op in ("+", "-", "*", "/", "%"):
                return _arith(node.op, left, right)
            return _compare(node.op, left, right)
        if isinstance(node, Logical):
            left = self.eval(node.left)
            if truthy(left) == (node.op == "||"):
                return left
            return self.eval(node.right)
        if isinstance(node, Not):
            return not truthy(self.eval(node.operand))
        if isinstance(node, Cond):
            return self.eval(node.then if truthy(self.eval(node.test)) else node.other)
        if isinstance(node, Assign):
            if isinstance(node.target, Var):
                value = self.eval(node.expr)
                self.env[node.target.name] = value
                return value
            name, keys = self._path(node.target)
            value = self.eval(node.expr)
            self._store(name, keys, value)
            return value
        if isinstance(node, Arr):
            return [self.eval(x) for x in node.items]
        if isinstance(node, Obj):
            return {k: self.eval(v) for k, v in node.items}
        if isinstance(node, ArgRef):
            return self.args.get(node.name)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, MethodCall):
            return self._method(node)
        if isinstance(node, Project):
            target = self.eval(node.target)
            if isinstance(target, dict):
                target = list(target.values())
            if not isinstance(target, list):
                return []
            return [get_member(x, node.name) if isinstance(x, dict) else None for x in target]
        if isinstance(node, Neg):
            v = to_number(self.eval(node.operand))
            return _i32(-v) if isinstance(v, int) else -v
        if isinstance(node, Func):
            return _parse_prefix(node.name, self.eval(node.arg))
        raise ScriptRuntimeError(f"cannot evaluate {type(node).__name__}")

    def _method(self, node: MethodCall) -> Any:
        mutating = node.name in MUTATING_METHODS and is_lvalue(node.target)
        if mutating:
            name, keys = self._path(node.target)
            value = self._load(name, keys)
        else:
            value = self.eval(node.target)
        args = [self.eval(a) for a in node.args]
        result, new_value = call_method(value, node.name, args)
        if mutating and new_value is not value:
            self._store(name, keys, new_value)
        return result

    def _call(self, node: Call) -> Any:
        arg = self.eval(node.arg) if node.arg is not None else {}
        if not isinstance(arg, dict):
            raise ScriptRuntimeError("method arguments must be an object")
        self.calls += 1
        if self.calls > self.max_calls:
            raise ScriptRuntimeError("Too many API calls")
        params = {k: p for k, v in arg.items() if (p := to_param(v)) is not None}
        return self.call_api(node.method, params)
