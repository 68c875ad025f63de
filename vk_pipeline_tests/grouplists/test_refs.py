"""Every spelling of a community in one token -> the same id or screen name; junk -> a reason."""

import pytest

from vk_pipeline.grouplists import Ref, parse_token

ID = Ref("id", 123)
NAME = Ref("name", "zerno_coffee_club")


@pytest.mark.parametrize(
    "token, ref, strong",
    [
        ("123", ID, False),
        ("-123", ID, False),
        ("+123", None, None),  # a phone-like number, checked below
        ("club123", ID, True),
        ("public123", ID, True),
        ("event123", ID, True),
        ("CLUB123", ID, True),
        ("zerno_coffee_club", NAME, False),
        ("Zerno_Coffee_Club", NAME, False),
        ("@zerno_coffee_club", NAME, True),
        ("@ZERNO_COFFEE_CLUB", NAME, True),
        ("@club123", ID, True),
        ("vk.com/zerno_coffee_club", NAME, True),
        ("vk.ru/zerno_coffee_club", NAME, True),
        ("https://vk.com/zerno_coffee_club", NAME, True),
        ("http://vk.com/zerno_coffee_club", NAME, True),
        ("https://www.vk.com/zerno_coffee_club", NAME, True),
        ("www.vk.ru/zerno_coffee_club", NAME, True),
        ("https://m.vk.com/zerno_coffee_club", NAME, True),
        ("m.vk.ru/zerno_coffee_club", NAME, True),
        ("vkontakte.ru/zerno_coffee_club", NAME, True),
        ("HTTPS://VK.COM/Zerno_Coffee_Club", NAME, True),
        ("https://vk.com/zerno_coffee_club/", NAME, True),
        ("https://vk.com/zerno_coffee_club?from=search", NAME, True),
        ("https://vk.com/zerno_coffee_club#wall", NAME, True),
        ("https://vk.com/zerno_coffee_club/?w=wall-123_1&from=x#top", NAME, True),
        ("vk.com/club123", ID, True),
        ("https://vk.com/public123/", ID, True),
        ("m.vk.com/event123?z=1", ID, True),
        ("https://vk.com/wall-123_456", ID, True),
        ("vk.ru/wall-123_456?reply=7", ID, True),
        ("wall-123_456", ID, True),
        ("https://vk.com/feed?w=wall-123_456", ID, True),
        ("https://vk.com/photo-123_457239017", ID, True),
        ("https://vk.com/board123", ID, True),
        ("[club123|Кофейня Зерно]", ID, True),
        ("(https://vk.com/zerno_coffee_club).", NAME, True),
        ("«vk.com/club123»", ID, True),
        ('"zerno_coffee_club",', NAME, False),
        ("zerno.coffee", Ref("name", "zerno.coffee"), False),
    ],
)
def test_spellings_of_one_community(token: str, ref: Ref | None, strong: bool | None):
    parsed = parse_token(token)
    if ref is None:
        assert parsed.ref is None
        return
    assert parsed.reason is None
    assert parsed.ref == ref
    assert parsed.strong is strong


@pytest.mark.parametrize(
    "token, fragment",
    [
        ("id123", "user's profile"),
        ("ID123", "user's profile"),
        ("vk.com/id1", "user's profile"),
        ("https://vk.com/id1?w=wall1_2", "user's profile"),
        ("@id5", "user's profile"),
        ("vk.com/wall123_456", "user's wall"),
        ("wall1_2", "user's wall"),
        ("vk.com/photo5_6", "photo of a user"),
        ("https://t.me/zerno", "links to t.me, not to VK"),
        ("example.com", "links to example.com"),
        ("www.example.org/vk.com/club1", "links to www.example.org"),
        ("https://dev.vk.com/ru/method", "dev.vk.com"),
        ("ftp://vk.com/club1", "ftp"),
        ("vk.com", "front page"),
        ("https://vk.com/", "front page"),
        ("vk.com/feed", "service page"),
        ("https://vk.com/search?c=groups", "service page"),
        ("vk.com/123", "write a community id as 123"),
        ("0", "0 is not a community id"),
        ("-0", "0 is not a community id"),
        ("club0", "0 is not a community id"),
        ("club-5", "positive"),
        ("public-1", "positive"),
        ("vk.com/wall-0_1", "0 is not a community id"),
        ("99999999999", "too large"),
        ("+79161234567", "phone number"),
        ("zerno@example.ru", "e-mail"),
        ("Кофейня", "not a community address"),
        ("zer%no", "not a community address"),
        ("a" * 33, "longer than a VK screen name"),
        ("x" * 400, "too long"),
        ("z", "too short"),
        ("zerno..club", "not a valid VK screen name"),
    ],
)
def test_rejections_say_why(token: str, fragment: str):
    parsed = parse_token(token)
    assert parsed.ref is None
    assert parsed.reason is not None and fragment in parsed.reason, parsed.reason


def test_sentence_punctuation_is_not_part_of_a_name():
    assert parse_token("zerno_coffee_club!").ref == NAME
    assert parse_token("vk.com/zerno_coffee_club).").ref == NAME


def test_reason_quotes_what_was_written():
    reason = parse_token("vk.com/id1").reason
    assert reason is not None and "'vk.com/id1'" in reason
