"""pymongo 4.x against the project's MongoDB test server: the replies a test server must give
exactly as mongod does (issue 9, "Test server fidelity"): hello's topologyVersion, 31
RoleNotFound for an unknown role with nothing created, and createIndexes that really creates
an index (listed by index_information, idempotent, 86 on a name clash). Driven by
tests/mongo_wire.rs.

The password comes from the environment (MONGO_PW), never argv. Prints one line
`pymongo-fidelity-ok <version>` on success; any failure raises (non-zero exit)."""

import os
import sys

if sys.flags.optimize:
    sys.exit("PYTHONOPTIMIZE strips this script's asserts: run it without -O")

import bson
import pymongo
from pymongo.errors import OperationFailure


def expect_code(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except OperationFailure as e:
        assert e.code == code, f"expected code {code}, got {e.code}: {e}"
    else:
        raise AssertionError(f"expected code {code}, got success")


def main():
    port = int(sys.argv[1])
    pw = os.environ["MONGO_PW"]
    c = pymongo.MongoClient(
        "127.0.0.1",
        port,
        username="root",
        password=pw,
        authSource="admin",
        directConnection=True,
        serverSelectionTimeoutMS=3000,
    )
    hello = c.admin.command("hello")
    tv = hello["topologyVersion"]
    assert isinstance(tv["processId"], bson.ObjectId), tv
    assert isinstance(tv["counter"], bson.int64.Int64), tv

    db = c["pyfidelity"]
    expect_code(31, db.command, "createUser", "ghost", pwd="ghost-pw-1", roles=["noSuchRole"])
    expect_code(31, c.admin.command, "createUser", "ghost", pwd="ghost-pw-1",
                roles=[{"role": "root", "db": "pyfidelity"}])
    assert db.command("usersInfo", "ghost")["users"] == []
    assert c.admin.command("usersInfo", "ghost")["users"] == []

    coll = db["servers"]
    name = coll.create_index([("name", pymongo.ASCENDING)], unique=True)
    assert name == "name_1", name
    info = coll.index_information()
    assert set(info) == {"_id_", "name_1"}, info
    assert info["name_1"]["key"] == [("name", 1)], info
    assert info["name_1"].get("unique") is True, info
    assert coll.create_index([("name", pymongo.ASCENDING)], unique=True) == "name_1"
    expect_code(86, coll.create_index, [("other", pymongo.ASCENDING)], name="name_1")
    assert set(coll.index_information()) == {"_id_", "name_1"}
    assert "servers" in db.list_collection_names()
    assert "pyfidelity" in c.list_database_names()
    c.close()
    print("pymongo-fidelity-ok", pymongo.version)


if __name__ == "__main__":
    main()
