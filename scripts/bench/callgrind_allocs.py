#!/usr/bin/env python3
"""Counts the calls to the C allocator in a callgrind dump (scripts/bench.sh):

  callgrind_allocs.py CALLGRIND_OUT

prints the number of calls to malloc, calloc, realloc, posix_memalign,
aligned_alloc and memalign made by the dumped window (all threads). Rust's
global allocator calls these, so with the counters zeroed after a warm-up
this divided by the requests served is the allocations per request.
"""

import re
import sys

ALLOC = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"}
names = {}


def name(value):
    # Name compression: "(12) malloc" defines id 12, "(12)" refers to it.
    m = re.match(r"\((\d+)\)(?: (.*))?$", value)
    if not m:
        return value
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), "?")


total = 0
callee = None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("fn="):
        name(line[3:].strip())
    elif line.startswith("cfn="):
        callee = name(line[4:].strip())
    elif line.startswith("calls="):
        if callee in ALLOC:
            total += int(line[6:].split()[0])
print(total)
