"""Differential: how a request carries its token, through the real gateway.

test_differential.py varies the token inside ``Authorization: Bearer <token>``; here the token is
sound and what varies is the header around it (schemes, blanks, duplicates, sizes, bytes), the
other places it may sit (query parameter and cookie, with auth_configs' use_param and use_cookie
off and on), and the request itself (HEAD, a CORS preflight, POST bodies). Native JWT is the
reference; the plugin is asked both without the ID extractor and with it, where the gateway keys
its session cache on the raw header value. The differences asserted as such are the gateway's,
listed in the README (*Where the plugin deliberately differs from native JWT*).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.stack import Stack
from tests.e2e.test_differential import auth_calls, body

pytestmark = pytest.mark.e2e

APIS = (gw.NATIVE_API_ID, gw.PLUGIN_API_ID, gw.PLUGIN_SUBJECT_API_ID)  # native, extractor, per subject
Headers = Sequence[tuple[str, str | bytes]]
Answer = tuple[int, bytes]
NOT_AUTHORISED = (403, body("Key not authorised"))  # the gateway's own refusal when it cannot call the plugin


def exchange(stack: Stack, method: str, path: str, headers: Headers, payload: bytes = b"") -> Answer:
    """One request with exactly these header lines (repeated names, any bytes http.client lets through);
    a grant becomes b"granted", since the echo's text names the API's own headers."""
    assert stack.gateway is not None
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=15)
    try:
        conn.putrequest(method, path)
        conn.putheader("Accept", "application/json")
        for name, value in headers:
            conn.putheader(name, value)
        if payload or method == "POST":
            conn.putheader("Content-Length", str(len(payload)))
        # The gateway may answer before it has read the whole request (a header over its limit).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.endheaders(payload or None)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, b"granted" if response.status == 200 else data


def fresh_token(stack: Stack, **claims: Any) -> str:
    """A token for a new subject: never seen by the gateway, so the extractor API calls the plugin."""
    return stack.token(sub=f"shape-{uuid.uuid4().hex[:10]}@clients", **claims)


def forged(stack: Stack) -> str:
    token = fresh_token(stack)
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


@dataclass(frozen=True)
class Shape:
    name: str
    headers: Callable[[str, str, str], Headers]  # (valid token, another valid token, forged token) -> header lines
    plugin_expected: Answer | None = None  # set only where the gateway itself answers the plugin APIs otherwise
    blob: int = 0  # characters of padding claim in the valid token


def auth(value: str | bytes) -> Callable[[str, str, str], Headers]:
    """A single Authorization header; {t}, {u} and {f} in ``value`` stand for the three tokens."""
    def lines(t: str, u: str, f: str) -> Headers:
        if isinstance(value, bytes):
            return [("Authorization", value.replace(b"{t}", t.encode()))]
        return [("Authorization", value.format(t=t, u=u, f=f))]
    return lines


HEADER_SHAPES = [
    Shape("Basic credentials", lambda t, u, f: [("Authorization", "Basic dXNlcjpwYXNz")]),
    Shape("BEARER in capitals", auth("BEARER {t}")),
    Shape("two spaces after Bearer", auth("Bearer  {t}")),
    Shape("a tab after Bearer", auth("Bearer\t{t}")),
    Shape("blanks around the value (Go trims them)", auth("  Bearer {t} \t ")),
    Shape("a word after the token", auth("Bearer {t} extra")),
    Shape("two credentials in one value", auth("Bearer {t},Bearer {u}")),
    Shape("Token scheme", auth("Token {t}")),
    Shape("Bearer alone", lambda t, u, f: [("Authorization", "Bearer")]),
    Shape("only blanks", lambda t, u, f: [("Authorization", "   ")]),
    Shape("empty value", lambda t, u, f: [("Authorization", "")]),
    Shape("a trailing dot after the token", auth("Bearer {t}.")),
    Shape("the token in quotes", auth('Bearer "{t}"')),
    Shape("two headers, the valid one first", lambda t, u, f: [("Authorization", "Bearer " + t),
                                                                ("Authorization", "Bearer " + f)]),
    Shape("two headers, the forged one first", lambda t, u, f: [("Authorization", "Bearer " + f),
                                                                 ("Authorization", "Bearer " + t)]),
    Shape("two headers, an empty one first", lambda t, u, f: [("Authorization", ""), ("Authorization", "Bearer " + t)]),
    Shape("header name in lower case", lambda t, u, f: [("authorization", "Bearer " + t)]),
    Shape("only in X-Authorization", lambda t, u, f: [("X-Authorization", "Bearer " + t)]),
    Shape("a valid 9 KB token", auth("Bearer {t}"), blob=9_000),
    Shape("9 KB of garbage", lambda t, u, f: [("Authorization", "Bearer " + "A" * 9_000)]),
    Shape("70 KB of garbage", lambda t, u, f: [("Authorization", "Bearer " + "A" * 70_000)]),
    Shape("over the gateway's header limit (1.1 MB)", lambda t, u, f: [("Authorization", "Bearer " + "A" * 1_100_000)]),
    Shape("a UTF-8 letter after the token", auth("Bearer {t}é".encode())),
    Shape("a control byte (0x01) after the token", auth(b"Bearer {t}\x01")),
    Shape("a NUL byte before the token", auth(b"Bearer \x00{t}")),
    Shape("a DEL byte after the token", auth(b"Bearer {t}\x7f")),
    Shape("folded over two lines (obsolete line folding)", auth(b"Bearer\r\n {t}")),
    # The gateway cannot encode a header that is not UTF-8 into its call to the plugin: it answers
    # itself, with its own spelling. Native JWT refuses the token with the same status.
    Shape("a Latin-1 byte after the token", auth(b"Bearer {t}\xe9"), plugin_expected=NOT_AUTHORISED),
]


def test_authorization_header_shapes_get_native_jwt_s_answer_from_the_plugin(plugin_stack: Stack, capsys) -> None:
    """Every header shape, with fresh tokens on each API: the same status and body from native JWT,
    the plugin keyed per subject and the plugin behind the ID extractor."""
    rows = []
    for shape in HEADER_SHAPES:
        answers = []
        for api_id in APIS:
            valid = fresh_token(plugin_stack, blob="x" * shape.blob) if shape.blob else fresh_token(plugin_stack)
            lines = shape.headers(valid, fresh_token(plugin_stack), forged(plugin_stack))
            answers.append(exchange(plugin_stack, "GET", f"/{api_id}/get", lines))
        rows.append((shape, answers))
    with capsys.disabled():
        print(f"\nheader shapes: {len(rows)} cases")
        for shape, (native, extractor, subject) in rows:
            print(f"  {shape.name:50s} native {native[0]} plugin {subject[0]} extractor {extractor[0]}")
    unexpected = []
    for shape, (native, extractor, subject) in rows:
        expected = native if shape.plugin_expected is None else shape.plugin_expected
        if extractor != expected or subject != expected:
            unexpected.append((shape.name, native, subject, extractor))
        if shape.plugin_expected is not None:
            assert native[0] == expected[0] and native != expected, (shape.name, native)
        assert 400 <= native[0] < 500 or native[0] == 200, (shape.name, native)
    assert not unexpected, unexpected
    statuses = {native[0] for _, (native, _, _) in rows}
    assert statuses == {200, 400, 403, 431}, statuses


def test_a_session_the_extractor_holds_for_a_header_value_is_served_to_that_value_only(plugin_stack: Stack) -> None:
    """Once the gateway holds the session of ``Bearer T``, each other spelling of a header carrying T
    gets native JWT's answer for it (the plugin is called for it, or the spelling is refused at the
    gateway), and ``Bearer T`` itself is served from the cache."""
    token = fresh_token(plugin_stack)
    granted = exchange(plugin_stack, "GET", f"/{gw.PLUGIN_API_ID}/get", [("Authorization", "Bearer " + token)])
    assert granted == (200, b"granted")
    spellings = ["Bearer  {t}", "Bearer\t{t}", "Bearer {t} extra", "Bearer {t},Bearer {t}", "Token {t}", "Bearer {t}.",
                 'Bearer "{t}"', "{t}", "bearer {t}", "BEARER {t}", "Basic {t}"]
    differences = []
    for spelling in spellings:
        lines = [("Authorization", spelling.format(t=token))]
        native = exchange(plugin_stack, "GET", f"/{gw.NATIVE_API_ID}/get", lines)
        extractor = exchange(plugin_stack, "GET", f"/{gw.PLUGIN_API_ID}/get", lines)
        if native != extractor:
            differences.append((spelling, native, extractor))
    before = auth_calls(plugin_stack)
    repeat = exchange(plugin_stack, "GET", f"/{gw.PLUGIN_API_ID}/get", [("Authorization", "Bearer " + token)])
    assert not differences, differences
    assert repeat == (200, b"granted")
    assert auth_calls(plugin_stack) == before


def test_of_two_authorization_headers_only_the_first_is_read_and_keys_the_extractor_s_cache(
        plugin_stack: Stack) -> None:
    """The gateway, native JWT and the plugin all read the first header: a forged first header is
    refused even after the valid token behind it was granted alone, and a forged second header
    neither stops the valid first one nor is served the session it got."""
    token, fake = fresh_token(plugin_stack), forged(plugin_stack)
    path = f"/{gw.PLUGIN_API_ID}/get"
    first_valid = exchange(plugin_stack, "GET", path, [("Authorization", "Bearer " + token),
                                                       ("Authorization", "Bearer " + fake)])
    fake_alone = exchange(plugin_stack, "GET", path, [("Authorization", "Bearer " + fake)])
    first_fake = exchange(plugin_stack, "GET", path, [("Authorization", "Bearer " + fake),
                                                      ("Authorization", "Bearer " + token)])
    assert first_valid == (200, b"granted")
    assert fake_alone == (403, body("Key not authorized"))
    assert first_fake == (403, body("Key not authorized"))


@contextlib.contextmanager
def apis_changed(stack: Stack, change: Callable[[dict[str, Any], bool], None]) -> Iterator[None]:
    """For the test's duration: ``change(api, is_native)`` applied to the three APIs."""
    gateway = stack.gateway
    assert gateway is not None
    saved = {api_id: copy.deepcopy(gateway.apis[api_id]) for api_id in APIS}
    try:
        for api_id, api in saved.items():
            edited = copy.deepcopy(api)
            change(edited, api_id == gw.NATIVE_API_ID)
            gateway.put_api(edited)
        gateway.reload()
        yield
    finally:
        for api in saved.values():
            gateway.put_api(api)
        gateway.reload()


