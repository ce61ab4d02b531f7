#!/usr/bin/python3
"""Write rpmdb.sqlite, the rpm database fixture of test_scan_inventory.

The database has rpm's SQLite schema (a Packages table of header blobs as
rpm's sqlite backend stores them: index count, data length, big-endian
index entries, data) and is left in WAL mode like a real one. Run it from
this directory; the output is committed so the tests need no Python.
"""
import os
import sqlite3
import struct

NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
INT32, STRING, BIN = 4, 6, 7
IMMUTABLE = 63


def header(fields):
    """fields: list of (tag, type, value); returns the exported header blob."""
    data = b""
    index = []
    for tag, typ, value in sorted(fields):
        if typ == INT32:
            data += b"\0" * (-len(data) % 4)
            index.append((tag, typ, len(data), 1))
            data += struct.pack(">I", value)
        else:
            index.append((tag, typ, len(data), 1))
            data += value.encode() + b"\0"
    # the immutable region tag first, with its trailer at the end of data
    il = len(index) + 1
    trailer = struct.pack(">iiii", IMMUTABLE, BIN, -il * 16, 16)
    index.insert(0, (IMMUTABLE, BIN, len(data), 16))
    data += trailer
    blob = struct.pack(">II", il, len(data))
    for tag, typ, off, count in index:
        blob += struct.pack(">IIII", tag, typ, off, count)
    return blob + data


PACKAGES = [
    [(NAME, STRING, "bash"), (VERSION, STRING, "5.1.8"), (RELEASE, STRING, "6.el9_1"),
     (ARCH, STRING, "x86_64"), (SOURCERPM, STRING, "bash-5.1.8-6.el9_1.src.rpm")],
    [(NAME, STRING, "openssl-libs"), (EPOCH, INT32, 1), (VERSION, STRING, "3.0.7"),
     (RELEASE, STRING, "24.el9"), (ARCH, STRING, "x86_64"),
     (SOURCERPM, STRING, "openssl-3.0.7-24.el9.src.rpm")],
    [(NAME, STRING, "tzdata"), (EPOCH, INT32, 0), (VERSION, STRING, "2024a"),
     (RELEASE, STRING, "1.el9"), (ARCH, STRING, "noarch"),
     (SOURCERPM, STRING, "tzdata-2024a-1.el9.src.rpm")],
    [(NAME, STRING, "gpg-pubkey"), (VERSION, STRING, "b86b3716"), (RELEASE, STRING, "61e69f29")],
]

path = "rpmdb.sqlite"
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, "
           "blob BLOB NOT NULL)")
db.execute("CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, "
           "FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))")
for i, fields in enumerate(PACKAGES, 1):
    db.execute("INSERT INTO Packages (hnum, blob) VALUES (?, ?)", (i, header(fields)))
    db.execute("INSERT INTO Name VALUES (?, ?, 0)", (dict((t, v) for t, _, v in fields)[NAME], i))
db.commit()
db.close()

# An SQLite database that is not an rpm database.
path = "not-rpmdb.sqlite"
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
db.execute("INSERT INTO notes (body) VALUES ('hello')")
db.commit()
db.close()
