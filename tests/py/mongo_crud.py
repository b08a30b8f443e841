"""pymongo 4.x CRUD against the project's MongoDB test server, each answer as mongod gives it
(issue 20 item 2): insert (ordered/unordered, writeErrors, E11000 on a unique index), update
operators with upsert and multi, delete with limit 0/1, find with filter operators, sort, skip,
limit and projection, count_documents/estimated_document_count/distinct, and 238 for what the
server leaves out. Driven by tests/mongo_crud.rs.

The password comes from the environment (MONGO_PW), never argv. Prints one line
`pymongo-crud-ok <version>` on success; any failure raises (non-zero exit)."""

import os
import sys

import pymongo
from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure


def expect_code(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except OperationFailure as e:
        assert e.code == code, f"expected code {code}, got {e.code}: {e}"
    else:
        raise AssertionError(f"expected code {code}, got success")


def main():
    port = int(sys.argv[1])
    c = pymongo.MongoClient(
        "127.0.0.1",
        port,
        username="root",
        password=os.environ["MONGO_PW"],
        authSource="admin",
        directConnection=True,
        serverSelectionTimeoutMS=3000,
    )
    users = c["pycrud"]["User"]
    users.create_index("username", unique=True)

    # insert: generated ObjectId _id, duplicates refused by the unique index (11000).
    r = users.insert_one({"username": "admin", "enabled": True, "n": 1})
    assert isinstance(r.inserted_id, ObjectId)
    try:
        users.insert_one({"username": "admin"})
        raise AssertionError("duplicate inserted")
    except DuplicateKeyError as e:
        assert e.code == 11000, e
        assert "index: username_1 dup key: { username: \"admin\" }" in str(e), e
        assert e.details["keyValue"] == {"username": "admin"}, e.details

    # ordered stops at the first error; unordered goes on; nothing claimed that was not done.
    docs = [{"username": "a"}, {"username": "admin"}, {"username": "b"}]
    try:
        users.insert_many(docs)
        raise AssertionError("ordered batch with a duplicate succeeded")
    except BulkWriteError as e:
        assert e.details["nInserted"] == 1, e.details
        assert [w["index"] for w in e.details["writeErrors"]] == [1], e.details
    assert users.count_documents({"username": "b"}) == 0
    try:
        users.insert_many([{"username": "c"}, {"username": "a"}, {"username": "d"}], ordered=False)
        raise AssertionError("unordered batch with a duplicate succeeded")
    except BulkWriteError as e:
        assert e.details["nInserted"] == 2, e.details
        assert e.details["writeErrors"][0]["code"] == 11000, e.details
    assert sorted(users.distinct("username")) == ["a", "admin", "c", "d"]
    assert users.count_documents({}) == 4
    assert users.estimated_document_count() == 4

    # update operators, multi, upsert.
    r = users.update_one(
        {"username": "admin"},
        {"$set": {"cfg.theme": "dark"}, "$inc": {"n": 2}, "$push": {"logs": "l1"},
         "$addToSet": {"tags": {"$each": ["t", "t"]}}, "$unset": {"enabled": ""}},
    )
    assert (r.matched_count, r.modified_count) == (1, 1)
    got = users.find_one({"username": "admin"}, {"_id": 0})
    assert got == {"username": "admin", "n": 3, "cfg": {"theme": "dark"}, "logs": ["l1"], "tags": ["t"]}, got
    r = users.update_many({}, {"$set": {"seen": True}})
    assert (r.matched_count, r.modified_count) == (4, 4)
    r = users.update_many({}, {"$set": {"seen": True}})
    assert (r.matched_count, r.modified_count) == (4, 0)
    r = users.update_one({"username": "z"}, {"$set": {"n": 9}, "$setOnInsert": {"created": 1}}, upsert=True)
    assert r.matched_count == 0 and isinstance(r.upserted_id, ObjectId)
    assert users.find_one({"username": "z"}, {"_id": 0}) == {"username": "z", "n": 9, "created": 1}
    r = users.update_one({"username": "z"}, {"$set": {"n": 10}, "$setOnInsert": {"created": 2}}, upsert=True)
    assert r.upserted_id is None and users.find_one({"username": "z"})["created"] == 1
    users.update_many({}, {"$pull": {"tags": "t"}})
    assert users.count_documents({"tags": "t"}) == 0
    expect_code(11000, users.update_one, {"username": "c"}, {"$set": {"username": "a"}})
    expect_code(66, users.update_one, {"username": "c"}, {"$set": {"_id": 5}})
    expect_code(14, users.update_one, {"username": "c"}, {"$inc": {"username": 1}})
    expect_code(238, users.update_one, {"username": "c"}, {"$rename": {"n": "m"}})
    r = users.replace_one({"username": "c"}, {"username": "c", "replaced": True})
    assert r.modified_count == 1 and users.find_one({"username": "c"}, {"_id": 0}) == {"username": "c", "replaced": True}

    # find: operators, sort, skip, limit, projection.
    names = [d["username"] for d in users.find({}, sort=[("username", -1)], skip=1, limit=2)]
    assert names == ["d", "c"], names
    assert [d["username"] for d in users.find({"username": {"$in": ["a", "d"]}}).sort("username", 1)] == ["a", "d"]
    assert users.count_documents({"$or": [{"n": {"$gte": 3}}, {"replaced": {"$exists": True}}]}) == 3
    assert users.count_documents({"username": {"$regex": "^AD", "$options": "i"}}) == 1
    assert users.count_documents({"username": {"$nin": ["a"]}, "seen": True}) == 2
    assert list(users.find({"username": "admin"}, {"cfg.theme": 1, "_id": 0})) == [{"cfg": {"theme": "dark"}}]
    expect_code(238, lambda: list(users.find({"tags": {"$elemMatch": {"$eq": 1}}})))
    expect_code(238, lambda: list(users.find({}).hint("username_1")))
    expect_code(238, users.find_one_and_update, {"username": "a"}, {"$set": {"n": 1}})
    expect_code(2, lambda: list(users.find({"n": {"$bogus": 1}})))

    # delete: limit 1 and 0.
    assert users.delete_one({"seen": True}).deleted_count == 1
    assert users.delete_many({"seen": True}).deleted_count == 2
    assert users.count_documents({}) == 2
    assert users.delete_many({}).deleted_count == 2
    assert users.count_documents({}) == 0
    c.close()
    print("pymongo-crud-ok", pymongo.version)


if __name__ == "__main__":
    main()