def token_places(places: Mapping[str, Any]) -> Callable[[dict[str, Any], bool], None]:
    """Native JWT's auth_configs.jwt, and the same keys in the plugin APIs' config_data."""
    def change(api: dict[str, Any], native: bool) -> None:
        if native:
            api["auth_configs"] = {"jwt": dict(places)}
        else:
            api["config_data"] = {**api["config_data"], **places}
    return change


# (case, query, header lines); {t} is a valid token, {f} a forged one. The parameter and the cookie take
# the header's name (Authorization), as in the gateway when param_name and cookie_name are unset.
PLACE_SHAPES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("header valid, parameter forged", "?Authorization={f}", [("Authorization", "Bearer {t}")]),
    ("header forged, parameter valid", "?Authorization={t}", [("Authorization", "Bearer {f}")]),
    ("header valid, parameter empty", "?Authorization=", [("Authorization", "Bearer {t}")]),
    ("header junk, parameter valid with Bearer", "?Authorization=Bearer%20{t}", [("Authorization", "Bearer null")]),
    ("header valid, parameter Bearer alone", "?Authorization=Bearer%20", [("Authorization", "Bearer {t}")]),
    ("header valid, parameter twice: empty then forged", "?Authorization=&Authorization={f}",
     [("Authorization", "Bearer {t}")]),
    ("header valid, cookie forged", "", [("Authorization", "Bearer {t}"), ("Cookie", "Authorization={f}")]),
    ("header forged, cookie valid", "", [("Authorization", "Bearer {f}"), ("Cookie", "theme=dark; Authorization={t}")]),
    ("header junk, cookie valid with Bearer", "", [("Authorization", "Bearer null"), ("Cookie", "Authorization=Bearer {t}")]),
    ("no header, parameter valid", "?Authorization={t}", []),
    ("no header, cookie valid", "", [("Cookie", "Authorization={t}")]),
]
PLACE_SETTINGS = [{}, {"use_param": True}, {"use_cookie": True}, {"use_param": True, "use_cookie": True}]


