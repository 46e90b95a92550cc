"""Nothing the plugin writes shows a token, a signature or a secret."""

from __future__ import annotations

import base64
import json

from plugin.check import ApiSource
from plugin.config import parse_config_data
from plugin.server import ServerSettings
from tests.support.objects import config_data

HMAC_SECRET = b"HmacS3cretNeverShown-0123456789"
HMAC_B64 = base64.b64encode(HMAC_SECRET).decode()
GATEWAY_SECRET = "GwS3cretNeverShown"


def test_a_parsed_config_never_shows_its_hmac_secret():
    config = parse_config_data(config_data(jwt_source=HMAC_B64, jwt_signing_method="hmac"))
    assert config.key_source.static_key == HMAC_SECRET
    for shown in (repr(config), str(config), repr(config.key_source)):
        assert HMAC_SECRET.decode() not in shown and HMAC_B64 not in shown


def test_server_settings_never_show_the_gateway_secret():
    settings = ServerSettings(gateway_url="http://127.0.0.1:8080", gateway_secret=GATEWAY_SECRET)
    assert GATEWAY_SECRET not in repr(settings) and GATEWAY_SECRET not in str(settings)


def test_an_api_read_by_check_never_shows_its_config_data():
    data = {"jwt_source": HMAC_B64, "jwt_signing_method": "hmac"}
    source = ApiSource(kind="config_data", origin="-", data=data, raw_config=json.dumps(data))
    assert HMAC_B64 not in repr(source)
