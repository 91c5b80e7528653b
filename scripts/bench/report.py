#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into target/bench/results.md,
target/bench/results.svg (hand-written SVG, no matplotlib) and the table on
stdout.

  report.py OUT_DIR

Reads OUT_DIR/raw/: cases.jsonl (one wrk result per case), env.json (machine,
choices), cold.txt and mem-*.txt (key=value lines), and criterion's
estimates under target/criterion/ when micro-benchmarks were run.
"""

import html
import json
import os
import sys

OUT = sys.argv[1]
RAW = os.path.join(OUT, "raw")

CASES = [
    ("a", "upstream directly (the limit)"),
    ("g", "nginx proxy_pass hop, no auth (the reference)"),
    ("g_id", "nginx proxy_pass hop setting stonegate's identity and X-Forwarded-* headers (static values)"),
    ("b", "bare hyper proxy, no auth"),
    ("p", "thread-per-core hyper proxy, bodies collected, no auth (upper bound of a hyper design)"),
    ("c", "stonegate, online, token cached"),
    ("c_pub", "stonegate, public route, no token (its forwarding without the auth)"),
    ("c_log", "stonegate, token cached, access log on"),
    ("d", "stonegate, local Fernet, token cached"),
    ("d_miss", "stonegate, local Fernet, every request decoded (cache off)"),
    ("e", "stonegate, invalid token (negative cache)"),
    ("h", "nginx auth_request -> stonegate forward-auth, every request"),
    ("h_cache", "nginx auth_request -> stonegate, nginx caches the answer"),
    ("f", "keystonemiddleware auth_token (gunicorn)"),
    ("b1", "bare proxy, 1 connection (no queueing)"),
    ("c1", "stonegate, cached token, 1 connection"),
]


def kv(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.strip().split("=", 1)
                out[k] = v
    return out


env = json.load(open(os.path.join(RAW, "env.json")))
results = {}
probes = []
rounds = {}
path = os.path.join(RAW, "cases.jsonl")
if os.path.exists(path):
    for line in open(path):
        r = json.loads(line)
        if r["case"].startswith("f_probe"):
            probes.append(r)
        else:
            rounds.setdefault(r["case"], []).append(r)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# Several interleaved rounds per case: each figure is the median over rounds.
for case, rs in rounds.items():
    m = dict(rs[0])
    for k, v in rs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            m[k] = median([x[k] for x in rs])
    for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"):
        m[k] = int(m[k])
    m["rounds"] = len(rs)
    m["rps_min"] = min(x["rps"] for x in rs)
    m["rps_max"] = max(x["rps"] for x in rs)
    m["load"] = "/".join(str(x.get("load", "?")) for x in rs)
    m["rustc"] = max(int(x.get("rustc", 0)) for x in rs)
    results[case] = m


def us(v):
    return f"{v / 1000:.2f} ms" if v >= 10000 else f"{v} µs"


def ratio(x, y, key="rps"):
    if x in results and y in results and results[y][key]:
        return results[x][key] / results[y][key]
    return None


lines = []
w = lines.append
w("# stonegate load benchmark")
w("")
w(f"Run {env['date']} on {env['cpu']} ({env['nproc']} cores), {env['kernel']}, "
  f"{env['mem_gib']} GiB; {env['profile']} build; load generator {env['wrk']}, "
  f"{env['threads']} threads, {env['connections']} connections, HTTP/1.1 keep-alive, "
  f"{env['warmup_s']} s warm-up + {env['duration_s']} s per case, all on 127.0.0.1.")
w("")
w(f"Command: `{env['command']}`")
w("")
w("The machine is shared (other engineers compile on it): absolute figures drift from run to "
  "run; the ratios, measured side by side in one run, are what to read. `load` is the "
  "1-minute load average and `rustc` the number of compiler processes running when the "
  "case started.")
w("")
w(f"Each case ran in {env.get('rounds', 1)} interleaved rounds; every figure is the median over "
  "rounds, `req/s range` the spread between rounds.")
w("")
w("| case | what | req/s | req/s range | p50 | p99 | p99.9 | max | non-2xx | load / rustc |")
w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for key, what in CASES:
    r = results.get(key)
    if r is None:
        if key == "d":
            w(f"| d | {what} | — | — | — | — | — | — | — | not implemented yet |")
        continue
    if key == "f" and env.get("kmw_choice"):
        what = f"{what}: {env['kmw_choice']}"
    non2xx = r["errors_status"]
    errs = r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
    note = f"{non2xx:,.0f}" + (" (401, expected)" if key == "e" and non2xx else "")
    if errs:
        note += f" + {errs} socket errors"
    w(f"| {key} | {what} | {r['rps']:,.0f} | {r['rps_min']:,.0f}–{r['rps_max']:,.0f} | {us(r['p50_us'])} | {us(r['p99_us'])} | "
      f"{us(r['p999_us'])} | {us(r['max_us'])} | {note} | {r.get('load', '?')} / {r.get('rustc', '?')} |")
w("")

def per_round(x, y):
    return ", ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in zip(rounds.get(x, []), rounds.get(y, [])))


def met(value, ok):
    return "met" if ok else "**not met**"


w("## Ratios against nginx's hop (targets from issue 16)")
w("")
w("| ratio | value (per round) | target |")
w("| --- | ---: | --- |")
cg = ratio("c", "g")
if cg is not None:
    p99 = f"p99 {us(results['c']['p99_us'])} vs {us(results['g']['p99_us'])}"
    w(f"| c/g stonegate (online, cached) / nginx proxy_pass hop | {cg:.2f} ({per_round('c', 'g')}); {p99} | "
      f"≥ 1.0, p99 ≤ nginx's: {met(cg, cg >= 1.0 and results['c']['p99_us'] <= results['g']['p99_us'])} |")
dmc = ratio("d_miss", "c")
if dmc is not None:
    w(f"| d_miss/c local Fernet, cache off / online, cached | {dmc:.2f} ({per_round('d_miss', 'c')}) | "
      f"≥ 0.8: {met(dmc, dmc >= 0.8)} |")
if "c" in results and "g" in results and results["c"]["rps"] and results["g"]["rps"]:
    cost = 1e6 / results["c"]["rps"] - 1e6 / results["g"]["rps"]
    w(f"| auth cost per request, 1/c − 1/g | {cost:.1f} µs | ≤ 2 µs: {met(cost, cost <= 2)} |")
if "c" in results and "c_pub" in results and results["c"]["rps"] and results["c_pub"]["rps"]:
    own = 1e6 / results["c"]["rps"] - 1e6 / results["c_pub"]["rps"]
    w(f"| the auth's own cost, 1/c − 1/c_pub (token, cache lookup, identity headers; the same sidecar on a public route) | {own:.1f} µs | — (shown) |")
cpg = ratio("c_pub", "g")
if cpg is not None:
    w(f"| c_pub/g stonegate's forwarding without the auth / nginx hop | {cpg:.2f} ({per_round('c_pub', 'g')}) | — (shown) |")
hcg = ratio("h_cache", "g")
if hcg is not None:
    w(f"| h_cache/g nginx auth_request (auth answer cached by nginx) / nginx hop | {hcg:.2f} ({per_round('h_cache', 'g')}) | "
      f"≥ 0.8: {met(hcg, hcg >= 0.8)} |")
hg = ratio("h", "g")
if hg is not None:
    w(f"| h/g nginx auth_request to stonegate on every request / nginx hop | {hg:.2f} ({per_round('h', 'g')}) | — (shown) |")
gig = ratio("g_id", "g")
if gig is not None:
    w(f"| g_id/g nginx hop setting the identity headers / plain hop (what the longer head costs a hop) | {gig:.2f} ({per_round('g_id', 'g')}) | — (shown) |")
cgi = ratio("c", "g_id")
if cgi is not None:
    w(f"| c/g_id stonegate / nginx hop doing the same forwarding work, no auth | {cgi:.2f} ({per_round('c', 'g_id')}) | — (shown) |")
pg = ratio("p", "g")
if pg is not None:
    w(f"| p/g thread-per-core hyper proxy, bodies collected / nginx hop (what hyper alone reaches here) | {pg:.2f} ({per_round('p', 'g')}) | — (shown) |")
bg = ratio("b", "g")
if bg is not None:
    w(f"| b/g bare hyper proxy / nginx hop | {bg:.2f} ({per_round('b', 'g')}) | — |")
cgt = kv(os.path.join(RAW, "callgrind.txt"))
if cgt:
    sg = cgt.get("stonegate_instructions_per_request")
    bare = cgt.get("bare_proxy_instructions_per_request")
    extra = f"; bare proxy {int(bare):,}" if bare else ""
    if sg:
        w(f"| **instructions per request**, stonegate, cached token (callgrind{extra}) | {int(sg):,} | "
          "the number to watch |")
    sa = cgt.get("stonegate_allocations_per_request")
    if sa:
        ba = cgt.get("bare_proxy_allocations_per_request")
        extra = f"; bare proxy {ba}" if ba else ""
        w(f"| allocations per request (calls to malloc & co. in the same window{extra}) | {sa} | little |")
sct = kv(os.path.join(RAW, "syscalls.txt"))
if sct.get("stonegate_syscalls_per_request"):
    ng = sct.get("nginx_syscalls_per_request")
    extra = f"; nginx hop {ng}" if ng else ""
    w(f"| system calls per request, stonegate, cached token (strace -c{extra}) | "
      f"{sct['stonegate_syscalls_per_request']} | as few as nginx's |")
w("")

w("## Ratios (targets from issue 5)")
w("")
w("| ratio | value | target |")
w("| --- | ---: | --- |")
cb = ratio("c", "b")
if cb is not None:
    per_round = [c["rps"] / b["rps"] for b, c in zip(rounds.get("b", []), rounds.get("c", []))]
    pr = ", ".join(f"{x:.2f}" for x in per_round)
    w(f"| c/b throughput (cached token vs bare proxy; per round: {pr}) | {cb:.2f} | ≥ 0.90 |")
if "c1" in results and "b1" in results:
    added = results["c1"]["p99_us"] - results["b1"]["p99_us"]
    added50 = results["c1"]["p50_us"] - results["b1"]["p50_us"]
    w(f"| c1 − b1 added latency at 1 connection, p99 (p50) | {added} µs ({added50} µs) | p99 ≤ 50 µs |")
if "c" in results and "b" in results:
    added = results["c"]["p99_us"] - results["b"]["p99_us"]
    w(f"| c − b p99 at 64 connections (queueing on 2 shared cores; noise) | {added} µs | — |")
db = ratio("d", "b")
if db is not None:
    w(f"| d/b throughput (local Fernet, cached, vs bare proxy) | {db:.2f} | — |")
dmb = ratio("d_miss", "b")
if dmb is not None:
    w(f"| d_miss/b throughput (every request decoded locally vs bare proxy) | {dmb:.2f} | — |")
cf = ratio("c", "f")
if cf is not None:
    w(f"| c/f throughput (stonegate vs keystonemiddleware) | {cf:.1f}× | ≥ 20× |")
if "f" in results and "c" in results and results["c"]["p99_us"]:
    w(f"| f/c p99 latency | {results['f']['p99_us'] / results['c']['p99_us']:.1f}× | — |")
eb = ratio("e", "b")
if eb is not None:
    w(f"| e/b throughput (invalid token, answered by stonegate) | {eb:.2f} | — |")
clc = ratio("c_log", "c")
if clc is not None:
    w(f"| c_log/c throughput (cost of the per-request access log line) | {clc:.2f} | — |")
ba = ratio("b", "a")
if ba is not None:
    w(f"| b/a throughput (cost of proxying at all) | {ba:.2f} | — |")
w("")

if probes:
    w("## keystonemiddleware: gunicorn configurations tried (best one is case f)")
    w("")
    w("| gunicorn | req/s | p50 | p99 | non-2xx / socket errors |")
    w("| --- | ---: | ---: | ---: | --- |")
    for p in probes:
        errs = p["errors_connect"] + p["errors_read"] + p["errors_write"] + p["errors_timeout"]
        w(f"| {p['label']} | {p['rps']:,.0f} | {us(p['p50_us'])} | {us(p['p99_us'])} | "
          f"{p['errors_status']} / {errs} |")
    w("")

cold = kv(os.path.join(RAW, "cold.txt"))
if cold:
    calls = cold.get("cold_validate_calls", "?")
    verdict = "ok" if calls == "1" else "**NOT single-flight**"
    w("## Cold start")
    w("")
    w(f"{cold.get('cold_requests')} concurrent requests with one token stonegate had never seen, "
      "released together over already-open connections:")
    w("")
    w("| Keystone validations | 200 responses | p50 | p99 | max | wall |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: |")
    w(f"| {calls} ({verdict}; must be 1) | {cold.get('cold_ok')} | {cold.get('cold_p50_ms')} ms | "
      f"{cold.get('cold_p99_ms')} ms | {cold.get('cold_max_ms')} ms | {cold.get('cold_wall_ms')} ms |")
    if "bare_cold_p99_ms" in cold:
        w(f"| — (the same burst through the bare proxy, no auth) | {cold.get('bare_cold_ok')} | "
          f"{cold.get('bare_cold_p50_ms')} ms | {cold.get('bare_cold_p99_ms')} ms | "
          f"{cold.get('bare_cold_max_ms')} ms | {cold.get('bare_cold_wall_ms')} ms |")
    w("")
    if "keystone_one_validation_ms" in cold:
        w(f"For scale: one validation of another new token, asked of Keystone directly with curl, "
          f"took {cold['keystone_one_validation_ms']} ms; every one of the requests waits for the "
          "single validation stonegate makes.")
        w("")

mc = kv(os.path.join(RAW, "mem-cache.txt"))
mi = kv(os.path.join(RAW, "mem-identities.txt"))
if mc:
    w("## Memory per cached identity (no catalog)")
    w("")
    w("| measured | entries | RSS before → after | bytes / entry | target |")
    w("| --- | ---: | ---: | ---: | --- |")
    n = int(mc["mem_entries"])
    w(f"| `cache::Cache` (moka) | {n:,} | {int(mc['mem_rss_before_kib']) // 1024} → "
      f"{int(mc['mem_rss_after_kib']) // 1024} MiB | **{mc['mem_bytes_per_entry']}** | ≤ 400 |")
    if mi:
        w(f"| the same `Arc<Identity>`s in a `Vec` | {int(mi['mem_entries']):,} | "
          f"{int(mi['mem_rss_before_kib']) // 1024} → {int(mi['mem_rss_after_kib']) // 1024} MiB | "
          f"{mi['mem_bytes_per_entry']} | — |")
        over = int(mc["mem_bytes_per_entry"]) - int(mi["mem_bytes_per_entry"])
        w(f"| ⇒ the cache's own overhead (key, node, hash table, expiry) | | | {over} | — |")
    w("")
    w(f"`size_of::<Identity>()` = {mc['mem_size_of_identity']} bytes before any string; the "
      f"cache's weigher estimates {mc.get('mem_estimated_bytes_per_entry', '?')} bytes per entry; "
      f"spot check: {mc.get('mem_spot_present')}/{mc.get('mem_spot_checked')} entries present.")
    w("")

# criterion micro-benchmarks
crit = []
croot = env.get("criterion_dir")
if croot and os.path.isdir(croot):
    for dirpath, _dirs, files in os.walk(croot):
        if dirpath.endswith(os.sep + "new") and "estimates.json" in files and "benchmark.json" in files:
            b = json.load(open(os.path.join(dirpath, "benchmark.json")))
            e = json.load(open(os.path.join(dirpath, "estimates.json")))
            if b.get("group_id") in ("cache_hit", "strip_identity", "path_matches", "is_public"):
                crit.append((b["group_id"], b.get("function_id") or "", e["median"]["point_estimate"],
                             e["median"]["confidence_interval"]))
if crit and env.get("micro"):
    order = {"cache_hit": 0, "strip_identity": 1, "path_matches": 2, "is_public": 3}
    crit.sort(key=lambda x: (order[x[0]], x[1]))
    w("## Micro-benchmarks (criterion, `cargo bench --bench core`; median)")
    w("")
    w("| group | benchmark | time | 95 % CI |")
    w("| --- | --- | ---: | --- |")
    for g, f, med, ci in crit:
        w(f"| {g} | {f} | {med:,.0f} ns | {ci['lower_bound']:,.0f} – {ci['upper_bound']:,.0f} ns |")
    w("")
    w("Fernet decrypt + payload decode and revocation matching: pending (local validation).")
    w("")

counters = os.path.join(RAW, "stonegate-counters.txt")
if os.path.exists(counters) and os.path.getsize(counters):
    w("## stonegate's counters after the load cases (both instances, summed)")
    w("")
    w("Anything but `forwarded` / `invalid_token`-like outcomes and 2xx/404 Keystone statuses "
      "means the run is suspect.")
    w("")
    agg = {}
    for line in open(counters):
        name, _, val = line.strip().rpartition(" ")
        agg[name] = agg.get(name, 0) + int(float(val))
    w("```text")
    for name, val in sorted(agg.items()):
        w(f"{name} {val}")
    w("```")
    w("")

w("## How each case is set up")
w("")
for note in env.get("notes", []):
    w(f"- {note}")
w("")
md = "\n".join(lines)
open(os.path.join(OUT, "results.md"), "w").write(md)

# ------------------------------------------------------------------ SVG
rows = [(k, what) for k, what in CASES if k in results]
if rows:
    W, bar_h, gap, left, top = 980, 26, 12, 330, 60
    colw = (W - left - 40) // 2
    H = top + len(rows) * (bar_h + gap) + 50
    max_rps = max(results[k]["rps"] for k, _ in rows)
    max_p99 = max(results[k]["p99_us"] for k, _ in rows)
    color = {"a": "#8c8c8c", "g": "#4a4a9c", "g_id": "#7a7ac0", "h": "#9c6ad9", "h_cache": "#b99be6", "b": "#5b8bd9", "p": "#8fb3ec", "c": "#2e9e5b", "c_log": "#7cc49a", "c_pub": "#a6d9b8",
             "e": "#d9a23b", "f": "#c8553d"}
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="13">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="10" y="22" font-size="16" font-weight="bold">stonegate load benchmark '
         f'({html.escape(env["date"])}, {env["connections"]} connections, loopback)</text>',
         f'<text x="{left}" y="48" font-weight="bold">requests/s (higher is better)</text>',
         f'<text x="{left + colw + 20}" y="48" font-weight="bold">p99 latency, log scale '
         f'(lower is better)</text>']
    import math
    lo = math.log10(max(10, min(results[k]["p99_us"] for k, _ in rows) / 2))
    hi = math.log10(max_p99 * 1.2)
    for i, (k, what) in enumerate(rows):
        r = results[k]
        y = top + i * (bar_h + gap)
        c = color.get(k, "#999")
        s.append(f'<text x="10" y="{y + bar_h * 0.7}">{k}: {html.escape(what)}</text>')
        wr = max(1, int((colw - 90) * r["rps"] / max_rps))
        s.append(f'<rect x="{left}" y="{y}" width="{wr}" height="{bar_h}" fill="{c}"/>')
        s.append(f'<text x="{left + wr + 4}" y="{y + bar_h * 0.7}">{r["rps"]:,.0f}</text>')
        x2 = left + colw + 20
        wl = max(1, int((colw - 90) * (math.log10(max(r["p99_us"], 1)) - lo) / (hi - lo)))
        s.append(f'<rect x="{x2}" y="{y}" width="{wl}" height="{bar_h}" fill="{c}"/>')
        s.append(f'<text x="{x2 + wl + 4}" y="{y + bar_h * 0.7}">{us(r["p99_us"])}</text>')
    foot = []
    if cg is not None:
        foot.append(f"c/g = {cg:.2f}")
    if hcg is not None:
        foot.append(f"h_cache/g = {hcg:.2f}")
    if cgt.get("stonegate_instructions_per_request"):
        foot.append(f"{int(cgt['stonegate_instructions_per_request']):,} instructions/request")
    if cb is not None:
        foot.append(f"c/b = {cb:.2f}")
    if cf is not None:
        foot.append(f"c/f = {cf:.1f}×")
    s.append(f'<text x="10" y="{H - 16}">{html.escape("   ".join(foot))}   '
             f'({html.escape(env["cpu"])}, {env["nproc"]} cores, shared machine)</text>')
    s.append("</svg>")
    open(os.path.join(OUT, "results.svg"), "w").write("\n".join(s))

print(md)