def _filled(text: str, valid: str, fake: str) -> str:
    return text.format(t=valid, f=fake)


@pytest.mark.parametrize("places", PLACE_SETTINGS, ids=["header only", "use_param", "use_cookie", "param and cookie"])
def test_a_token_in_the_header_parameter_or_cookie_gets_native_jwt_s_answer(plugin_stack: Stack,
                                                                            places: dict[str, Any]) -> None:
    """With use_param and use_cookie off and on: the plugin per subject answers as native JWT. Behind
    the extractor (which reads the Authorization header) the plugin answers the same whenever the
    header is there, and the header's value alone then gets native's answer again: a session granted
    for a token found elsewhere is never served to the header's junk. Without the header, the gateway's
    extractor answers 400 itself (README, Token location)."""
    differences, statuses = [], set()
    with apis_changed(plugin_stack, token_places(places)):
        for case, query, lines in PLACE_SHAPES:
            answers: list[Answer] = []
            replays: list[Answer | None] = []
            for api_id in APIS:
                valid, fake = fresh_token(plugin_stack), forged(plugin_stack)
                sent = [(name, _filled(value, valid, fake)) for name, value in lines]
                answers.append(exchange(plugin_stack, "GET", f"/{api_id}/get" + _filled(query, valid, fake), sent))
                header = [line for line in sent if line[0] == "Authorization"]
                replays.append(exchange(plugin_stack, "GET", f"/{api_id}/get", header) if header else None)
            native, extractor, subject = answers
            statuses.add(native[0])
            expected_extractor = native if replays[0] is not None else (400, body("Authorization field missing"))
            if subject != native or extractor != expected_extractor or replays[1] != replays[0] or replays[2] != replays[0]:
                differences.append((case, answers, replays))
    assert not differences, differences
    assert {200, 403} <= statuses, statuses  # every setting both grants and refuses


