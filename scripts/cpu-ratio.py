#!/usr/bin/env python3
"""CPU per request of gateway-b against gateway, from load-harness runs.

usage: scripts/cpu-ratio.py RUN_DIR [RUN_DIR...]   (each holding the harness's raw.jsonl)

The harness pins both gateways and the fake PostgREST they call to one CPU and
measures each process's CPU over each cell. On this kind of shared virtual
machine the CPU itself runs faster or slower from one cell to the next (two
cells of the same binary differ by up to 25 % in CPU per request), so the raw
ratio cannot resolve a few per cent. The fake PostgREST does the same work for
every request whichever gateway sends it, so its CPU in the same cell gauges
how fast the machine ran: the ratio of gateway CPU to upstream CPU cancels
that drift (two cells of the same binary then agree within a few per cent).

For each connection count it prints the median over rounds of
  (gateway-b CPU / its upstream CPU) / (gateway CPU / its upstream CPU)
with a bootstrap 90 % interval of that median, next to the raw paired ratio
of CPU per request."""
import json
import random
import statistics as st
import sys


def load(dirs):
    rows = []
    for d in dirs:
        with open(d + "/raw.jsonl") as f:
            for line in f:
                r = json.loads(line)
                if r.get("cpu_target_ms") and r.get("requests") and r.get("cpu_upstream_ms"):
                    r["run"] = d
                    rows.append(r)
    return rows


def interval(xs, rng):
    meds = sorted(st.median(rng.choices(xs, k=len(xs))) for _ in range(2000))
    return meds[100], meds[1899]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1:])
    rng = random.Random(1)
    print("| conns | rounds | CPU µs/req A → B (medians) | raw B/A (paired median, range) | "
          "normalised B/A (median) | 90 % interval |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in sorted({r["conns"] for r in rows}):
        raw, norm, ua, ub = [], [], [], []
        for key in sorted({(r["run"], r["round"]) for r in rows if r["conns"] == c}):
            cell = {r["target"]: r for r in rows if r["conns"] == c and (r["run"], r["round"]) == key}
            if "gateway" not in cell or "gateway-b" not in cell:
                continue
            a, b = cell["gateway"], cell["gateway-b"]
            pa, pb = a["cpu_target_ms"] / a["requests"], b["cpu_target_ms"] / b["requests"]
            raw.append(pb / pa)
            norm.append((b["cpu_target_ms"] / b["cpu_upstream_ms"]) / (a["cpu_target_ms"] / a["cpu_upstream_ms"]))
            ua.append(pa * 1000)
            ub.append(pb * 1000)
        if not norm:
            continue
        lo, hi = interval(norm, rng)
        print(f"| {c} | {len(norm)} | {st.median(ua):.0f} → {st.median(ub):.0f} | "
              f"{st.median(raw):.3f} ({min(raw):.2f}–{max(raw):.2f}) | **{st.median(norm):.3f}** | {lo:.3f}–{hi:.3f} |")


if __name__ == "__main__":
    main()
