"""Where a request carries its token: the header, query parameter and cookie native JWT reads.

The order is the gateway's (``getAuthToken`` in gateway/middleware.go): the header unless
disabled, then the query parameter if enabled and not empty, then the cookie if enabled and not
empty, a later source replacing an earlier one. The gateway sends each request header and query
parameter with its first value only, which is also the one it reads itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plugin.coprocess import MiniRequestObject

DEFAULT_HEADER = "Authorization"
# Go's net/http reads no cookies at all from a request carrying more than this many.
MAX_COOKIES = 3000
FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: header and cookie names
_COOKIE_VALUE_REFUSED = re.compile(r'[^\x20-\x7e]|["\\]')  # and ';', which never survives the split
_ASCII_SPACE = " \t\n\r"


def canonical_header(name: str) -> str:
    """A header name as Go stores and looks it up: first letter and each one after '-' upper case."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def cookie_value(header: str, name: str) -> str:
    """The first valid cookie called ``name`` in a Cookie header, as Go's ``Request.Cookie`` finds it."""
    if header.count(";") + 1 > MAX_COOKIES:
        return ""
    for part in header.strip(_ASCII_SPACE).split(";"):
        part = part.strip(_ASCII_SPACE)
        cookie, _, value = part.partition("=")
        if cookie.strip(_ASCII_SPACE) != name:
            continue
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if not _COOKIE_VALUE_REFUSED.search(value):
            return value
    return ""


@dataclass(frozen=True)
class TokenSource:
    """Where one API's tokens are read from; ``None`` turns a source off."""

    header: str | None = DEFAULT_HEADER  # in canonical form
    param: str | None = None
    cookie: str | None = None

    @property
    def places(self) -> int:
        return sum(place is not None for place in (self.header, self.param, self.cookie))

    def describe(self) -> str:
        """For messages to the operator: where a client must put the token."""
        places = []
        if self.header is not None:
            places.append(f"the {self.header} header")
        if self.param is not None:
            places.append(f"the query parameter {self.param!r}")
        if self.cookie is not None:
            places.append(f"the cookie {self.cookie!r}")
        return " or ".join(places)

    def extract(self, request: MiniRequestObject) -> str:
        """The raw credential (``Bearer`` prefix and all), or "" when the request carries none."""
        headers = request.headers
        token = headers.get(self.header, "") if self.header is not None else ""
        if self.param is not None:
            token = request.params.get(self.param, "") or token
        if self.cookie is not None:
            cookies = headers.get("Cookie", "")
            if cookies:
                token = cookie_value(cookies, self.cookie) or token
        return token


DEFAULT_SOURCE = TokenSource()  # shared, so the request path can test it with `is`