def test_cookie_header_lines_after_the_first_are_not_sent_to_the_plugin(plugin_stack: Stack) -> None:
    """Go reads cookies from every Cookie line; the gateway sends the plugin only the first value of
    each header, so a cookie on a later line is unseen and the plugin answers from what it gets
    (README, differences)."""
    cases = [  # (case, header lines, native's status, the plugin's status)
        ("header valid, forged cookie on the second line", [("Authorization", "Bearer {t}"), ("Cookie", "x=1"),
                                                            ("Cookie", "Authorization={f}")], 403, 200),
        ("header forged, valid cookie on the second line", [("Authorization", "Bearer {f}"), ("Cookie", "x=1"),
                                                            ("Cookie", "Authorization={t}")], 200, 403),
        ("header forged, valid cookie on the first line", [("Authorization", "Bearer {f}"),
                                                           ("Cookie", "Authorization={t}"), ("Cookie", "x=1")], 200, 200),
    ]
    with apis_changed(plugin_stack, token_places({"use_cookie": True})):
        seen = []
        for case, lines, _, _ in cases:
            answers = []
            for api_id in (gw.NATIVE_API_ID, gw.PLUGIN_SUBJECT_API_ID):
                valid, fake = fresh_token(plugin_stack), forged(plugin_stack)
                sent = [(name, _filled(value, valid, fake)) for name, value in lines]
                answers.append(exchange(plugin_stack, "GET", f"/{api_id}/get", sent)[0])
            seen.append((case, *answers))
    assert seen == [(case, native, plugin) for case, _, native, plugin in cases]


