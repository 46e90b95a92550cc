"""Example custom hooks for tyk-auth0-plugin: serve with ``tyk-auth0-plugin serve --hooks docs/examples/hooks_example.py``.

Each name must also appear in the bundle manifest under the matching slot
(``pre``, ``post_key_auth``, ``post``, ``response``); the gateway calls hooks by name.
"""

from __future__ import annotations

import uuid

from plugin.extensions import Hooks, Refuse

hooks = Hooks()


@hooks.pre("AddRequestId")
def add_request_id(request, session, metadata, spec):
    """Give every request a correlation id before authentication runs."""
    if request.get_header("X-Request-Id") is None:
        request.add_header("X-Request-Id", uuid.uuid4().hex)


@hooks.post_key_auth("RequireWriteScopeForWrites")
def require_write_scope(request, session, metadata, spec):
    """Refuse writes unless the verified token had the write scope (copied to the session's metadata)."""
    scopes = session.metadata.get("scope", "").split()
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and "write:things" not in scopes:
        raise Refuse(403, "write:things scope required")
    request.add_header("X-Scopes", " ".join(scopes))
    return request, session, metadata


@hooks.response("HideUpstreamServer")
def hide_upstream_server(request, response, session, metadata, spec):
    """Do not tell clients what the upstream runs."""
    response.delete_header("Server")
    return response
