#!/usr/bin/env python3
"""cmp_dump.py — compares two tensor dumps op by op, bitwise: llama.cpp's
(tools/ref/ref_dump_tensors.c) and the engine's (LLORCH_DUMP_TENSORS=FILE,
src/engine/arch/llama.c). Usage: cmp_dump.py REF.txt OURS.txt [max_lines]
Each of our tensors is matched to the next llama.cpp tensor of the same name
and op (in order); prints elements that differ, max |diff| and max ulps."""
import struct, sys

def load(path):
    out, hdr = [], None
    for line in open(path):
        if line.startswith("T "):
            p = line.split()
            hdr = (p[1], p[2]) if "(" not in line else None
            if "(not dumped)" in line: hdr = None
            continue
        if line.startswith("B "): continue
        if hdr:
            out.append((hdr[0], hdr[1], [float.fromhex(v) for v in line.split()]))
            hdr = None
    return out

def ulps(a, b):
    ia = struct.unpack("<i", struct.pack("<f", a))[0]
    ib = struct.unpack("<i", struct.pack("<f", b))[0]
    if ia < 0: ia = -2**31 - ia
    if ib < 0: ib = -2**31 - ib
    return abs(ia - ib)

ref, ours = load(sys.argv[1]), load(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9
j, shown = 0, 0
for name, op, v in ours:
    k = max(0, j - 12)
    # llama.cpp keeps only the output rows after the last layer's attention:
    # there, our last row(s) are compared with its
    while k < len(ref) and not (ref[k][0] == name and ref[k][1] == op and len(v) % len(ref[k][2]) == 0):
        k += 1
    if k == len(ref):
        print(f"{name} {op}: no match in ref"); continue
    j = k + 1
    r = ref[k][2]
    v = v[len(v) - len(r):]
    nd = sum(1 for a, b in zip(r, v) if a != b)
    md = max((abs(a - b) for a, b in zip(r, v)), default=0)
    mu = max((ulps(a, b) for a, b in zip(r, v)), default=0)
    print(f"{name:16s} {op:8s} n={len(v):5d} differ={nd:5d} max|d|={md:.3g} max_ulps={mu}")
    shown += 1
    if shown >= limit: break
