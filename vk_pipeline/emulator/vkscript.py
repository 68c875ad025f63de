"""VKScript for the emulator's `execute`: tokenizer and parser (evaluation: `vkscript_eval`).

The language covered is what API clients send: ours (`return [API.a.b({...}), ...];`), vk_api's
`VkTools.get_all` loop and `VkRequestsPool` scripts, and the constructs VK's execute page lists.

Statements: `var a = e, b;`, expression statements (assignment `x = e`, `x.a[i] = e`, calls),
`return e;` (the expression is required), `if (c) s [else s]`, `while (c) s`, blocks `{...}`, `delete x.a;`, empty `;`.
Expressions, loosest first: `=` (right-assoc), `c ? a : b`, `||`, `&&`, `== !=`, `< > <= >=`,
`+ -`, `* / %`, unary `! - +`, postfix `.name`, `[expr]`, `.method(args)`, `@.name`.
Primaries: numbers, strings ('...' or "..." with JSON/JS escapes), true/false/null, arrays,
objects (bare, quoted or numeric keys, trailing commas), `API.<section>.<method>(<expr>?)`,
`Args.<name>`, `parseInt(e)`, `parseDouble(e)`, declared variables, `( ... )`.
Comments `// ...` and `/* ... */` are skipped.

Anything else (`for`, `function`, `++`, `+=`, `===`, unknown methods, undeclared names, ...)
is a compile error: VK error 12 "Unable to compile code".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||\+\+|--|\+=|-=|\*=|/=|[{}\[\](),:;.=+\-*/%<>!?@])
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

# Array/string methods VK lists for execute ("slice, push, pop, shift, unshift, splice,
# substr, split") plus indexOf; the mutating ones write back to their variable.
METHODS = frozenset(
    {"slice", "push", "pop", "shift", "unshift", "splice", "substr", "split", "indexOf"}
)
MUTATING_METHODS = frozenset({"push", "pop", "shift", "unshift", "splice"})
FUNCTIONS = frozenset({"parseInt", "parseDouble"})
_UNSUPPORTED_OPS = frozenset({"===", "!==", "++", "--", "+=", "-=", "*=", "/="})
_UNSUPPORTED_WORDS = frozenset((
    "for", "do", "function", "switch", "case", "break", "continue", "new", "this", "typeof",
    "instanceof", "in", "try", "catch", "throw", "let", "const",
))  # fmt: skip
_RESERVED = frozenset(
    {"var", "return", "if", "else", "while", "delete", "true", "false", "null", "API", "Args"}
    | FUNCTIONS
    | _UNSUPPORTED_WORDS
)


class CompileError(Exception):
    """Unparseable or unsupported code: VK error 12 "Unable to compile code"."""


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
        elif kind == "op" and text in _UNSUPPORTED_OPS:
            raise CompileError(f"unsupported operator {text!r} at {pos}")
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
class Func:
    name: str  # parseInt | parseDouble
    arg: Any


@dataclass
class Member:
    target: Any
    key: Any  # expression node


@dataclass
class Project:
    """`target@.name`: the field `name` of every element."""

    target: Any
    name: str


@dataclass
class MethodCall:
    target: Any
    name: str
    args: list[Any]


@dataclass
class BinOp:
    op: str  # + - * / % == != < > <= >=
    left: Any
    right: Any


@dataclass
class Logical:
    op: str  # && ||
    left: Any
    right: Any


@dataclass
class Cond:
    test: Any
    then: Any
    other: Any


@dataclass
class Not:
    operand: Any


@dataclass
class Neg:
    operand: Any


@dataclass
class Assign:
    target: Any  # Var or a Member chain rooted at a Var
    expr: Any


@dataclass
class VarDecl:
    decls: list[tuple[str, Any]]


@dataclass
class Return:
    expr: Any


@dataclass
class ExprStmt:
    expr: Any


@dataclass
class If:
    test: Any
    then: list[Any]
    other: list[Any]


@dataclass
class While:
    test: Any
    body: list[Any]


@dataclass
class Delete:
    target: Member


@dataclass
class Program:
    body: list[Any] = field(default_factory=list)
    api_calls: int = 0  # static count of API.* call sites


def is_lvalue(node: Any) -> bool:
    while isinstance(node, Member):
        node = node.target
    return isinstance(node, Var)


class _Parser:
    def __init__(self, code: str) -> None:
        self.toks = tokenize(code)
        self.i = 0
        self.vars: set[str] = set()
        self.calls = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def at(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (value is None or tok.value == value)

    def accept(self, kind: str, value: str | None = None) -> _Tok | None:
        if self.at(kind, value):
            return self.next()
        return None

    def expect(self, kind: str, value: str | None = None) -> _Tok:
        tok = self.accept(kind, value)
        if tok is None:
            got = self.peek()
            raise CompileError(f"expected {value or kind} at {got.pos}, got {got.value!r}")
        return tok

    # ------------------------------------------------------------------ statements

    def program(self) -> Program:
        body: list[Any] = []
        while not self.at("eof"):
            body.extend(self.statement())
        return Program(body, self.calls)

    def _end_statement(self) -> None:
        # `;` may be left out before `}` and at the end of the code.
        if not self.accept("op", ";") and not self.at("op", "}") and not self.at("eof"):
            tok = self.peek()
            raise CompileError(f"expected ; at {tok.pos}, got {tok.value!r}")

    def block(self) -> list[Any]:
        self.expect("op", "{")
        body: list[Any] = []
        while not self.accept("op", "}"):
            if self.at("eof"):
                raise CompileError("unterminated block")
            body.extend(self.statement())
        return body

    def body(self) -> list[Any]:
        """The body of if/else/while: a block or a single statement."""
        return self.block() if self.at("op", "{") else self.statement()

    def paren(self) -> Any:
        self.expect("op", "(")
        expr = self.expression()
        self.expect("op", ")")
        return expr

    def statement(self) -> list[Any]:
        tok = self.peek()
        if tok.kind == "op" and tok.value == ";":
            self.next()
            return []
        if tok.kind == "op" and tok.value == "{":
            return self.block()
        if tok.kind != "name":
            expr = self.expression()
            self._end_statement()
            return [ExprStmt(expr)]
        word = tok.value
        if word == "var":
            self.next()
            decls: list[tuple[str, Any]] = []
            while True:
                name_tok = self.expect("name")
                if name_tok.value in _RESERVED:
                    raise CompileError(f"reserved word {name_tok.value!r} at {name_tok.pos}")
                expr = self.assignment() if self.accept("op", "=") else Lit(None)
                self.vars.add(name_tok.value)
                decls.append((name_tok.value, expr))
                if not self.accept("op", ","):
                    break
            self._end_statement()
            return [VarDecl(decls)]
        if word == "return":
            self.next()
            expr = self.expression()  # VK: "return %expression%"; a bare return is an error
            self._end_statement()
            return [Return(expr)]
        if word == "if":
            self.next()
            test = self.paren()
            then = self.body()
            other = self.body() if self.accept("name", "else") else []
            return [If(test, then, other)]
        if word == "while":
            self.next()
            test = self.paren()
            return [While(test, self.body())]
        if word == "delete":
            self.next()
            target = self.unary()
            if not isinstance(target, Member) or not is_lvalue(target):
                raise CompileError(f"delete needs a field of a variable at {tok.pos}")
            self._end_statement()
            return [Delete(target)]
        if word in _UNSUPPORTED_WORDS or word == "else":
            raise CompileError(f"unsupported statement {word!r} at {tok.pos}")
        expr = self.expression()
        self._end_statement()
        return [ExprStmt(expr)]

    # ------------------------------------------------------------------ expressions

    def expression(self) -> Any:
        return self.assignment()

    def assignment(self) -> Any:
        pos = self.peek().pos
        left = self.ternary()
        if self.accept("op", "="):
            if not is_lvalue(left):
                raise CompileError(f"invalid assignment target at {pos}")
            return Assign(left, self.assignment())
        return left

    def ternary(self) -> Any:
        test = self.logical("||")
        if self.accept("op", "?"):
            then = self.assignment()
            self.expect("op", ":")
            return Cond(test, then, self.assignment())
        return test

    def logical(self, op: str) -> Any:
        sub = (lambda: self.logical("&&")) if op == "||" else self.equality
        left = sub()
        while self.accept("op", op):
            left = Logical(op, left, sub())
        return left

    def _binary(self, ops: tuple[str, ...], sub: Any) -> Any:
        left = sub()
        while (tok := self.peek()).kind == "op" and tok.value in ops:
            self.next()
            left = BinOp(tok.value, left, sub())
        return left

    def equality(self) -> Any:
        return self._binary(("==", "!="), self.relational)

    def relational(self) -> Any:
        return self._binary(("<", ">", "<=", ">="), self.additive)

    def additive(self) -> Any:
        return self._binary(("+", "-"), self.term)

    def term(self) -> Any:
        return self._binary(("*", "/", "%"), self.unary)

    def unary(self) -> Any:
        if self.accept("op", "!"):
            return Not(self.unary())
        if self.accept("op", "-"):
            operand = self.unary()
            if isinstance(operand, Lit) and type(operand.value) in (int, float):
                return Lit(-operand.value)
            return Neg(operand)
        if self.accept("op", "+"):
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            if self.accept("op", "."):
                name = self.expect("name")
                if self.at("op", "("):
                    if name.value not in METHODS:
                        raise CompileError(f"unsupported method {name.value!r} at {name.pos}")
                    node = MethodCall(node, name.value, self.arguments())
                else:
                    node = Member(node, Lit(name.value))
            elif self.accept("op", "["):
                key = self.expression()
                self.expect("op", "]")
                node = Member(node, key)
            elif self.accept("op", "@"):
                self.expect("op", ".")
                node = Project(node, self.expect("name").value)
            elif self.at("op", "("):
                raise CompileError(f"calling a value is not supported at {self.peek().pos}")
            else:
                return node

    def arguments(self) -> list[Any]:
        self.expect("op", "(")
        args: list[Any] = []
        while not self.accept("op", ")"):
            args.append(self.assignment())
            if not self.accept("op", ","):
                self.expect("op", ")")
                break
        return args

    def primary(self) -> Any:
        tok = self.next()
        if tok.kind == "num":
            is_int = tok.value.isdigit()
            return Lit(int(tok.value) if is_int else float(tok.value))
        if tok.kind == "str":
            return Lit(tok.value)
        if tok.kind == "op" and tok.value == "(":
            expr = self.expression()
            self.expect("op", ")")
            return expr
        if tok.kind == "op" and tok.value == "[":
            items: list[Any] = []
            while not self.accept("op", "]"):
                items.append(self.assignment())
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
                pairs.append((key_tok.value, self.assignment()))
                if not self.accept("op", ","):
                    self.expect("op", "}")
                    break
            return Obj(pairs)
        if tok.kind == "name":
            return self._name(tok)
        raise CompileError(f"unexpected {tok.value or 'end of code'!r} at {tok.pos}")

    def _name(self, tok: _Tok) -> Any:
        word = tok.value
        if word == "true":
            return Lit(True)
        if word == "false":
            return Lit(False)
        if word == "null":
            return Lit(None)
        if word == "API":
            parts = []
            while self.accept("op", "."):
                parts.append(self.expect("name").value)
            if len(parts) != 2:
                raise CompileError(f"bad API method name at {tok.pos}")
            self.expect("op", "(")
            arg = None if self.at("op", ")") else self.assignment()
            self.expect("op", ")")
            self.calls += 1
            return Call(".".join(parts), arg)
        if word == "Args":
            self.expect("op", ".")
            return ArgRef(self.expect("name").value)
        if word in FUNCTIONS:
            args = self.arguments()
            if len(args) != 1:
                raise CompileError(f"{word} takes one argument at {tok.pos}")
            return Func(word, args[0])
        if word in self.vars:
            return Var(word)
        raise CompileError(f"undefined identifier {word!r} at {tok.pos}")


def parse(code: str) -> Program:
    return _Parser(code).program()
