"""Taking a token apart: Go's RawURLEncoding segments, and headers remembered without trusting them."""

from __future__ import annotations

import pytest

from plugin import tokens as tokenlib
from plugin.errors import InvalidToken
from tests.support import tokens as t


@pytest.mark.parametrize(("segment", "decoded"), [
    ("", b""),
    ("YQ", b"a"),
    ("YR", b"a"),  # non-zero trailing bits: Go's non-strict decoder, as golang-jwt v4 uses it, accepts them
    ("YWI", b"ab"),
    ("YWJj", b"abc"),
    ("-_-_", b"\xfb\xff\xbf"),
    ("YW\nJj", b"abc"),  # Go's decoder skips CR and LF wherever they are
    ("YWJj\r\n", b"abc"),
    ("\nYWJjZA", b"abcd"),  # the length that counts is the one without them
    ("Y\r\nQ", b"a"),
])
def test_unpadded_base64url_segments_decode(segment, decoded):
    assert tokenlib.decode_segment(segment) == decoded


@pytest.mark.parametrize("segment", [
    "YQ==",  # padding: RawURLEncoding has none
    "YWI=",
    "+/+/",  # the standard alphabet's characters
    "YW Jj",
    "YW\tJj",
    "YWJjZ",  # a length no encoder produces
    "YWJj\u00e9",
    "YW.J",
    "!!!!",
])
def test_anything_else_is_not_a_segment(segment):
    with pytest.raises(InvalidToken):
        tokenlib.decode_segment(segment)


def test_a_memoized_header_gives_the_same_token_as_a_fresh_parse(signing_key):
    memo = tokenlib.HeaderMemo()
    first, second = t.sign(signing_key, t.claims(sub="a")), t.sign(signing_key, t.claims(sub="b"))
    tokenlib.parse(first, memo)
    remembered = tokenlib.parse(second, memo)
    assert remembered == tokenlib.parse(second)
    assert len(memo) == 1


def test_a_header_that_fails_a_check_is_not_remembered():
    memo = tokenlib.HeaderMemo()
    token = t.raw_token({"alg": "XS256", "kid": "k"}, t.claims())
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokenlib.parse(token, memo)
    assert len(memo) == 0


def test_a_memoized_header_does_not_excuse_a_bad_payload(signing_key):
    memo = tokenlib.HeaderMemo()
    good = t.sign(signing_key)
    tokenlib.parse(good, memo)
    header, _, signature = good.split(".")
    with pytest.raises(InvalidToken):
        tokenlib.parse(f"{header}.not+base64url.{signature}", memo)


def test_the_memo_is_bounded_and_skips_long_headers(signing_key):
    memo = tokenlib.HeaderMemo(size=4)
    for n in range(10):
        tokenlib.parse(t.sign_any_header(signing_key, {"alg": "RS256", "kid": f"key-{n}"}), memo)
        assert len(memo) <= 4
    long_header = {"alg": "RS256", "kid": "k" * tokenlib.HEADER_MEMO_MAX_SEGMENT}
    fresh = tokenlib.HeaderMemo()
    tokenlib.parse(t.sign_any_header(signing_key, long_header), fresh)
    assert len(fresh) == 0


def _payload_parse(signing_key, payload_json: bytes):
    header = t.sign(signing_key).split(".")[0]
    return tokenlib.parse(t.sign_segments(signing_key, header, t.b64url(payload_json)), tokenlib.HeaderMemo())


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 400, b"2" + b"0" * 308, b"-2" + b"0" * 308])
def test_a_number_beyond_float64_is_not_json_as_go_reads_it(signing_key, number):
    with pytest.raises(InvalidToken):
        _payload_parse(signing_key, b'{"sub":"a","exp":' + number + b"}")


def test_the_longest_integer_literal_that_fits_float64_is_read(signing_key):
    number = int("1" + "0" * 308)  # 309 digits, 1e308: under float64's largest
    assert _payload_parse(signing_key, b'{"sub":"a","n":' + str(number).encode() + b"}").claims["n"] == number


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(signing_key, constant):
    with pytest.raises(InvalidToken):
        _payload_parse(signing_key, b'{"sub":"a","n":' + constant + b"}")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_in_the_header_are_not_json(constant):
    header = b'{"alg":"RS256","kid":"k1","x":' + constant + b"}"
    with pytest.raises(InvalidToken):
        tokenlib.parse(".".join([t.b64url(header), t.b64url(b'{"sub":"a"}'), t.b64url(b"sig")]))


