#!/usr/bin/python3
"""Self instruction counts per function from callgrind output files, per packet,
for perf/esp/insns.sh.

  callgrind_sum.py PACKETS TOP OUT [OUT2]     (PACKETS: one count, or one per file: N1,N2)

Prints "key value" lines: total / aead / libc / ours per packet for each file, then
the TOP functions by self count (of the first file, or of both when two are given),
per packet. callgrind_annotate lists a function once per source file its inlined
code came from (a Rust function shows up under core/src/slice/mod.rs, ...); this sums
per function instead, reading the output format directly
(https://valgrind.org/docs/manual/cl-format.html): cost lines after "fn=" belong to
that function, except the line right after "calls=", which is the callee's inclusive
cost.

Groups: aead = libIPSec_MB (the object), ring (functions whose own source file is
in the ring crate: its Rust code and its pregenerated assembly) and aesni-gcm (its
functions, aesni_gcm::*); dpdk = DPDK's shared objects (librte_*: the PMDs' rx and tx
in the gateway, insns.sh GW=1) and ld.so (__tls_get_addr, their per-lcore variables);
libc = libc.so (memcpy, memset, malloc called by our code); ours = everything else (our
crates and the Rust standard library code inlined into them).
"""
import re
import sys
from collections import defaultdict


def parse(path):
    names = {}  # (kind, id) -> name: compressed names are defined once, then "(id)"
    cost = defaultdict(int)
    file_of = {}  # (ob, fn) -> the source file named before "fn=" (the function's own)
    ob = fl = fn = ""
    skip_next = False
    total = 0
    npos = 1  # position columns before the cost: "positions: line", or "instr line" (--dump-instr=yes)

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", rest)
        if not m:
            return rest
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, rest)

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if line.startswith("positions:"):
                npos = len(line.split()) - 1
                continue
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                ir = int(parts[npos]) if len(parts) > npos else 0
                cost[(ob, fn)] += ir
                total += ir
                continue
            key, _, rest = line.partition("=")
            if key == "ob":
                ob = name("ob", rest)
            elif key == "fl":
                fl = name("fl", rest)
            elif key == "fn":
                fn = name("fn", rest)
                file_of.setdefault((ob, fn), fl)
            elif key in ("cob", "cfn", "cfi", "cfl", "fi", "fe"):
                # Define compressed names; the callee's do not change ob/fn.
                name({"cob": "ob", "cfn": "fn", "cfi": "fl", "cfl": "fl", "fi": "fl", "fe": "fl"}.get(key, key), rest)
            elif key == "calls":
                skip_next = True
    return {k: (n, file_of.get(k, "")) for k, n in cost.items()}, total


def group(ob, fn, fl):
    # ring's Rust code and its assembly (pregenerated/*.S) both come from the crate's
    # sources; our own AES-GCM (dpdk-bindings/aesni-gcm) by its functions' names.
    if ("libIPSec_MB" in ob or "/ring-0." in fl or fn.startswith("ring_core_")
            or fn.startswith("aesni_gcm::")):
        return "aead"
    if "/librte_" in ob or "/ld-linux" in ob:
        return "dpdk"
    if "/libc.so" in ob or "/libc-" in ob:
        return "libc"
    return "ours"


def short(ob, fn):
    # Unnamed code of a stripped library: say which library.
    if fn.startswith("0x") and ob:
        return f"{ob.rsplit('/', 1)[-1]} {fn}"
    return fn


def main():
    counts, top, files = [int(n) for n in sys.argv[1].split(",")], int(sys.argv[2]), sys.argv[3:]
    runs = [parse(p) for p in files]
    per = [counts[min(i, len(counts) - 1)] for i in range(len(runs))]
    for i, (cost, total) in enumerate(runs):
        packets = per[i]
        sums = defaultdict(int)
        for (ob, fn), (n, fl) in cost.items():
            sums[group(ob, fn, fl)] += n
        print(f"total{i} {total / packets:.1f}")
        for g in ("aead", "dpdk", "libc", "ours"):
            print(f"{g}{i} {sums[g] / packets:.1f}")
    per_fn = [defaultdict(int) for _ in runs]
    for i, (cost, _) in enumerate(runs):
        for (ob, fn), (n, _) in cost.items():
            per_fn[i][short(ob, fn)] += n
    ranked = sorted(set().union(*per_fn), key=lambda k: -max(d.get(k, 0) / n for d, n in zip(per_fn, per)))[:top]
    for k in ranked:
        print("fn " + " ".join(f"{d.get(k, 0) / n:.1f}" for d, n in zip(per_fn, per)) + " " + k)


if __name__ == "__main__":
    main()
