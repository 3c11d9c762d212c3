"""Constants of the demo seed (`seeds/demo.json`) used by `tokenbroker dev` and the tests.

DEV/TEST ONLY: these secrets are public; never use them anywhere real.
"""

from __future__ import annotations

from pathlib import Path

SEED_PATH = Path(__file__).parent / "seeds" / "demo.json"

TENANT_ID = "32f56351-9165-4d79-9c8b-af73271abdc0"
TENANT_DOMAIN = "contoso.onmicrosoft.com"
PARTNER_TENANT_ID = "1e30998b-2d35-4146-971c-1ff73d93ded7"
PARTNER_TENANT_DOMAIN = "fabrikam.onmicrosoft.com"
OTHER_TENANT_ID = "5d9c0a7e-3b1f-4c6a-8e2d-9f4b7a1c3e58"   # a third tenant, allowed by no demo config

ALICE_OID = "7534753f-9276-449b-9488-06090584adce"
ALICE_UPN = "alice@contoso.onmicrosoft.com"
ALICE_NAME = "Alice Example"
BOB_OID = "998a8901-e0a6-4bac-8a3e-1f2e02c98f87"
BOB_UPN = "bob@contoso.onmicrosoft.com"
BOB_NAME = "Bob Example"
CAROL_OID = "2188f61c-e6ff-4005-98f4-ee98762eb5a3"   # partner tenant; guest in the home tenant
CAROL_UPN = "carol@fabrikam.onmicrosoft.com"
CAROL_NAME = "Carol Partner"
DAVE_OID = "c3b1e2f4-7a8d-4e5f-9b6c-1d2e3f4a5b6c"    # the third tenant's user
DAVE_UPN = "dave@northwind.onmicrosoft.com"

# The broker's own API registration (accessTokenAcceptedVersion 2).
BROKER_CLIENT_ID = "201ea455-4157-4a78-94af-e9ffba44359b"
BROKER_APP_ID_URI = f"api://{BROKER_CLIENT_ID}"
BROKER_SECRET = "brk8Q~3FDZk2uM0h990KdtCZqbT0p2uYaeJOvwO4L1"
BROKER_SCOPE = f"{BROKER_APP_ID_URI}/user_impersonation"
BROKER_APP_ROLE = "access_as_application"

# The minimal client: a confidential web app with loopback redirect URIs (any port).
CLIENT_ID = "aee9263c-7eb3-40ce-857f-9912512efe7a"
CLIENT_SECRET = "mcl8Q~SH9a85zA6nkzRlC3m4b71CggB7aGVDL6r5r"
CLIENT_REDIRECT_URIS = ("http://localhost:*/auth/callback", "http://127.0.0.1:*/auth/callback")

# A public (desktop) client: redirect http://localhost on any port.
PUBLIC_CLIENT_ID = "4b6775d1-fa0b-4d38-8fe1-6c0ea6787280"

# A daemon with app-role assignments (client credentials).
DAEMON_CLIENT_ID = "c6a738d0-ff10-4f69-ade2-841188aa9c16"
DAEMON_SECRET = "dmn8Q~rulBXhtlMJ_gxq7jWUbx7o4BiG0hywp_OuO2"

# Azure Communication Services first-party resource (v1 tokens, like real Teams tokens).
ACS_APP_ID = "1fd5118e-2576-4263-8130-9503064c837a"
ACS_APP_ID_URI = "https://auth.msft.communication.azure.com"
ACS_TEAMS_SCOPES = (f"{ACS_APP_ID_URI}/Teams.ManageCalls", f"{ACS_APP_ID_URI}/Teams.ManageChats")

# A downstream workspace API the broker calls On-Behalf-Of the user; admin-consent only.
WORKSPACE_CLIENT_ID = "6f62eff1-7cfb-4d9d-a62d-bbcf6df67d93"
WORKSPACE_APP_ID_URI = f"api://{WORKSPACE_CLIENT_ID}"
WORKSPACE_SCOPE = f"{WORKSPACE_APP_ID_URI}/user_impersonation"
WORKSPACE_APP_ROLE = "Workspace.Read.All"

# Microsoft Graph (first-party; v1 tokens). Bare scopes such as "User.Read" mean Graph.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_APP_ID_URI = "https://graph.microsoft.com"

# The ACS data plane resource (Entra bearer auth to ACS). The app id is emulator-chosen.
ACS_DATA_PLANE_APP_ID = "90ca7354-b4d8-457a-8d12-dd2765f71258"
ACS_DATA_PLANE_APP_ID_URI = "https://communication.azure.com"

# Azure Cache for Redis (Entra authentication of the broker's Redis connections). Emulator-chosen id.
REDIS_APP_ID = "3c1f4b1e-6b55-4f0e-9a43-5d2f8a7d21c9"
REDIS_APP_ID_URI = "https://redis.azure.com"

# Managed identities (GET /msi/token, App Service shape: IDENTITY_ENDPOINT + IDENTITY_HEADER).
MANAGED_IDENTITY_CLIENT_ID = "ff7ddd81-051c-42e2-bfbb-fb87ecc99c19"        # system-assigned (default)
USER_ASSIGNED_IDENTITY_CLIENT_ID = "29cd8b0e-5762-408d-b779-3c8f4597b112"  # user-assigned
MANAGED_IDENTITY_HEADER = "emu-identity-header-8Q3FDZk2uM0h990KdtCZqbT0p2"
MANAGED_IDENTITY_PATH = "/msi/token"