@pytest.mark.parametrize("payload", [b"[]", b'"claims"', b"7", b"true"])
def test_a_payload_that_is_not_a_json_object_is_refused(signing_key, payload):
    with pytest.raises(InvalidToken):
        _payload_parse(signing_key, payload)


@pytest.mark.parametrize("header", [b'[{"alg":"RS256"}]', b"null", b'"RS256"'])
def test_a_header_that_is_not_a_json_object_is_refused(header):
    with pytest.raises(InvalidToken):
        tokenlib.parse(".".join([t.b64url(header), t.b64url(b'{"sub":"a"}'), t.b64url(b"sig")]))


def test_text_after_the_header_object_is_refused_as_go_s_unmarshal_does():
    token = ".".join([t.b64url(b'{"alg":"RS256","kid":"k"} {}'), t.b64url(b'{"sub":"a"}'), t.b64url(b"sig")])
    with pytest.raises(InvalidToken):
        tokenlib.parse(token)


def test_text_after_the_claims_object_is_ignored_also_behind_a_memoized_header(signing_key):
    memo = tokenlib.HeaderMemo()
    header = t.sign(signing_key).split(".")[0]
    for _ in range(2):  # the second parse finds the header in the memo
        parsed = tokenlib.parse(".".join([header, t.b64url(b'{"sub":"a"} trailing'), t.b64url(b"sig")]), memo)
        assert parsed.claims == {"sub": "a"}
    assert len(memo) == 1


@pytest.mark.parametrize("alg", [["RS256"], {"RS256": 1}, 256, None])
def test_an_alg_that_is_not_a_string_is_refused(alg):
    with pytest.raises(InvalidToken):
        tokenlib.parse(t.raw_token({"alg": alg, "kid": "k"}, {"sub": "a"}))


@pytest.mark.parametrize(("raw", "decoded"), [
    (b"a\xe2\x82b", "a\ufffd\ufffdb"),  # a cut-short sequence: one U+FFFD per byte, as Go's decoder writes
    (b"\xf0\x9f\x98", "\ufffd\ufffd\ufffd"),
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate
    (b"\xff", "\ufffd"),
])
def test_bytes_that_are_not_utf8_become_one_replacement_character_each_as_in_go(signing_key, raw, decoded):
    parsed = _payload_parse(signing_key, b'{"sub":"' + raw + b'","' + raw + b'":1}')
    assert parsed.claims == {"sub": decoded, decoded: 1}


def test_a_lone_surrogate_escape_decodes_to_the_replacement_character(signing_key):
    parsed = _payload_parse(signing_key, b'{"sub":"a\\ud800b","\\udfff":["\\ud800"]}')
    assert parsed.claims == {"sub": "a\ufffdb", "\ufffd": ["\ufffd"]}


def test_lone_surrogates_are_replaced_inside_nested_objects_and_colliding_keys_keep_the_later(signing_key):
    parsed = _payload_parse(signing_key, b'{"sub":"a","x":[{"k\\ud800":1,"k\\udfff":2,"n":["\\udc00"]}]}')
    assert parsed.claims == {"sub": "a", "x": [{"k\ufffd": 2, "n": ["\ufffd"]}]}


def test_a_surrogate_pair_escape_decodes_to_its_character(signing_key):
    assert _payload_parse(signing_key, b'{"sub":"\\ud83d\\ude00"}').claims == {"sub": "\U0001F600"}


def test_escapes_of_ordinary_characters_decode_as_they_are(signing_key):
    assert _payload_parse(signing_key, b'{"sub":"caf\\u00e9"}').claims == {"sub": "caf\u00e9"}


def nested_token(levels: int, inner: str = "") -> str:
    """A token (unsigned: parsing comes first) whose payload nests ``levels`` deep: the claims object
    itself, then arrays."""
    arrays = levels - 1
    payload = '{"sub":"a","x":' + "[" * arrays + inner + "]" * arrays + "}"
    return ".".join([t.b64url(b'{"alg":"RS256","kid":"k"}'), t.b64url(payload.encode()), t.b64url(b"sig")])


def test_claims_nested_as_deep_as_the_bound_are_read():
    assert tokenlib.parse(nested_token(tokenlib.MAX_JSON_DEPTH)).claims["sub"] == "a"


