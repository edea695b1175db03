"""A short flow with the Python client generated from docs/openapi.json (see scripts/api-client).

Usage: PYTHONPATH=<dir holding slipway_client> python api-client-flow.py URL SETUP_CODE
Fails (non-zero exit) when any step does not answer as documented.
"""

import sys

from slipway_client import AuthenticatedClient, Client
from slipway_client.api.account import login, setup
from slipway_client.api.servers import create_server, get_server, list_servers
from slipway_client.api.tokens import create_token
from slipway_client.models import CreateServer, CreateToken, LoginRequest, ServerProvider, SetupRequest

url, code = sys.argv[1], sys.argv[2]
email, password = "client@example.com", "generated-client-password"


def expect(response, status):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content!r}")
    if response.parsed is None:
        sys.exit(f"the answer did not parse: {response.content!r}")
    return response.parsed


anonymous = Client(base_url=url, raise_on_unexpected_status=True)
made = expect(
    setup.sync_detailed(
        client=anonymous,
        body=SetupRequest(code=code, email=email, name="Client", organization="Client Co", password=password),
    ),
    201,
)
print(f"set up: organization {made.data.organization_id}")

logged_in = expect(login.sync_detailed(client=anonymous, body=LoginRequest(email=email, password=password)), 201)
session = AuthenticatedClient(base_url=url, token=logged_in.data.plain_text_token)
print(f"logged in: token {logged_in.data.id}")

token = expect(create_token.sync_detailed(client=session, body=CreateToken(name="generated client")), 201)
client = AuthenticatedClient(base_url=url, token=token.data.plain_text_token)
print(f"token created: {token.data.id} with {token.data.abilities}")

before = expect(list_servers.sync_detailed(client=client), 200)
assert before.meta.total == 0, before

created = expect(
    create_server.sync_detailed(
        client=client, body=CreateServer(name="web-1", provider=ServerProvider.CUSTOM, ip_address="192.0.2.10")
    ),
    201,
)
print(f"server registered: {created.data.id}; authorize with: {created.data.authorization.command[:40]}…")

after = expect(list_servers.sync_detailed(client=client, per_page=5), 200)
assert after.meta.total == 1 and after.data[0].name == "web-1", after
shown = expect(get_server.sync_detailed(client=client, server="web-1"), 200)
assert shown.data.id == created.data.id and shown.data.sites_count == 0, shown
print("the generated client works")