@pytest.mark.parametrize("token_kind", ["valid", "forged", "none"])
def test_head_options_and_post_requests_get_native_jwt_s_answer(plugin_stack: Stack, token_kind: str) -> None:
    """The method and the body do not change the verdict: HEAD, OPTIONS without CORS (authenticated
    like any request), and POSTs with a urlencoded body naming the header, JSON, and bytes that are
    not UTF-8 (the gateway sends those as raw_body only)."""
    requests: list[tuple[str, str, bytes, list[tuple[str, str]]]] = [
        ("HEAD", "/get", b"", []),
        ("OPTIONS", "/get", b"", []),
        ("POST", "/post", b"", []),
        ("POST", "/post", b"Authorization=Bearer+{t}", [("Content-Type", "application/x-www-form-urlencoded")]),
        ("POST", "/post", b'{"a": [1, 2]}', [("Content-Type", "application/json")]),
        ("POST", "/post", b"\xff\xfe\x00binary", [("Content-Type", "application/octet-stream")]),
    ]
    differences, statuses = [], set()
    for method, path, payload, extra in requests:
        answers = []
        for api_id in APIS:
            token = {"valid": fresh_token(plugin_stack), "forged": forged(plugin_stack), "none": ""}[token_kind]
            lines = [("Authorization", "Bearer " + token)] if token else []
            sent_payload = payload.replace(b"{t}", token.encode()) if token else payload
            answers.append(exchange(plugin_stack, method, f"/{api_id}{path}", [*lines, *extra], sent_payload))
        statuses.add(answers[0][0])
        if len(set(answers)) != 1:
            differences.append((method, payload[:30], answers))
    assert not differences, differences
    assert statuses <= {"valid": {200, 405}, "forged": {403}, "none": {400}}[token_kind], statuses


@pytest.mark.parametrize("passthrough", [False, True], ids=["preflight answered", "options passthrough"])
def test_a_cors_preflight_gets_the_same_answer_from_both(plugin_stack: Stack, passthrough: bool) -> None:
    """With CORS on, the gateway answers a preflight before authentication (or, with
    options_passthrough, sends it upstream unauthenticated) on either kind of API; other requests
    are still authenticated."""
    cors = {"enable": True, "allowed_origins": ["https://app.example"], "allowed_methods": ["GET", "POST"],
            "allowed_headers": ["Authorization"], "options_passthrough": passthrough, "max_age": 10}
    preflight = [("Origin", "https://app.example"), ("Access-Control-Request-Method", "GET"),
                 ("Access-Control-Request-Headers", "authorization")]
    with apis_changed(plugin_stack, lambda api, native: api.update(CORS=cors)):
        answers = {}
        for case, method, lines in [
            ("preflight", "OPTIONS", preflight),
            ("GET with the token", "GET", [("Origin", "https://app.example"), ("Authorization", "Bearer {t}")]),
            ("GET without a token", "GET", [("Origin", "https://app.example")]),
        ]:
            answers[case] = [exchange(plugin_stack, method, f"/{api_id}/get",
                                      [(n, v.format(t=fresh_token(plugin_stack)) if n == "Authorization" else v)
                                       for n, v in lines]) for api_id in APIS]
    assert all(len(set(row)) == 1 for row in answers.values()), answers
    assert answers["preflight"][0][0] == (405 if passthrough else 204)  # the echo refuses OPTIONS
    assert answers["GET with the token"][0] == (200, b"granted")
    assert answers["GET without a token"][0] == (400, body("Authorization field missing"))


def test_a_body_over_the_gateway_s_grpc_reply_limit_stops_the_plugin_api_at_the_gateway(plugin_stack: Stack) -> None:
    """The plugin's reply carries the request body back, and the gateway reads replies up to 4 MiB by
    default (coprocess_options.grpc_recv_max_size): a 5 MiB body with a valid token gets the gateway's
    own refusal, where native JWT passes it upstream (README, differences; troubleshooting, Large bodies)."""
    payload = b"Z" * (5 * 1024 * 1024)
    lines = [("Content-Type", "application/octet-stream")]
    answers = [exchange(plugin_stack, "POST", f"/{api_id}/post",
                        [("Authorization", "Bearer " + fresh_token(plugin_stack)), *lines], payload) for api_id in APIS]
    assert answers == [(200, b"granted"), NOT_AUTHORISED, NOT_AUTHORISED]
