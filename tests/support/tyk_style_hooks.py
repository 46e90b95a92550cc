"""A hooks file in the style of a Tyk embedded-Python plugin, run against ``plugin.extensions``.

It holds what such a plugin does with the objects Tyk's runtime hands it: 3- and 4-argument
request hooks that return Tyk's tuples, ``tyk.log``/``tyk.log_error``, the request helpers,
``request.object`` (body, raw_body, url, method, return_overrides), session metadata after
authentication, and response hooks on headers, multi-valued headers and the body.
tests/unit/test_tyk_style_hooks.py runs it through the hook router and
tests/e2e/test_hooks_through_gateway.py through the real gateway.

Hook names are CamelCase, as Tyk manifests name them.
"""

import json

from plugin.extensions import Hooks
from plugin.extensions import TykGateway as tyk

hooks = Hooks()

LEGACY_ORDERS_PATH = "/legacy/orders"
ORDERS_TARGET = "tyk://orders-api/orders"
REPLACED_BODY = b"replaced by ReplaceUpstreamBody"


# -- pre: before authentication --------------------------------------------------------------------


@hooks.pre
def StampRequest(request, session, spec):
    tyk.log("StampRequest: stamping " + request.object.method + " " + request.object.url, "info")
    request.add_header("X-Stamped-By", "tyk-style-hooks")
    return request, session


@hooks.pre
def TidyRequest(request, session, metadata, spec):
    if request.get_header("X-Debug-Token") is not None:
        request.delete_header("X-Debug-Token")
        request.add_header("X-Debug-Token-Removed", "true")
    request.add_param("via", "gateway")
    request.delete_param("debug")
    return request, session, metadata


@hooks.pre
def CheckUploadBody(request, session, metadata, spec):
    overrides = request.object.return_overrides
    media_type = request.get_header("Content-Type")
    if media_type == "application/json":
        if not request.object.raw_body:
            overrides.response_code = 400
            overrides.response_error = "a JSON body is required"
            return request, session, metadata
        try:
            document = json.loads(request.object.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            overrides.response_code = 400
            overrides.response_error = "the body must be a JSON object"
    elif media_type == "image/png" and not request.object.raw_body.startswith(b"\x89PNG"):
        # A PNG is not UTF-8, so the gateway leaves body empty: only raw_body has its bytes.
        overrides.response_code = 415
        overrides.response_error = "only PNG images are accepted"
    return request, session, metadata


@hooks.pre
def AnswerFromQuery(request, session, spec):
    params = request.object.params
    overrides = request.object.return_overrides
    overrides.headers["X-Answered-By"] = "AnswerFromQuery"
    overrides.response_code = int(params.get("code", "200"))
    if params.get("as") == "error":
        overrides.response_error = "answered as an error"
    else:
        overrides.response_body = "answered as a body"
    if params.get("raw") == "yes":
        overrides.override_error = True
    return request, session


# -- post_key_auth: after the plugin's auth check -------------------------------------------------


@hooks.post_key_auth
def GreetCaller(request, session, spec):
    tyk.log("GreetCaller: " + session.metadata["sub"] + " is signed in", "info")
    return request, session


@hooks.post_key_auth
def RequireEuPlan(request, session, metadata, spec):
    overrides = request.object.return_overrides
    if "plan" not in session.metadata:
        reason = "the token carries no plan"
    else:
        plan = json.loads(session.metadata["plan"])
        if "tier" not in plan:
            reason = "the plan names no tier"
        elif session.metadata.get("region") != "eu":
            reason = "this API serves the eu region only"
        else:
            return request, session, metadata
    tyk.log_error("RequireEuPlan: refused " + session.metadata["sub"] + ": " + reason)
    overrides.response_code = 403
    overrides.response_error = reason
    return request, session, metadata


# -- post: after the session is built -------------------------------------------------------------


@hooks.post
def RerouteLegacyOrders(request, session, spec):
    if request.object.url != LEGACY_ORDERS_PATH:
        return request, session
    if request.object.method == "POST":
        request.object.url = ORDERS_TARGET
        request.object.method = "PUT"
    else:
        request.object.return_overrides.response_code = 405
        request.object.return_overrides.response_error = "the legacy orders path takes POST only"
    return request, session


# -- response: on the upstream's answer -----------------------------------------------------------


@hooks.response
def TagResponse(request, response, session, metadata, spec):
    tyk.log("TagResponse: upstream answered " + str(response.status_code), "info")
    response.headers["X-Upstream-Status"] = str(response.status_code)
    return response


@hooks.response
def SetTwoCookies(request, response, session, metadata, spec):
    cookies = response.multivalue_headers.add()
    cookies.key = "Set-Cookie"
    cookies.values.extend(["theme=dark; Path=/", "lang=fr; Path=/; Secure"])


@hooks.response
def ReplaceUpstreamBody(request, response, session, metadata, spec):
    response.raw_body = REPLACED_BODY
