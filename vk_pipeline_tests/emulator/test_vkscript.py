"""The VKScript subset: tokenizer, parser and evaluator without HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest

from vk_pipeline.emulator.vkscript import CompileError, ScriptRuntimeError, parse
from vk_pipeline.emulator.vkscript_eval import Interpreter, to_param


def run(
    code: str, args: dict[str, str] | None = None, max_calls: int = 25
) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    def api(method: str, params: dict[str, str]) -> Any:
        calls.append((method, params))
        return {"method": method, "n": len(calls)}

    return Interpreter(api, args or {}, max_calls).run(parse(code)), calls


def test_literals() -> None:
    code = r"""return [1, -2, 3.5, -0.25, 1e3, "a\"b\\c\n\t\u0416\uD83D\uDE00", 'single \'q\'',
        true, false, null, [], {}, {bare: 1, "quoted key": 2, 'sq': [1, {x: -1},],},];"""
    value, _ = run(code)
    assert value == [
        1, -2, 3.5, -0.25, 1000.0, 'a"b\\c\n\tЖ😀', "single 'q'",
        True, False, None, [], {}, {"bare": 1, "quoted key": 2, "sq": [1, {"x": -1}]},
    ]  # fmt: skip


def test_calls_vars_and_params() -> None:
    code = """
    var a = API.wall.get({owner_id: -1, count: 100, extended: true, ids: [1, 2], f: null});
    var b = a.n + 10, c;
    c = API.groups.getById();
    return {a: a, b: b, c: c.method, arg: Args.x};
    """
    value, calls = run(code, {"x": "y"})
    assert calls == [
        ("wall.get", {"owner_id": "-1", "count": "100", "extended": "1", "ids": "1,2"}),
        ("groups.getById", {}),
    ]
    assert value == {
        "a": {"method": "wall.get", "n": 1},
        "b": 11,
        "c": "groups.getById",
        "arg": "y",
    }


def test_no_return_gives_null_and_statements_run() -> None:
    value, calls = run("API.a.b({}); API.c.d({});")
    assert value is None and [m for m, _ in calls] == ["a.b", "c.d"]


def test_call_limit_is_runtime() -> None:
    code = "return [" + ",".join(["API.a.b({})"] * 3) + "];"
    assert run(code, max_calls=3)[0] is not None
    with pytest.raises(ScriptRuntimeError, match="Too many API calls"):
        run(code, max_calls=2)


@pytest.mark.parametrize(
    "code",
    [
        "return",
        "return [1,",
        "return {a 1};",
        "var = 1;",
        "x = 1;",
        "return API.a();",
        "return 1 +;",
        "return #;",
        "for (var i = 0; i < 3; i = i + 1) {}",
        "var i = 0; i++;",
        "var i = 0; i += 1;",
        "return 1 === 1;",
        "function f() { return 1; }",
        "var a = [1]; return a.map(1);",
        "var a = 1; return a(2);",
        "while (1) { return 1;",
        "if 1 { return 1; }",
        "else { return 1; }",
        "var if = 1;",
        "return API.a.b().c = 1;",
        "return parseInt(1, 2);",
        "return nope;",
    ],
)
def test_compile_errors(code: str) -> None:
    with pytest.raises(CompileError):
        parse(code)


def test_to_param() -> None:
    assert [to_param(v) for v in (True, False, 3, 2.0, 2.5, "s", [1, "a"], None)] == [
        "1", "0", "3", "2", "2.5", "s", "1,a", None,
    ]  # fmt: skip


def value(code: str, args: dict[str, str] | None = None) -> Any:
    return run(code, args)[0]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # Integers are 32-bit and wrap; mixing with a float gives a float.
        ("return 1000000000 + 2000000000;", -1294967296),
        (
            "return [7 - 10, 6 * 7, 7 / 2, 8 / 2, -7 % 3, 2 + 0.5, 2 * 1.5];",
            [-3, 42, 3.5, 4, -1, 2.5, 3.0],
        ),
        # + concatenates arrays and strings; null and numbers become text next to a string.
        (
            "return [[1, 2] + [3], 'a' + 1, 1 + 'a', null + 5, 'x' + true, 'n' + [1, 2]];",
            [[1, 2, 3], "a1", "1a", "5", "x1", "n1,2"],
        ),
        ("return {a: 1, b: 2} + {b: 3};", {"a": 1, "b": 3}),
        # Numeric strings (e.g. Args) take part in arithmetic other than +.
        ("return [Args.n * 2, Args.n - 1, Args.n + 1, -Args.n];", [42, 20, "211", -21]),
        (
            "return [1 < 2, 2 <= 2, 3 > 4, 'a' < 'b', '10' > 9, 1 == 1.0, 1 != 2, 'a' == 'a'];",
            [True, True, False, True, True, True, True, True],
        ),
        (
            "return [null == null, 0 == null, null != 5, true == 1, false == 0];",
            [True, False, True, True, True],
        ),
        (
            "return [!0, !1, !'', !'a', ![], ![0], !{}, !null, !false, !!{a: 1}];",
            [True, False, True, False, True, False, True, True, True, True],
        ),
        ("return [0 || 'x', 2 || 'x', 0 && 'x', 2 && 'x', null || null];", ["x", 2, 0, "x", None]),
        ("return [1 ? 'a' : 'b', 0 ? 'a' : 'b', null == null ? 1 : 2 ? 3 : 4];", ["a", "b", 1]),
        (
            "return [[1, 2, 3].length, 'abc'.length, 'жёлтый😀'.length, {a: 1, b: 2}.length, {length: 7}.length];",
            [3, 3, 7, 2, 7],
        ),
        (
            "return [[1, 2, 3, 4].slice(1), [1, 2, 3, 4].slice(1, 3), [1, 2, 3].slice(-2), [1].slice(5), 'hello'.substr(1, 3), 'a,b'.split(','), [4, 5].indexOf(5), 'abc'.indexOf('c')];",
            [[2, 3, 4], [2, 3], [2, 3], [], "ell", ["a", "b"], 1, 2],
        ),
        (
            "return [parseInt('42abc'), parseInt('x'), parseInt(' -7'), parseDouble('2.5e1z'), parseDouble('')];",
            [42, 0, -7, 25.0, 0.0],
        ),
        ("return [[{id: 1}, {id: 2}, 3]@.id, {a: {id: 5}}@.id, 7@.id];", [[1, 2, None], [5], []]),
        # Reading what is not there gives null, never an error.
        (
            "var r = false; return [r.count, [1][5], {a: 1}.b, 'abc'[0], null.x];",
            [None, None, None, None, None],
        ),
    ],
)
def test_expressions(code: str, expected: Any) -> None:
    assert value(code, {"n": "21"}) == expected


def test_control_flow() -> None:
    code = """
    var i = 0, evens = [], odd = 0;
    while (i < 10) {
        i = i + 1;
        if (i % 2 == 0) { evens.push(i); } else odd = odd + 1;
        if (i == 7) i = i + 0;
    };
    if (odd > 100) return 'no'; else if (odd == 5) { return {evens: evens, odd: odd}; }
    return 'unreachable';
    """
    assert value(code) == {"evens": [2, 4, 6, 8, 10], "odd": 5}


def test_member_assignment_and_value_semantics() -> None:
    code = """
    var p = {a: {b: 1}, list: [1, 2]}, q = p, arr = [1, 2, 3], copy = arr, x = [1];
    p.a.b = 2; p.c = 'new'; p.list[1] = 20; p.list[3] = 40; p["k" + 1] = true;
    arr.pop(); arr.unshift(0); arr.push(9); x.push(x.pop());
    var s = [1, 2, 3, 4]; s.splice(1, 2, 'a');
    var o = {a: 1, b: 2}; delete o.a;
    var named = [1, 2]; named.tag = 't';
    return {p: p, q: q, arr: arr, copy: copy, x: x, s: s, o: o, named: named,
            shifted: [5, 6].shift(), r: (p.z = 3)};
    """
    assert value(code) == {
        # Fields are evaluated in order: `p` was read before `p.z = 3` ran.
        "p": {"a": {"b": 2}, "list": [1, 20, None, 40], "c": "new", "k1": True},
        "q": {"a": {"b": 1}, "list": [1, 2]},  # assignment copied the value
        "arr": [0, 1, 2, 9],
        "copy": [1, 2, 3],
        "x": [1, 1],
        "s": [1, "a", 4],
        "o": {"b": 2},
        "named": {"0": 1, "1": 2, "tag": "t"},  # a named field makes an array an object
        "shifted": 5,
        "r": 3,
    }


def test_api_results_drive_the_loop() -> None:
    pages = {0: list(range(100)), 100: list(range(100, 130))}

    def api(method: str, params: dict[str, str]) -> Any:
        if params.get("fail"):
            return False
        return {"count": 130, "items": pages.get(int(params["offset"]), [])}

    code = """
    var params = {count: 100}, items = [], offset = 0, calls = 0, ri;
    while (calls < 25) {
        calls = calls + 1;
        params.offset = offset;
        var r = API.wall.get(params);
        if (!r) { return {"_error": 1}; }
        ri = r.items; items = items + ri.slice(0); offset = offset + params.count;
        if (ri.length < params.count) { calls = 99; }
    };
    var bad = API.wall.get({fail: 1});
    return {n: items.length, last: items[129], calls: calls, bad: bad, bad_count: bad.count};
    """
    got = Interpreter(api, {}).run(parse(code))
    assert got == {"n": 130, "last": 129, "calls": 99, "bad": False, "bad_count": None}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("while (true) {}", "Too many operations"),
        ("var i = 0; while (i < 2000) { i = i + 1; }", "Too many operations"),
        ("return [1] < [2];", "Comparing values of different or unsupported types"),
        ("return null < 1;", "Comparing values of different or unsupported types"),
        ("return 'abc' == 1;", "Comparing values of different or unsupported types"),
        ("return 'abc' - 1;", "Numeric value is expected"),
        ("return null * 2;", "Numeric value is expected"),
        ("return 1 / 0;", "Division by zero"),
        ("return [1] + 1;", "Unsupported operand types for +"),
        ("var n = 5; n.a = 1;", "setting field [a] on not array variable"),
        ("var n = null; n.a.b = 1;", "setting field [b] on not array variable"),
        ("return 'abc'.push(1);", "method push is not supported for this value"),
        ("return [1].slice();", "Bad argument count for method slice"),
        ("return API.a.b(5);", "method arguments must be an object"),
    ],
)
def test_runtime_errors(code: str, message: str) -> None:
    with pytest.raises(ScriptRuntimeError, match=re.escape(message)):
        run(code)


def test_operation_budget_is_a_parameter() -> None:
    code = "var i = 0; while (i < 30) { i = i + 1; } return i;"
    assert Interpreter(lambda m, p: None, {}, max_operations=100).run(parse(code)) == 30
    with pytest.raises(ScriptRuntimeError, match="Too many operations"):
        Interpreter(lambda m, p: None, {}, max_operations=50).run(parse(code))
