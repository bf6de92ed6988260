#!/usr/bin/env python3
"""ref_gguf_hashes.py — per-tensor FNV-1a 64 of a GGUF file's tensor bytes.
usage: ref_gguf_hashes.py LLORCH GGUF TAG  → lines "TAG<TAB>name<TAB>type<TAB>fnv1a64-hex"
(the table comes from `llorch gguf inspect --json`; the bytes straight from the file)."""
import json, subprocess, sys

def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return h

llorch, path, tag = sys.argv[1:4]
d = json.loads(subprocess.check_output([llorch, "gguf", "inspect", path, "--json"]))
raw = open(path, "rb").read()
for t in d["tensors"]:
    o = d["data_offset"] + t["offset"]
    print("%s\t%s\t%s\t%016x" % (tag, t["name"], t["type"], fnv(raw[o:o + t["bytes"]])))
