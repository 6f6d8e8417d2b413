#!/usr/bin/env python3
"""Open-loop latency prober (python3 standard library only).

    prober.py URL INTERVAL_MS MAX_PROBES STOP_FILE OUT_JSON

Every INTERVAL_MS a new probe starts on a new TCP connection, whether or not
the earlier ones have finished (open loop: a stalled server cannot slow the
prober down and hide its own stall, as a closed loop or wrk's default 2 s
timeout would). Probes stop at MAX_PROBES or as soon as STOP_FILE exists;
those in flight are waited for (30 s timeout each). Latency is from the
connect() of the probe to the last byte of the answer. Writes
{"latencies_ms": [...], "starts_ms": [...] (when each answered probe
started, CLOCK_MONOTONIC in ms), "failures": n, "sent": n} to OUT_JSON.
"""
import asyncio
import json
import os
import sys
import time
import urllib.parse


async def probe(host, port, path, lat, fails, starts):
    t0 = time.perf_counter()
    m0 = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        if not data.startswith(b"HTTP/1.1 200") and not data.startswith(b"HTTP/1.0 200"):
            fails.append(data[:40].decode(errors="replace"))
            return
        lat.append((time.perf_counter() - t0) * 1000.0)
        starts.append(m0 * 1000.0)
    except Exception as e:  # noqa: BLE001 - every failure counts as one
        fails.append(repr(e))


async def main():
    url, interval, max_n, stop_file, out = sys.argv[1:6]
    u = urllib.parse.urlsplit(url)
    interval = float(interval) / 1000.0
    max_n = int(max_n)
    lat, fails, tasks, starts = [], [], [], []
    start = time.perf_counter()
    for i in range(max_n):
        if os.path.exists(stop_file):
            break
        tasks.append(asyncio.ensure_future(probe(u.hostname, u.port, u.path or "/", lat, fails, starts)))
        # absolute schedule: a late tick does not shift the later ones
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    if tasks:
        await asyncio.gather(*tasks)
    with open(out, "w") as f:
        json.dump({"latencies_ms": lat, "starts_ms": starts, "failures": len(fails), "failure_samples": fails[:5],
                   "sent": len(tasks), "seconds": time.perf_counter() - start}, f)


if __name__ == "__main__":
    asyncio.run(main())
