"""Does a password log in? An independent check of the end state with pymongo.

Reads MONGO_PORT, MONGO_USER and MONGO_PW from the environment (never argv). Exit 0: it logs in
with SCRAM-SHA-256; 1: rejected with code 18; 2: anything else."""

import os
import sys

import pymongo
from pymongo.errors import OperationFailure

try:
    c = pymongo.MongoClient(
        "127.0.0.1",
        int(os.environ["MONGO_PORT"]),
        username=os.environ["MONGO_USER"],
        password=os.environ["MONGO_PW"],
        authSource="admin",
        authMechanism="SCRAM-SHA-256",
        directConnection=True,
        serverSelectionTimeoutMS=5000,
    )
    c.admin.command("ping")
    sys.exit(0)
except OperationFailure as e:
    sys.exit(1 if e.code == 18 else 2)
except Exception as e:  # noqa: BLE001 - any other failure is "no verdict"
    print(type(e).__name__, file=sys.stderr)
    sys.exit(2)
