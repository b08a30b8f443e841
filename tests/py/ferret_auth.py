"""pymongo through the FerretDB-shaped front end: an independent referee for issue 21.

Reads everything from the environment (never argv): MONGO_PORT, MONGO_USER, MONGO_PW, and
ACTION: `login` (SCRAM-SHA-256 login, then an authenticated listDatabases), `ping` (an
unauthenticated ping: the front end's PostgreSQL leg), or `update` (log in, then
`updateUser MONGO_USER pwd=NEW_PW`, as db.changeUserPassword sends it).
Prints one JSON line: {"ok": bool, "code": int|null, "errmsg": str|null}. Never a password."""

import json
import os
import sys

import pymongo
from pymongo.errors import OperationFailure

port = int(os.environ["MONGO_PORT"])
action = os.environ.get("ACTION", "login")
kw = dict(directConnection=True, serverSelectionTimeoutMS=5000)
if action != "ping":
    kw.update(
        username=os.environ["MONGO_USER"],
        password=os.environ["MONGO_PW"],
        authSource="admin",
        authMechanism="SCRAM-SHA-256",
    )
out = {"ok": False, "code": None, "errmsg": None}
try:
    c = pymongo.MongoClient("127.0.0.1", port, **kw)
    if action == "ping":
        c.admin.command("ping")
    elif action == "login":
        c.admin.command("listDatabases")
    elif action == "update":
        c.admin.command("updateUser", os.environ["MONGO_USER"], pwd=os.environ["NEW_PW"])
    else:
        raise SystemExit(f"unknown ACTION {action}")
    out["ok"] = True
except OperationFailure as e:
    out["code"] = e.code
    out["errmsg"] = (e.details or {}).get("errmsg", str(e))
except Exception as e:  # noqa: BLE001 - any other failure is reported by its type only
    out["errmsg"] = type(e).__name__
print(json.dumps(out))
