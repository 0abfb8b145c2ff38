"""Reads what `bureau matrix setup` and `bureau matrix state set` created, with matrix-nio: a
Matrix client nobody on this project wrote. Prints one JSON object on stdout.

usage: nio_read.py HOMESERVER USER PASSWORD ALIAS... -- STATE_ROOM_ALIAS EVENT_TYPE STATE_KEY
"""

import asyncio
import json
import sys

from nio import AsyncClient, LoginResponse, RoomResolveAliasResponse, RoomGetStateEventResponse


async def main(argv):
    homeserver, user, password = argv[0], argv[1], argv[2]
    separator = argv.index("--")
    aliases = argv[3:separator]
    state_alias, event_type, state_key = argv[separator + 1:separator + 4]
    client = AsyncClient(homeserver, user)
    result = {"aliases": {}, "state": None}
    try:
        login = await client.login(password)
        if not isinstance(login, LoginResponse):
            raise SystemExit(f"login failed: {login}")
        result["user_id"] = login.user_id
        for alias in aliases:
            resolved = await client.room_resolve_alias(alias)
            result["aliases"][alias] = (
                resolved.room_id if isinstance(resolved, RoomResolveAliasResponse) else None
            )
        room = await client.room_resolve_alias(state_alias)
        if isinstance(room, RoomResolveAliasResponse):
            await client.join(room.room_id)
            state = await client.room_get_state_event(room.room_id, event_type, state_key)
            if isinstance(state, RoomGetStateEventResponse):
                result["state"] = state.content
            else:
                result["state_error"] = str(state)
    finally:
        await client.close()
    print(json.dumps(result))


asyncio.run(main(sys.argv[1:]))
