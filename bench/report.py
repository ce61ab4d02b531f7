#!/usr/bin/env python3
"""Turn a run-bench.sh results directory into results.json and results.md,
and print the comparison table (berth vs distribution, ratio, peak RSS,
share of the machine's limits, and the issue's targets). When the run had a
berth-before server (BENCH_BERTH_BEFORE), a second table compares it with
berth and both with distribution.

    report.py RESULTS_DIR

RESULTS_DIR holds limits.json, runs.tsv (one line per server run:
workload, concurrency, server, exit status, peak RSS in KiB, JSON file)
and the berth-bench JSON files named there. Exit status 1 when a run failed.
"""
import json
import os
import sys

SERVERS = ("berth", "distribution")


def load_runs(d):
    runs = []
    with open(os.path.join(d, "runs.tsv")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6 or parts[0] == "workload":
                continue
            workload, conc, server, status, rss_kb, path = parts
            doc = None
            full = os.path.join(d, path)
            if os.path.exists(full) and os.path.getsize(full) > 0:
                try:
                    with open(full) as jf:
                        doc = json.load(jf)
                except ValueError:
                    doc = None
            wl = None
            if doc:
                wl = next((w for w in doc.get("workloads", []) if w["name"] == workload), None)
            runs.append({
                "workload": workload,
                "concurrency": int(conc),
                "server": server,
                "exit_status": int(status),
                "peak_rss_kib": int(rss_kb) if rss_kb.isdigit() else None,
                "result": wl,
            })
    return runs


def limit_for(workload, limits):
    """The single-stream bound a workload's MB/s is compared with."""
    if workload.startswith("push-"):
        vals = [limits.get("sha256_mb_per_sec"), limits.get("disk_write_mb_per_sec")]
        vals = [v for v in vals if v]
        return ("min(sha256, disk)", min(vals)) if vals else (None, None)
    if workload.startswith("pull-"):
        v = limits.get("loopback_mb_per_sec")
        return ("loopback", v) if v else (None, None)
    return (None, None)


def build_rows(runs, limits):
    rows = {}
    order = []
    for r in runs:
        key = (r["workload"], r["concurrency"])
        if key not in rows:
            rows[key] = {"workload": key[0], "concurrency": key[1], "servers": {}}
            order.append(key)
        res = r["result"]
        ok = r["exit_status"] == 0 and res is not None and res.get("ok", False)
        cell = {
            "ok": ok,
            "exit_status": r["exit_status"],
            "peak_rss_kib": r["peak_rss_kib"],
        }
        if res is not None:
            cell.update({
                "requests_per_sec": res["requests_per_sec"],
                "mb_per_sec": res["mb_per_sec"],
                "p50_ms": res["latency_ms"]["p50"],
                "p99_ms": res["latency_ms"]["p99"],
                "ops_ok": res["ops_ok"],
                "ops_failed": res["ops_failed"],
                "errors": res["errors"],
                "client_cpu_seconds": res.get("client_cpu_seconds"),
                "seconds": res["seconds"],
            })
        name, lim = limit_for(key[0], limits)
        if lim and res is not None and ok:
            cell["percent_of_limit"] = 100.0 * res["mb_per_sec"] / lim
        rows[key]["servers"][r["server"]] = cell
        rows[key]["limit"] = name
    out = []
    for key in order:
        row = rows[key]
        b = row["servers"].get("berth")
        d = row["servers"].get("distribution")
        if b and d and b["ok"] and d["ok"] and d["requests_per_sec"] > 0:
            row["ratio"] = b["requests_per_sec"] / d["requests_per_sec"]
        else:
            row["ratio"] = None
        p = row["servers"].get("berth-before")
        if p and b and p["ok"] and b["ok"] and p["requests_per_sec"] > 0:
            row["after_over_before"] = b["requests_per_sec"] / p["requests_per_sec"]
        if p and d and p["ok"] and d["ok"] and d["requests_per_sec"] > 0:
            row["before_ratio"] = p["requests_per_sec"] / d["requests_per_sec"]
        out.append(row)
    return out


def before_after_table(rows, markdown):
    """berth-before against berth, and each against distribution ([] without
    berth-before)."""
    rows = [r for r in rows if "berth-before" in r["servers"]]
    if not rows:
        return []
    head = ["workload", "c", "before req/s", "after req/s", "after/before", "before p99 ms",
            "after p99 ms", "distribution p99 ms", "before/dist", "after/dist"]
    body = []
    for r in rows:
        b, p = r["servers"].get("berth"), r["servers"].get("berth-before")
        d = r["servers"].get("distribution")
        digits = 1 if r["workload"].endswith("100m") or r["workload"].endswith("10m") else 0

        def x(v):
            return fmt(v, 2) + ("x" if v is not None else "")
        body.append([r["workload"], str(r["concurrency"]),
                     cell_text(p, "requests_per_sec", digits),
                     cell_text(b, "requests_per_sec", digits), x(r.get("after_over_before")),
                     cell_text(p, "p99_ms", 1), cell_text(b, "p99_ms", 1), cell_text(d, "p99_ms", 1),
                     x(r.get("before_ratio")), x(r.get("ratio"))])
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    for row in body:
        out.append("  ".join(v.rjust(w) if i else v.ljust(w)
                             for i, (v, w) in enumerate(zip(row, widths))))
    return out


def find(rows, workload, conc):
    return next((r for r in rows if r["workload"] == workload and r["concurrency"] == conc), None)


def targets(rows):
    """The targets of issue 6, each as (text, met: True/False/None)."""
    res = []
    ratios = [r for r in rows if r["ratio"] is not None]
    missing = [r for r in rows if r["ratio"] is None]
    slower = [f'{r["workload"]} c={r["concurrency"]}' for r in ratios if r["ratio"] < 1.0]
    met = None if missing and not slower else not slower
    res.append(("every workload at c=1 and c=16: berth >= 1.0x distribution"
                + (f" (slower: {', '.join(slower)})" if slower else ""), met))

    r = find(rows, "pull-100m", 1)
    b = r and r["servers"].get("berth")
    if r and b and b["ok"]:
        pct = b.get("percent_of_limit", 0)
        met = (r["ratio"] or 0) >= 2.0 or pct >= 80.0
        res.append((f"pull-100m c=1: >= 2x distribution ({fmt(r['ratio'], 2)}x) "
                    f"or >= 80% of loopback ({fmt(pct, 0)}%)", met))
    else:
        res.append(("pull-100m c=1: >= 2x distribution or >= 80% of loopback", None))

    r = find(rows, "push-monolithic-100m", 1)
    b = r and r["servers"].get("berth")
    if b and b["ok"]:
        pct = b.get("percent_of_limit", 0)
        res.append((f"push-monolithic-100m c=1: >= 70% of min(sha256, disk) ({fmt(pct, 0)}%)",
                    pct >= 70.0))
    else:
        res.append(("push-monolithic-100m c=1: >= 70% of min(sha256, disk)", None))

    for wl in ("head-manifest", "tags-list"):
        r = find(rows, wl, 16)
        if r and r["ratio"] is not None:
            res.append((f"{wl} c=16: >= 3x distribution ({fmt(r['ratio'], 2)}x)",
                        r["ratio"] >= 3.0))
        else:
            res.append((f"{wl} c=16: >= 3x distribution", None))

    r = find(rows, "mix-10m", 16)
    b = r and r["servers"].get("berth")
    d = r and r["servers"].get("distribution")
    if b and d and b.get("peak_rss_kib") and d.get("peak_rss_kib"):
        res.append((f"mix-10m c=16 peak RSS: berth {mib(b['peak_rss_kib'])} MiB "
                    f"< distribution {mib(d['peak_rss_kib'])} MiB",
                    b["peak_rss_kib"] < d["peak_rss_kib"]))
    else:
        res.append(("mix-10m c=16 peak RSS: berth below distribution", None))
    return res


def fmt(v, digits):
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def mib(kib):
    return fmt(kib / 1024.0, 1) if kib else "-"


def cell_text(cell, key, digits):
    if cell is None:
        return "-"
    if not cell["ok"]:
        return "FAILED"
    return fmt(cell.get(key), digits)


def table(rows, markdown):
    head = ["workload", "c", "berth req/s", "distribution req/s", "ratio", "berth MB/s",
            "distribution MB/s", "berth p99 ms", "distribution p99 ms", "berth RSS MiB",
            "distribution RSS MiB", "berth % of limit", "distribution % of limit"]
    body = []
    for r in rows:
        b = r["servers"].get("berth")
        d = r["servers"].get("distribution")
        digits = 1 if r["workload"].endswith("100m") or r["workload"].endswith("10m") else 0
        body.append([
            r["workload"], str(r["concurrency"]),
            cell_text(b, "requests_per_sec", digits), cell_text(d, "requests_per_sec", digits),
            fmt(r["ratio"], 2) + ("x" if r["ratio"] is not None else ""),
            cell_text(b, "mb_per_sec", 0), cell_text(d, "mb_per_sec", 0),
            cell_text(b, "p99_ms", 2), cell_text(d, "p99_ms", 2),
            mib(b and b.get("peak_rss_kib")), mib(d and d.get("peak_rss_kib")),
            fmt(b and b.get("percent_of_limit"), 0), fmt(d and d.get("percent_of_limit"), 0),
        ])
    if markdown:
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    short = [0, 1, 2, 3, 4, 9, 10, 11, 12]
    titles = ["workload", "c", "berth req/s", "dist req/s", "ratio", "RSS MiB berth",
              "RSS MiB dist", "%limit berth", "%limit dist"]
    widths = [max(len(titles[i]), *(len(row[j]) for row in body)) if body else len(titles[i])
              for i, j in enumerate(short)]
    out = ["  ".join(t.rjust(w) if i else t.ljust(w)
                     for i, (t, w) in enumerate(zip(titles, widths)))]
    for row in body:
        out.append("  ".join(row[j].rjust(w) if i else row[j].ljust(w)
                             for i, (j, w) in enumerate(zip(short, widths))))
    return "\n".join(out)


def limits_text(limits):
    def mbs(key):
        v = limits.get(key)
        return f"{v:,.0f} MB/s" if v else "not measured"
    return [
        f"SHA-256 (openssl speed -evp sha256, 1 MiB blocks, one core): {mbs('sha256_mb_per_sec')}",
        f"disk write with fdatasync (dd, {limits.get('disk_write_mb', '?')} MiB): "
        f"{mbs('disk_write_mb_per_sec')}",
        f"loopback TCP, one stream (berth-bench --loopback, best of 3): "
        f"{mbs('loopback_mb_per_sec')}",
    ]


def load_storm(d):
    """The pull storm's runs (storm.tsv and berth-storm's JSON), by server; {} if none ran."""
    path = os.path.join(d, "storm.tsv")
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path) as f:
        next(f)
        for line in f:
            server, status, rel = line.rstrip("\n").split("\t")
            result = None
            try:
                with open(os.path.join(d, rel)) as jf:
                    result = json.load(jf)
            except (OSError, ValueError):
                pass
            out[server] = {"exit_status": int(status), "result": result}
    return out