def test_claims_nested_as_deep_as_the_bound_are_read_among_many_shallow_brackets():
    # More brackets than the bound in all, so the nesting is measured rather than assumed shallow.
    arrays = tokenlib.MAX_JSON_DEPTH - 1
    shallow = "[" + ",".join(["[]"] * tokenlib.MAX_JSON_DEPTH) + "]"
    payload = '{"sub":"a","pad":' + shallow + ',"x":' + "[" * arrays + "]" * arrays + "}"
    token = ".".join([t.b64url(b'{"alg":"RS256","kid":"k"}'), t.b64url(payload.encode()), t.b64url(b"sig")])
    assert tokenlib.parse(token).claims["sub"] == "a"


def test_claims_nested_one_level_deeper_than_the_bound_are_refused():
    with pytest.raises(InvalidToken) as refused:
        tokenlib.parse(nested_token(tokenlib.MAX_JSON_DEPTH + 1))
    assert refused.value.detail == "segment nests JSON too deep"


def test_claims_nested_too_deep_behind_a_shallow_sibling_are_refused():
    arrays = tokenlib.MAX_JSON_DEPTH
    payload = '{"sub":"a","pad":[[],[[]]],"x":' + "[" * arrays + "]" * arrays + "}"
    token = ".".join([t.b64url(b'{"alg":"RS256","kid":"k"}'), t.b64url(payload.encode()), t.b64url(b"sig")])
    with pytest.raises(InvalidToken) as refused:
        tokenlib.parse(token)
    assert refused.value.detail == "segment nests JSON too deep"


def test_a_header_nested_deeper_than_the_bound_is_refused():
    header = '{"alg":"RS256","x":' + "{\"a\":" * 600 + "1" + "}" * 600 + "}"
    token = ".".join([t.b64url(header.encode()), t.b64url(b'{"sub":"a"}'), t.b64url(b"sig")])
    with pytest.raises(InvalidToken) as refused:
        tokenlib.parse(token)
    assert refused.value.detail == "segment nests JSON too deep"


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"sub":"a","note":"' + "[" * 2000 + '","esc":"\\"' + "{" * 2000 + '"}'
    token = ".".join([t.b64url(b'{"alg":"RS256"}'), t.b64url(text.encode()), t.b64url(b"sig")])
    assert tokenlib.parse(token).claims["note"] == "[" * 2000


def test_the_bound_holds_in_a_thread_as_deep_as_a_server_s():
    """The answer must not depend on how deep the caller's stack already is."""
    import threading

    answers: list[object] = []

    def deep_caller(depth: int) -> None:
        if depth:
            deep_caller(depth - 1)
            return
        try:
            answers.append(tokenlib.parse(nested_token(tokenlib.MAX_JSON_DEPTH, inner='"\\ud800"')).claims["sub"])
        except Exception as exc:  # noqa: BLE001 - the assertion below shows what was raised
            answers.append(exc)

    thread = threading.Thread(target=deep_caller, args=(150,))
    thread.start()
    thread.join()
    assert answers == ["a"]


def test_an_unclosed_string_runs_to_the_end_so_the_depth_scan_never_backtracks():
    text = '"' + '\\"' * 1000
    assert tokenlib._JSON_STRING.match(text).end() == len(text)


def test_a_flood_of_escaped_quotes_behind_deep_brackets_is_still_judged_too_deep():
    payload = "[" * 513 + '"' + '\\"' * 20_000
    token = ".".join([t.b64url(b'{"alg":"RS256"}'), t.b64url(payload.encode()), t.b64url(b"sig")])
    with pytest.raises(InvalidToken) as refused:
        tokenlib.parse(token)
    assert refused.value.detail == "segment nests JSON too deep"


def test_brackets_trailing_the_claims_object_do_not_count_as_nesting():
    token = ".".join([t.b64url(b'{"alg":"RS256"}'), t.b64url(b'{"sub":"a"}' + b"[" * 600), t.b64url(b"sig")])
    assert tokenlib.parse(token).claims == {"sub": "a"}


def test_brackets_trailing_a_null_payload_do_not_count_as_nesting():
    token = ".".join([t.b64url(b'{"alg":"RS256"}'), t.b64url(b"null" + b"[" * 600), t.b64url(b"sig")])
    assert tokenlib.parse(token).claims == {}
