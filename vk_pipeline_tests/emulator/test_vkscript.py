"""The VKScript subset: tokenizer, parser and evaluator without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from vk_pipeline.emulator.vkscript import (
    CompileError,
    Interpreter,
    ScriptRuntimeError,
    parse,
    to_param,
)


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
        "while (1) {};",
    ],
)
def test_compile_errors(code: str) -> None:
    with pytest.raises(CompileError):
        parse(code)


def test_to_param() -> None:
    assert [to_param(v) for v in (True, False, 3, 2.0, 2.5, "s", [1, "a"], None)] == [
        "1", "0", "3", "2", "2.5", "s", "1,a", None,
    ]  # fmt: skip