def storm_lines(storm, markdown):
    """The pull storm's table (one row per server) and its targets."""
    if not storm:
        return [], []
    cols = ["server", "pulls ok", "success %", "pull p50 ms", "pull p99 ms", "MB/s",
            "HEAD p50 ms", "HEAD p99 ms", "HEAD max ms", "HEADs > 50 ms", "peak RSS MiB"]
    rows = []
    any_r = None
    for server in sorted(storm):
        r = storm[server]["result"]
        if r is None:
            rows.append([server] + ["failed"] + ["-"] * (len(cols) - 2))
            continue
        any_r = r
        p, q = r["pulls"], r["probe"]
        mbs = p["ok"] * r["layer_bytes"] / 1e6 / p["seconds"] if p["seconds"] else 0
        rows.append([server, f'{p["ok"]}/{p["total"]}', f'{p["success_pct"]:.2f}',
                     f'{p["p50_ms"]:.0f}', f'{p["p99_ms"]:.0f}', f"{mbs:.0f}",
                     f'{q["p50_ms"]:.1f}', f'{q["p99_ms"]:.1f}', f'{q["max_ms"]:.1f}',
                     f'{q["over_50ms"]}/{q["ok"] + q["failed"]}',
                     f'{r["server_peak_rss_kib"] / 1024:.1f}'])
    title = "pull storm"
    if any_r is not None:
        title = (f'pull storm: {any_r["clients"]} clients x {any_r["waves"]} waves, '
                 f'{any_r["layer_bytes"] // 1048576} MiB layer, {any_r["addresses"]} client '
                 f'addresses; HEAD probe every 20 ms from another address')
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    b = storm.get("berth", {}).get("result")
    d = storm.get("distribution", {}).get("result")
    if b is not None and d is not None:
        def ratio(x, y):
            return f"{x / y:.2f}x" if y else "-"

        def mbs(r):
            p = r["pulls"]
            return p["ok"] * r["layer_bytes"] / p["seconds"] if p["seconds"] else 0

        lines += ["", "berth / distribution: pull MB/s " + ratio(mbs(b), mbs(d)) +
                  ", pull p99 " + ratio(b["pulls"]["p99_ms"], d["pulls"]["p99_ms"]) +
                  ", HEAD p99 " + ratio(b["probe"]["p99_ms"], d["probe"]["p99_ms"]) +
                  ", peak RSS " + ratio(b["server_peak_rss_kib"], d["server_peak_rss_kib"])]
    targets = []
    if b is not None:
        targets = [
            ("pull storm: every pull succeeds", b["pulls"]["failed"] == 0),
            ("pull storm: berth's peak RSS under 64 MiB", b["server_peak_rss_kib"] < 64 * 1024),
            ("pull storm: every HEAD of the other client within 50 ms",
             b["probe"]["failed"] == 0 and b["probe"]["max_ms"] <= 50),
        ]
    return [title, ""] + lines, targets


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    with open(os.path.join(d, "limits.json")) as f:
        limits = json.load(f)
    runs = load_runs(d)
    rows = build_rows(runs, limits)
    tg = targets(rows)
    failed = [f'{r["workload"]} c={r["concurrency"]} {r["server"]}' for r in runs
              if r["exit_status"] != 0 or r["result"] is None or not r["result"].get("ok")]
    storm = load_storm(d)
    failed += [f"pull-storm {s}" for s, r in sorted(storm.items())
               if r["exit_status"] != 0 or r["result"] is None]
    storm_md, storm_targets = storm_lines(storm, True)
    storm_text, _ = storm_lines(storm, False)

    doc = {"machine": limits.get("machine", {}), "limits": limits, "rows": rows,
           "targets": [{"target": t, "met": m} for t, m in tg + storm_targets],
           "pull_storm": storm, "failed_runs": failed}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

    machine = limits.get("machine", {})
    mark = {True: "met", False: "NOT met", None: "not measured"}
    md = ["# berth-bench results", ""]
    md += [f"- {k}: {v}" for k, v in machine.items()]
    md += [""] + [f"- {line}" for line in limits_text(limits)]
    md += ["", "req/s is operations per second (a pull is 4 requests, a push 5 or 6); "
           "ratio = berth / distribution; RSS is each server's peak (VmHWM) during that run; "
           "% of limit: push MB/s against min(SHA-256, disk), pull MB/s against loopback.", ""]
    md += [table(rows, True), ""]
    ba_md = before_after_table(rows, True)
    if ba_md:
        md += ["## berth before and after (berth-before is BENCH_BERTH_BEFORE)", ""] + ba_md + [""]
    md += ["## Targets (issue 6)", ""]
    md += [f"- {mark[m]}: {t}" for t, m in tg]
    if storm_md:
        md += ["", "## Pull storm", ""] + storm_md + [""]
        md += [f"- {mark[m]}: {t}" for t, m in storm_targets]
    if failed:
        md += ["", "## Failed runs", ""] + [f"- {x}" for x in failed]
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    print()
    for line in limits_text(limits):
        print(line)
    print()
    print(table(rows, False))
    print()
    ba = before_after_table(rows, False)
    if ba:
        print("berth-before (BENCH_BERTH_BEFORE) and berth:")
        for line in ba:
            print(line)
        print()
    for t, m in tg:
        print(f"  [{mark[m]}] {t}")
    if storm_text:
        print()
        for line in storm_text:
            print(line)
        for t, m in storm_targets:
            print(f"  [{mark[m]}] {t}")
    if failed:
        print("\nfailed runs: " + ", ".join(failed))
    print(f"\nfull results: {os.path.join(d, 'results.md')} and results.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
