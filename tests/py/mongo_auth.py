"""pymongo 4.x against the project's MongoDB test server: both SCRAM mechanisms, a wrong
password (code 18), and a password change through updateUser. Driven by tests/mongo_wire.rs.

Passwords come from the environment (MONGO_PW, MONGO_NEW_PW), never argv. Prints one line
`pymongo-ok <version>` on success; any failure raises (non-zero exit)."""

import os
import sys

if sys.flags.optimize:
    sys.exit("PYTHONOPTIMIZE strips this script's asserts: run it without -O")

import pymongo
from pymongo.errors import OperationFailure


def client(port, user, pw, mech):
    return pymongo.MongoClient(
        "127.0.0.1",
        port,
        username=user,
        password=pw,
        authSource="admin",
        authMechanism=mech,
        directConnection=True,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
    )


def must_fail_with_18(port, user, pw, mech):
    c = client(port, user, pw, mech)
    try:
        c.admin.command("ping")
    except OperationFailure as e:
        assert e.code == 18, f"{mech}: expected code 18, got {e.code}"
    else:
        raise AssertionError(f"{mech}: a wrong password logged in")
    finally:
        c.close()


def main():
    port = int(sys.argv[1])
    pw, new_pw = os.environ["MONGO_PW"], os.environ["MONGO_NEW_PW"]
    assert pymongo.version_tuple[0] == 4, pymongo.version
    mechs = ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    for mech in mechs:
        c = client(port, "root", pw, mech)
        assert c.admin.command("ping")["ok"] == 1.0
        users = c.admin.command("usersInfo", "root")["users"]
        assert sorted(users[0]["mechanisms"]) == mechs, users
        c.close()
        must_fail_with_18(port, "root", "wrong-" + pw, mech)
        must_fail_with_18(port, "nobody", pw, mech)

    keeper = client(port, "root", pw, "SCRAM-SHA-256")
    keeper.admin.command("updateUser", "root", pwd=new_pw, writeConcern={"w": "majority"})
    assert keeper.admin.command("ping")["ok"] == 1.0, "old connection must survive"
    for mech in mechs:
        must_fail_with_18(port, "root", pw, mech)
        c = client(port, "root", new_pw, mech)
        assert c.admin.command("ping")["ok"] == 1.0
        c.close()
    keeper.close()
    print("pymongo-ok", pymongo.version)


if __name__ == "__main__":
    main()
