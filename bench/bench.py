#!/usr/bin/env python3
"""The driver of `make bench` (bench/run calls it): starts the sandbox, runs
every measurement side by side in one run, prints the report and writes
BENCHMARKS.md. Python standard library only; everything talks to 127.0.0.1.
The report is bench/report.py; the raw figures (bench/results.py) go at the
end of BENCHMARKS.md and to build/bench/results.jsonl.

    bench.py WORKDIR        (bench/run makes WORKDIR and removes it afterwards)
    bench.py --hostile      item 7 alone (make bench-hostile): hostile templates
                            and error texts, pure Lua, no sandbox; BENCHMARKS.md
                            is written again with the other items' saved figures
    bench.py --report [F]   prints the report made again from the saved figures
                            of F (a BENCHMARKS.md or results.jsonl; default
                            BENCHMARKS.md), measuring nothing

Environment knobs (for development; `make bench` uses the defaults):
    BENCH_RUNS=3            runs per upload figure (the median is shown)
    BENCH_RUNS_MAIN=7       runs of the 1 GiB uploads and of the status fetches
    BENCH_ONLY=1,2,...      run only these items (1-11; BENCHMARKS.md is then not written,
                            except for items 8-11 alone: their figures are put into it next
                            to the other items' saved ones)
    BENCH_QUIET_WAIT_S=90   how long a latency-sensitive run waits for a 1-min load average
                            under 1.0 (the machine may be shared; each run records its load)
    BENCH_RELAY_SIZES, BENCH_RELAY_RUNS=3      item 8 (relay): sizes, runs of the 1 GiB pairs
    BENCH_BUDGET_S=120                         item 9 (budgets): seconds of the 4 processes
    BENCH_JOBS_ACCOUNTS=2, BENCH_JOBS_WORKERS=2, BENCH_JOBS_S=120, BENCH_JOBS_MEM_SIZE
                                               item 10 (jobs)
    BENCH_PING_RUNS=5, BENCH_PING_BUF_RUNS=3   item 11 (/ping in every run)
    BENCH_OUT=path          where to write the report (default: BENCHMARKS.md)
    BENCH_SIZES=1 GiB,...   upload sizes to run (default: 100 MB,1 GiB,4 GiB)
"""
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import report
import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else None
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# the headline figures (1 GiB uploads, status fetches) get more runs: the VM may be shared
RUNS_MAIN = int(os.environ.get("BENCH_RUNS_MAIN", str(max(RUNS, 7))))
ONLY = set(x for x in os.environ.get("BENCH_ONLY", "").split(",") if x)
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "BENCHMARKS.md"))
SAVED = os.path.join(ROOT, "build", "bench", "results.jsonl")

MIB = 1024 * 1024
SIZES = [("100 MB", 100_000_000), ("1 GiB", 1 << 30), ("4 GiB", 4 << 30)]
if os.environ.get("BENCH_SIZES"):       # development: e.g. BENCH_SIZES="1 GiB"
    SIZES = [s for s in SIZES if s[0] in os.environ["BENCH_SIZES"].split(",")]
STATUS_N = 1000          # status fetches per run (item 3)
CALLGRIND_N = 200        # status fetches under callgrind
PROBE_MS = 10            # open-loop prober interval (item 4)
OR_UPLOADS = 4           # concurrent uploads through nginx (item 4)
OR_SIZE = 300_000_000
WARM_WAVES = 3           # runs of the 4 uploads pooled for the "next uploads" rows
HOSTILE_BYTES = (1_000, 10_000, 100_000, 1_000_000)   # item 7's input sizes
HOSTILE_TIMEOUT_S = 5    # an item 7 case still running then is stopped
# what the report quotes (saved with the figures, see bench/report.py)
SETTINGS = {"runs": RUNS, "runs_main": RUNS_MAIN, "sizes": [list(s) for s in SIZES], "status_n": STATUS_N,
            "callgrind_n": CALLGRIND_N, "probe_ms": PROBE_MS, "or_uploads": OR_UPLOADS, "or_size": OR_SIZE,
            "warm_waves": WARM_WAVES, "hostile_timeout_s": HOSTILE_TIMEOUT_S,
            "thread_pool": 16}     # bench/nginx.conf.in's thread_pool (4 before item 11 needed 16)

SB = os.path.join(WORK, "sb") if WORK else None
PERF = False             # perf sched usable (set in main)
INTERFERENCE = None      # the sampler of other processes' CPU use (set in main)
procs = []               # background processes we started (killed by pid on exit)
nginx_prefixes = []      # bench nginx instances we started
app_started = False
MERGED = False           # a BENCH_ONLY run of items 8-11 written into OUT with the saved figures


def note(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def lua_env(extra=None):
    e = dict(os.environ)
    e["LUA_PATH"] = f"{ROOT}/?.lua;{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;{ROOT}/spec/?.lua;;"
    e["LUA_CPATH_5_4"] = f"{ROOT}/build/5.4/?.so;;"
    e["LUA_CPATH"] = f"{ROOT}/build/5.1/?.so;;"
    if WORK:
        e["BENCH_ENV"] = os.path.join(SB, "env")
        e["BENCH_STORE"] = os.path.join(WORK, "store.json")
    e.update(extra or {})
    return e


def run(cmd, env=None, timeout=900, check=True, capture=True):
    r = subprocess.run(cmd, env=env, timeout=timeout, text=True,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def timed(cmd, env=None, timeout=900):
    """Runs cmd under /usr/bin/time: stdout, wall seconds, peak RSS (KiB),
    CPU seconds (user + system) of the process."""
    tf = os.path.join(WORK, "time.out")
    r = run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", tf] + cmd, env=env, timeout=timeout)
    wall, rss, user, system = open(tf).read().split()[-4:]
    return r.stdout, float(wall), int(rss), float(user) + float(system)


def lua_json(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------ sandbox

def read_env(path):
    env = {}
    for line in open(path):
        m = re.match(r"^(?:export\s+)?([A-Za-z0-9_]+)='(.*)'$", line.rstrip("\n"))
        if m:
            env[m.group(1)] = m.group(2).replace("'\\''", "'")
    return env


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=60):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _opener.open(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def admin(method, path, body=None):
    status, v = http(method, ENV["TIKTOK_SANDBOX_ADMIN"] + path, body)
    if status >= 300:
        raise RuntimeError(f"sandbox {method} {path}: HTTP {status} {v}")
    return v


def port_of(url):
    return urllib.parse.urlsplit(url).port


# ------------------------------------------------------------------ machine

def sh_out(cmd):
    try:
        return subprocess.run(cmd, shell=True, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine():
    cpu = sh_out("lscpu | sed -n 's/^Model name: *//p'")
    hyp = sh_out("lscpu | sed -n 's/^Hypervisor vendor: *//p'")
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    core_v = run(["lua5.4", "-e", "local c = require 'tiktok.core' print(c.curl_version)"],
                 env=lua_env()).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} vCPU" + (f" ({hyp} guest)" if hyp else ""),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"Debian {sh_out('cat /etc/debian_version')}, Linux {platform.release()}",
        "disk": sh_out(f"findmnt -n -o FSTYPE --target {WORK}") + " (" + WORK.rsplit("/", 1)[0] + ")",
        "lua": sh_out("lua5.4 -v").split("  Copyright")[0],
        "luajit": sh_out("luajit -v").split(" -- ")[0],
        "libcurl": core_v + " (the library), " + sh_out("curl --version | head -n1").split(" (")[0] + " (CLI)",
        "openssl": sh_out("openssl version").split(" (")[0],
        "nginx": sh_out("nginx -v 2>&1").replace("nginx version: ", "") + ", lua-nginx-module "
                 + sh_out("dpkg-query -W -f='${Version}' libnginx-mod-http-lua"),
        "valgrind": sh_out("valgrind --version"),
        "python": platform.python_version(),
        "commit": commit_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": open("/proc/loadavg").read().split()[0],
        "busy": busy_processes(),
    }


def commit_name(paths="lua src"):
    """HEAD, and whether the code measured (paths) differs from it."""
    return sh_out(f"git -C {ROOT} rev-parse --short HEAD") + (
        " (with uncommitted changes)" if sh_out(f"git -C {ROOT} status --porcelain -- {paths}") else "")


def cpu_ticks():
    """Every process now: pid -> (name, CPU ticks used, ppid, nice)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        f = st[st.rindex(")") + 2:].split()
        out[int(pid)] = (name, int(f[11]) + int(f[12]), int(f[1]), int(f[16]))
    return out


class Interference:
    """Samples /proc twice a second and adds up the CPU time used by
    processes this run did not start (the VM may be shared), per item."""

    def __init__(self):
        import threading
        self.item = None
        self.other = {}            # item -> CPU seconds of other processes
        self.wall = {}             # item -> seconds sampled
        self.top = {}              # item -> {name: CPU seconds}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _ours(self, stats):
        roots = {os.getpid()}
        for pf in ("sb/nginx/logs/nginx.pid", "sb/app/logs/nginx.pid", "nginx/nginx.pid") if WORK else ():
            try:
                roots.add(int(open(os.path.join(WORK, pf)).read().strip()))
            except (OSError, ValueError):
                pass
        ours = set()
        for pid in stats:
            p, seen = pid, 0
            while p and p not in roots and p in stats and seen < 64:
                p, seen = stats[p][2], seen + 1
            if p in roots:
                ours.add(pid)
        return ours

    def _run(self):
        hz = os.sysconf("SC_CLK_TCK")
        prev, t_prev = cpu_ticks(), time.monotonic()
        while not self._stop.wait(0.5):
            cur, t = cpu_ticks(), time.monotonic()
            ours = self._ours(cur)
            item = self.item
            if item:
                self.wall[item] = self.wall.get(item, 0) + (t - t_prev)
                for pid, (name, ticks, _, _) in cur.items():
                    if pid in ours or pid not in prev or prev[pid][0] != name:
                        continue
                    d = (ticks - prev[pid][1]) / hz
                    if d > 0:
                        self.other[item] = self.other.get(item, 0) + d
                        top = self.top.setdefault(item, {})
                        top[name] = top.get(name, 0) + d
            prev, t_prev = cur, t

    def stop(self):
        self._stop.set()
        self._t.join(timeout=5)

    def describe(self, item):
        cpu, wall = self.other.get(item, 0.0), self.wall.get(item, 0.0)
        if wall <= 0:
            return None
        names = sorted(self.top.get(item, {}).items(), key=lambda kv: -kv[1])[:3]
        top = ", ".join(f"{n} {c:.1f} s" for n, c in names if c >= 0.05)
        return (f"other processes on the VM used {cpu:.1f} CPU-seconds during this item's {wall:.0f} s "
                f"({cpu / wall * 100:.0f} % of one vCPU){': ' + top if top else ''}")


def busy_processes(seconds=1.0):
    """Other processes using CPU right now (the VM may be shared): a sample
    of /proc over `seconds`."""
    a = cpu_ticks()
    time.sleep(seconds)
    b = cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (name, t, _, nice) in b.items():
        if pid in a and pid != os.getpid():
            pct = (t - a[pid][1]) / hz / seconds * 100
            if pct >= 10:
                busy.append((pct, f"{name} {pct:.0f} % (nice {nice})"))
    return ", ".join(x[1] for x in sorted(busy, reverse=True))


# ------------------------------------------------------------------ media

def make_media(size, name=None):
    d = os.path.join(WORK, "media")
    os.makedirs(d, exist_ok=True)
    out = run(["lua5.4", f"{ROOT}/bench/media.lua", d, str(size)], env=lua_env()).stdout.strip()
    if name:
        dst = os.path.join(d, name)
        os.rename(out, dst)
        return dst
    return out


def warm(*paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(16 * MIB):
                pass


def split_chunks(path, ranges):
    """The chunk files curl -T sends (curl cannot send a byte range of a
    file), made sparse like the source, outside every timed region."""
    d = os.path.join(WORK, "chunks", os.path.basename(path))
    if os.path.isdir(d):
        return sorted(os.path.join(d, f) for f in os.listdir(d))
    os.makedirs(d)
    files = []
    for i, (off, length) in enumerate(ranges):
        out = os.path.join(d, f"c{i:04d}")
        run(["dd", f"if={path}", f"of={out}", "bs=1M", "iflag=skip_bytes,count_bytes", f"skip={off}",
             f"count={length}", "conv=sparse", "status=none"])
        files.append(out)
    return files


# ------------------------------------------------------------------ item 1/6: uploads

def lib_upload(scheme, path, store="file"):
    out, wall, rss, cpu = timed(["lua5.4", f"{ROOT}/bench/upload.lua", scheme, path, "post", store],
                                env=lua_env())
    r = lua_json(out)[-1]
    r.update(wall=wall, rss_kib=rss, cpu=cpu, mbps=r["size"] / 1e6 / r["seconds"])
    if store != "file":
        r["client"] = f"library ({store} store)"
    return r


def init_upload(scheme, path):
    out = run(["lua5.4", f"{ROOT}/bench/upload.lua", scheme, path, "init"], env=lua_env()).stdout
    return lua_json(out)[-1]


def curl_upload(scheme, path):
    init = init_upload(scheme, path)
    chunks = split_chunks(path, init["ranges"])
    warm(*chunks)
    r = curl_put_chunks(scheme, init, chunks, ENV)
    r.update(client="curl", mbps=r["size"] / 1e6 / r["seconds"], requests=r["chunks"])
    return r


def item_uploads(R):
    R["uploads"] = []
    for label, size in SIZES:
        path = make_media(size)
        warm(path)
        for run_i in range(RUNS_MAIN if label == "1 GiB" else RUNS):
            for scheme in ("http", "https"):
                order = ["library", "curl"] if run_i % 2 == 0 else ["curl", "library"]
                if label == "1 GiB":
                    order.append("memory")
                for client in order:
                    if client == "curl":
                        r = curl_upload(scheme, path)
                    else:
                        r = lib_upload(scheme, path, "memory" if client == "memory" else "file")
                    r.update(label=label, run=run_i)
                    R["uploads"].append(r)
                    note(f"upload {label} {scheme} {client}: {r['mbps']:.0f} MB/s, {r['rss_kib'] / 1024:.1f} MiB")
        shutil.rmtree(os.path.join(WORK, "chunks", os.path.basename(path)), ignore_errors=True)
        if size > (1 << 30):
            os.remove(path)
        else:
            R.setdefault("files", {})[label] = path


# ------------------------------------------------------------------ item 2: flow

def item_flow(R):
    path = R.get("files", {}).get("1 GiB") or make_media(1 << 30)
    warm(path)
    # The access token has run out: the sandbox expires it, and the
    # store (as the library wrote it) says so too, so the post refreshes first.
    spath = os.path.join(WORK, "store.json")
    store = json.load(open(spath))
    open_id = next(iter(store["accounts"]))
    store["accounts"][open_id]["expires_at"] = int(time.time()) - 60
    with open(spath + ".tmp", "w") as f:
        json.dump(store, f)
    os.chmod(spath + ".tmp", 0o600)
    os.replace(spath + ".tmp", spath)
    admin("DELETE", "/log")
    admin("POST", "/tokens/expire", {"open_id": open_id, "kind": "access"})
    out, wall, rss, cpu = timed(["lua5.4", f"{ROOT}/bench/flow.lua", "https", path], env=lua_env())
    r = lua_json(out)[-1]
    log = admin("GET", "/log")
    entries = log if isinstance(log, list) else log.get("entries") or log.get("log") or []
    api_port, up_port = port_of(ENV["TIKTOK_API_BASE"]), port_of(ENV["TIKTOK_UPLOAD_BASE"])
    by_ep, conns = {}, {"api": set(), "upload": set(), "other": set()}
    for e in entries:
        by_ep[e.get("endpoint")] = by_ep.get(e.get("endpoint"), 0) + 1
        host = "api" if e.get("port") == api_port else "upload" if e.get("port") == up_port else "other"
        conns[host].add(e.get("connection"))
    r.update(rss_kib=rss, log_requests=len(entries), by_endpoint=by_ep,
             processing_ms=admin("GET", "/config")["delays"]["processing_ms"],
             log_connections={k: len(v) for k, v in conns.items()})
    R["flow"] = r
    note(f"flow: {r['requests']} requests, {r['connects']} connections (log: {len(entries)} requests, "
         f"{r['log_connections']})")


# ------------------------------------------------------------------ item 3: status fetches

def curl_status_config(scheme, n, token, publish_id):
    base = ENV["TIKTOK_API_BASE_PLAIN"] if scheme == "http" else ENV["TIKTOK_API_BASE"]
    body = json.dumps({"publish_id": publish_id}, separators=(",", ":")).replace('"', '\\"')
    entry = (f'url = "{base}/v2/post/publish/status/fetch/"\n'
             f'header = "Authorization: Bearer {token}"\n'
             'header = "Content-Type: application/json; charset=UTF-8"\n'
             f'data = "{body}"\noutput = "/dev/null"\nsilent\nshow-error\n'
             'write-out = "%{http_code} %{num_connects}\\n"\n')
    if scheme == "https":
        entry += f'cacert = "{ENV["TIKTOK_CA_FILE"]}"\n'
    path = os.path.join(WORK, f"status-{scheme}-{n}.curl")
    with open(path, "w") as f:
        f.write("next\n".join([entry] * n))
    return path


def curl_status(scheme, token, publish_id):
    """curl -K with 1 + N requests minus curl -K with 1: N fetches on a warm
    connection, like the library's in-process loop after its warm-up."""
    walls, cpus = {}, {}
    for n in (1, 1 + STATUS_N):
        cfg = curl_status_config(scheme, n, token, publish_id)
        t0 = time.perf_counter()
        out, _, _, cpus[n] = timed(["curl", "-K", cfg])
        walls[n] = time.perf_counter() - t0
        rows = [line.split() for line in out.splitlines() if line.strip()]
        if len(rows) != n or any(r[0] != "200" for r in rows) or sum(int(r[1]) for r in rows) != 1:
            raise RuntimeError(f"curl status fetches: {len(rows)} answers, codes {set(r[0] for r in rows)}")
    seconds = walls[1 + STATUS_N] - walls[1]
    return {"client": "curl", "scheme": scheme, "seconds": seconds, "rps": STATUS_N / seconds,
            "cpu": cpus[1 + STATUS_N] - cpus[1]}


def lib_status(scheme, publish_id, store):
    out = run(["lua5.4", f"{ROOT}/bench/status.lua", scheme, str(STATUS_N), publish_id, store],
              env=lua_env()).stdout
    r = lua_json(out)[-1]
    if r["connects"] != 1 or r["requests"] != STATUS_N + 1:
        raise RuntimeError(f"status fetches: {r}")
    r.update(client=f"library ({store} store)", rps=STATUS_N / r["seconds"])
    return r


def callgrind_total(cmd, env=None):
    out = os.path.join(WORK, "callgrind.out")
    run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd, env=env, timeout=900)
    m = re.search(r"^totals:\s+(\d+)", open(out).read(), re.M)
    os.remove(out)
    return int(m.group(1))


def item_status(R):
    publish_id = R.get("flow", {}).get("publish_id")
    if not publish_id:
        path = R.get("files", {}).get("100 MB") or make_media(100_000_000)
        publish_id = lib_upload("http", path)["publish_id"]
    rows = []
    for run_i in range(RUNS_MAIN):
        for scheme in ("http", "https"):
            token = current_token()
            for client in ("library", "memory", "curl"):
                if client == "curl":
                    r = curl_status(scheme, token, publish_id)
                else:
                    r = lib_status(scheme, publish_id, "file" if client == "library" else "memory")
                r.update(run=run_i)
                rows.append(r)
                note(f"status {scheme} {r['client']}: {r['rps']:.0f} req/s")
    cg = {}
    if shutil.which("valgrind"):
        env = lua_env()
        lib_cmd = lambda n: ["lua5.4", f"{ROOT}/bench/status.lua", "http", str(n), publish_id, "file"]  # noqa: E731
        base = callgrind_total(lib_cmd(0), env)
        cg["library"] = [(callgrind_total(lib_cmd(CALLGRIND_N), env) - base) / CALLGRIND_N for _ in range(2)]
        token = current_token()
        c1 = curl_status_config("http", 1, token, publish_id)
        cn = curl_status_config("http", 1 + CALLGRIND_N, token, publish_id)
        cbase = callgrind_total(["curl", "-K", c1])
        cg["curl"] = [(callgrind_total(["curl", "-K", cn]) - cbase) / CALLGRIND_N for _ in range(2)]
        note(f"callgrind: library {cg['library']}, curl {cg['curl']} instructions/request")
    R["status"] = {"rows": rows, "callgrind": cg, "publish_id": publish_id}


def current_token():
    store = json.load(open(os.path.join(WORK, "store.json")))
    return next(iter(store["accounts"].values()))["access_token"]


# ------------------------------------------------------------------ item 4: OpenResty

def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def start_prober(url, max_n, tag):
    stop = os.path.join(WORK, f"probe-{tag}.stop")
    out = os.path.join(WORK, f"probe-{tag}.json")
    for f in (stop, out):
        if os.path.exists(f):
            os.remove(f)
    p = subprocess.Popen([sys.executable, f"{ROOT}/bench/prober.py", url, str(PROBE_MS), str(max_n), stop, out])
    procs.append(p)
    return p, stop, out


def summarize(d):
    lat = d["latencies_ms"]
    return {"probes": d["sent"], "answered": len(lat), "failures": d["failures"],
            "failure_samples": d.get("failure_samples"),
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "p999": percentile(lat, 99.9),
            "max": max(lat) if lat else float("nan"),
            "over100": sum(1 for x in lat if x > 100), "probe_seconds": d["seconds"],
            "slowest": [[round(l, 1), round(t)] for l, t in sorted(zip(lat, d.get("starts_ms", [])), reverse=True)[:5]]}


def finish_prober(p, stop, out):
    open(stop, "w").close()
    p.wait(timeout=120)
    procs.remove(p)
    return json.load(open(out))


def idle_probe(base, tag, n=200):
    p, stop, out = start_prober(base + "/ping", n, tag)
    p.wait(timeout=120)
    procs.remove(p)
    d = json.load(open(out))
    first = min(d["starts_ms"], default=0)
    d["starts_ms"] = [x - first for x in d["starts_ms"]]       # ms after the first probe
    return summarize(d)


def start_bench_nginx(warm_threads=False):
    """The bench nginx (bench/nginx.conf.in); warm_threads: with the README's
    init_worker tiktok.warm_threads, answered once its 16 VMs are made."""
    prefix = os.path.join(WORK, "nginx")
    init = 'init_worker_by_lua_block { require("bench.ngx_bench").init_worker() }' if warm_threads else ""
    for d in ("logs", "tmp", "conf"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    tpl = open(f"{ROOT}/bench/nginx.conf.in").read()
    for attempt in range(8):
        port = free_port()
        conf = (tpl.replace("@USER@", "user root root;" if os.getuid() == 0 else "")
                .replace("@PREFIX@", prefix).replace("@ROOT@", ROOT).replace("@PORT@", str(port))
                .replace("@MODULES@", "/usr/lib/nginx/modules").replace("@INIT_WORKER@", init))
        open(os.path.join(prefix, "conf/nginx.conf"), "w").write(conf)
        r = run(["nginx", "-p", prefix, "-c", "conf/nginx.conf", "-e", os.path.join(prefix, "logs/error.log")],
                env=lua_env(), check=False)
        if r.returncode == 0:
            nginx_prefixes.append(prefix)
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if http("GET", base + "/ping")[0] == 200 and (
                            not warm_threads or http("GET", base + "/warmed")[1].get("ready") == 16):
                        return base
                except OSError:
                    pass
                time.sleep(0.05)
            raise RuntimeError("bench nginx does not answer" + (" with its 16 thread VMs" if warm_threads else ""))
    raise RuntimeError("bench nginx did not start: " + open(os.path.join(prefix, "logs/error.log")).read()[-2000:])


def stop_bench_nginx(prefix):
    pidf = os.path.join(prefix, "nginx.pid")
    try:
        pid = int(open(pidf).read().strip())
    except (OSError, ValueError):
        return
    kids = [int(x) for x in sh_out(f"ps -o pid= --ppid {pid}").split()]
    for p in [pid]:
        try:
            os.kill(p, signal.SIGQUIT)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in [pid] + kids):
        time.sleep(0.05)
    for p in [pid] + kids:
        if alive(p):
            os.kill(p, signal.SIGKILL)


def alive(pid):
    try:
        st = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_uploads(publish_ids, timeout=300):
    deadline = time.time() + timeout
    pending = set(publish_ids)
    while pending and time.time() < deadline:
        for pid in list(pending):
            p = admin("GET", "/posts/" + urllib.parse.quote(pid, safe=""))
            up = p.get("upload") or {}
            if up.get("complete") or p.get("status") not in ("PROCESSING_UPLOAD",):
                pending.discard(pid)
        if pending:
            time.sleep(0.1)
    if pending:
        raise RuntimeError(f"uploads did not finish: {pending}")


def load_run(tag, base, start_uploads, loop_tid=None, waves=1):
    """Probes base/ping while start_uploads() runs its uploads, `waves`
    times in a row with the probes pooled; returns the latency figures and
    the upload wall time (median of the waves). With loop_tid (the nginx
    worker's event-loop thread) and perf available, the scheduler is traced
    meanwhile (`perf sched record`): how long that thread, once woken, waited
    for a CPU."""
    perf = None
    data = os.path.join(WORK, f"sched-{tag}.data")
    if loop_tid and PERF:
        perf = subprocess.Popen(["perf", "sched", "record", "-a", "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(perf)
        time.sleep(0.5)
    pooled = {"latencies_ms": [], "starts_ms": [], "failures": 0, "failure_samples": [], "sent": 0, "seconds": 0}
    secs, steal = [], 0.0
    for i in range(waves):
        p, stop, out = start_prober(base + "/ping", 60000 // PROBE_MS, f"{tag}-{i}")   # bound: 60 s
        time.sleep(0.2)             # the prober is running before the uploads start
        t0, st0, m0 = time.perf_counter(), steal_ms(), time.monotonic() * 1000
        start_uploads()
        secs.append(time.perf_counter() - t0)
        steal += steal_ms() - st0
        d = finish_prober(p, stop, out)
        # only the probes sent once the uploads had started
        during = [(lat, st - m0) for lat, st in zip(d["latencies_ms"], d["starts_ms"]) if st >= m0]
        pooled["latencies_ms"] += [x[0] for x in during]
        pooled["starts_ms"] += [x[1] for x in during]
        pooled["failure_samples"] += d.get("failure_samples") or []
        pooled["failures"] += d["failures"]
        pooled["sent"] += len(during) + d["failures"]
        pooled["seconds"] += d["seconds"]
    r = summarize(pooled)
    seconds = statistics.median(secs)
    r.update(waves=waves, upload_seconds=seconds, upload_mbps=OR_UPLOADS * OR_SIZE / 1e6 / seconds,
             steal_ms=steal)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        procs.remove(perf)
        r.update(loop_sched(data, loop_tid))
        os.remove(data)
    return r


def steal_ms():
    """Time the hypervisor ran something else on this VM's vCPUs (all
    vCPUs summed): a thread that "runs" meanwhile is in fact stopped."""
    f = open("/proc/stat").readline().split()
    return int(f[8]) * 1000 / os.sysconf("SC_CLK_TCK")


def loop_sched(data, tid):
    out = run(["perf", "sched", "timehist", "-i", data], check=False).stdout
    delays, runs = [], []
    for line in out.splitlines():
        f = line.split()
        # time cpu task wait-time sch-delay run-time
        if len(f) >= 6 and f[2] == f"nginx[{tid}]":
            try:
                delays.append(float(f[4]))
                runs.append(float(f[5]))
            except ValueError:
                pass
    if not delays:
        return {}
    return {"loop_switches": len(delays), "loop_run_max": max(runs),
            "loop_delay_p99": percentile(delays, 99), "loop_delay_max": max(delays)}


def perf_works():
    if not shutil.which("perf"):
        return False
    data = os.path.join(WORK, "perf-check.data")
    r = run(["perf", "sched", "record", "-o", data, "--", "true"], check=False)
    ok = r.returncode == 0 and os.path.exists(data)
    if os.path.exists(data):
        os.remove(data)
    return ok


def worker_of(master_pid):
    kids = sh_out(f"ps -o pid= --ppid {master_pid}").split()
    return int(kids[0]) if kids else None


def curl_all(urls):
    ps = [subprocess.Popen(["curl", "-s", "-S", "-m", "300", "-o", os.path.join(WORK, f"or-{i}.out"),
                            "-w", "%{http_code}", u], stdout=subprocess.PIPE, text=True)
          for i, u in enumerate(urls)]
    procs.extend(ps)
    codes = []
    for p in ps:
        codes.append(p.communicate(timeout=600)[0])
        procs.remove(p)
    bodies = [open(os.path.join(WORK, f"or-{i}.out")).read() for i in range(len(urls))]
    if any(c != "200" for c in codes):
        raise RuntimeError(f"uploads through nginx answered {codes}: {bodies}")
    return bodies


def first_calls():
    """Event-loop time of the first OR_UPLOADS concurrent worker-thread calls
    in a fresh nginx (each makes a thread VM and loads its module there),
    for lua-tiktok's thread module and for an empty one; medians of 3 fresh
    starts each."""
    out = {}
    for key, mod, fn in (("empty", "bench.noop_thread", "noop"), ("tiktok", "tiktok.thread", "call")):
        xs = []
        for _ in range(3):
            base = start_bench_nginx()
            try:
                status, v = http("GET", f"{base}/firstcalls?mod={mod}&fn={fn}&n={OR_UPLOADS}")
                if status != 200:
                    raise RuntimeError(f"/firstcalls answered {status}: {v}")
                xs.append(v["blocked_ms"])
            finally:
                stop_bench_nginx(nginx_prefixes.pop())
        out[key] = {"module": mod, "runs_ms": xs, "median_ms": statistics.median(xs)}
    return out


def item_openresty(R):
    files = [make_media(OR_SIZE, f"or-{i}.mp4") for i in range(OR_UPLOADS)]
    warm(*files)
    res = {}
    R["first_calls"] = first_calls()
    note(f"first worker-thread calls: {R['first_calls']}")
    base = start_bench_nginx()
    tid = worker_of(int(open(os.path.join(WORK, "nginx", "nginx.pid")).read()))
    res["idle"] = idle_probe(base, "idle")
    note(f"openresty idle: p99 {res['idle']['p99']:.2f} ms")

    # The library in a plain handler: tiktok.post -> worker threads. The
    # first wave after nginx starts makes the thread pool's Lua VMs; the
    # second finds them pooled.
    def library_uploads():
        q = [base + "/library?file=" + urllib.parse.quote(f) for f in files]
        bodies = curl_all(q)
        wait_uploads([json.loads(b)["publish_id"] for b in bodies])
    for wave in ("cold", "warm"):
        res["handler_" + wave] = load_run("handler-" + wave, base, library_uploads, tid if wave == "warm" else None,
                                          waves=WARM_WAVES if wave == "warm" else 1)
        note(f"openresty library handler ({wave}): p99 {res['handler_' + wave]['p99']:.2f} ms")

    # The same with the thread pool's threads at nice 10 (the event loop
    # stays at 0): what lowering the upload threads' priority buys on a
    # machine with fewer cores than busy threads.
    for t in os.listdir(f"/proc/{tid}/task"):
        if int(t) != tid:
            os.setpriority(os.PRIO_PROCESS, int(t), 10)
    res["handler_nice"] = load_run("handler-nice", base, library_uploads, tid, waves=WARM_WAVES)
    note(f"openresty library handler (threads at nice 10): p99 {res['handler_nice']['p99']:.2f} ms")

    # The blocking baseline: the C core called directly in the handler.
    inits = [init_upload("https", f) for f in files]

    def direct_uploads():
        q = [base + "/direct?file=" + urllib.parse.quote(f) + "&url=" + urllib.parse.quote(i["upload_url"], safe="")
             for f, i in zip(files, inits)]
        curl_all(q)
        wait_uploads([i["publish_id"] for i in inits])
    res["direct"] = load_run("direct", base, direct_uploads)
    note(f"openresty direct C core: p99 {res['direct']['p99']:.2f} ms")
    stop_bench_nginx(nginx_prefixes.pop())

    # The example app (examples/openresty), when it is there and starts.
    res.update(example_run(files))
    R["openresty"] = res


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_302(method, url, data=None, headers=None):
    """A request whose 302 answer is returned, not followed: (location,
    Set-Cookie). HTTPS trusts the sandbox's CA."""
    import ssl
    tls = ssl.create_default_context(cafile=ENV.get("TIKTOK_CA_FILE") or None)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(),
                                         urllib.request.HTTPSHandler(context=tls))
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=60) as r:
            raise RuntimeError(f"{method} {url}: HTTP {r.status}, expected a redirect: {r.read()[:300]!r}")
    except urllib.error.HTTPError as e:
        if e.code != 302:
            raise RuntimeError(f"{method} {url}: HTTP {e.code}: {e.read()[:300]!r}") from None
        return e.headers["Location"], e.headers.get("Set-Cookie")


def app_connect(base, hdr):
    """Connects the sandbox's creator through the example app as its user
    would: /tiktok/connect, the sandbox's consent (approve), the callback."""
    location, cookie = http_302("GET", base + "/tiktok/connect", headers=hdr)
    form = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query), decision="approve")
    callback, _ = http_302("POST", ENV["TIKTOK_AUTH_BASE"] + "/v2/auth/authorize/",
                           urllib.parse.urlencode(form).encode(),
                           {"Content-Type": "application/x-www-form-urlencoded"})
    http_302("GET", base + callback[len(base):] if callback.startswith(base) else callback,
             headers=dict(hdr, Cookie=(cookie or "").split(";")[0]))


def app_files(files, user):
    """The example app's files folder: <dir>/<user>/ with the bench's media
    hard-linked into it (the app looks a user's files up there only)."""
    d = os.path.join(WORK, "appfiles")
    os.makedirs(os.path.join(d, user), exist_ok=True)
    for f in files:
        link = os.path.join(d, user, os.path.basename(f))
        if not os.path.exists(link):
            os.link(f, link)
    return d


def start_example(runner, files):
    """Starts the example app in its production identity setup (X-User only
    from 127.0.0.1 with the proxy secret); returns its URL, the worker's pid
    and the headers of the bench's user."""
    global app_started
    secret = os.urandom(16).hex()
    os.chmod(WORK, 0o711)          # the workers (a user of their own when run as root) pass through
    env = dict(os.environ, APP_FILES_DIR=app_files(files, "bench"), APP_TRUSTED_PROXIES="127.0.0.1",
               APP_PROXY_SECRET=secret,
               # the bench posts far more than TikTok's budgets allow (the sandbox's limits are raised too)
               TIKTOK_RATE_LIMITS="init=1000000,creator_info=1000000,status=1000000")
    r = run([runner, "start", "--dir", SB, "--workers", "1"], env=env, check=False, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("examples/openresty/run start failed: " + (r.stderr or r.stdout).strip()[-300:])
    app_started = True
    base = re.search(r"^APP_URL=(\S+)", r.stdout, re.M).group(1).strip("'")
    tid = worker_of(int(re.search(r"^APP_PID=(\S+)", r.stdout, re.M).group(1).strip("'")))
    return base, tid, {"X-User": "bench", "X-Proxy-Secret": secret}


def example_posts(base, files, hdr):
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(OR_UPLOADS) as ex:
        answers = list(ex.map(lambda f: http("POST", base + "/tiktok/posts",
                                             {"video_file": os.path.basename(f), "privacy": "SELF_ONLY"},
                                             hdr, timeout=120),
                              files))
    bad = [a for a in answers if a[0] != 202]
    if bad:
        raise RuntimeError(f"example app refused the posts: {bad}")
    ids = []
    for _, job in answers:
        deadline = time.time() + 60
        while not job.get("publish_id") and time.time() < deadline:     # the job's init still to come
            time.sleep(0.05)
            job = http("GET", base + "/tiktok/jobs/" + urllib.parse.quote(job["id"], safe=""), None, hdr)[1]
            job = job.get("job", job) if isinstance(job, dict) else {}
        if not job.get("publish_id"):
            raise RuntimeError(f"the example app's job has no publish_id after 60 s: {job}")
        ids.append(job["publish_id"])
    wait_uploads(ids)


def example_warms():
    """Whether the example app calls tiktok.warm_threads (at start)."""
    d = os.path.join(ROOT, "examples/openresty/lua/tiktok_app")
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    return any("warm_threads" in open(os.path.join(d, n)).read() for n in names if n.endswith(".lua"))


def example_run(files):
    global app_started
    runner = os.path.join(ROOT, "examples/openresty/run")
    if not os.access(runner, os.X_OK):
        return {"example_cold": {"skipped": "examples/openresty/run does not exist"}}
    out = {"example_warms": example_warms()}
    try:
        base, tid, hdr = start_example(runner, files)
        app_connect(base, hdr)
        for wave in ("cold", "warm"):
            out["example_" + wave] = load_run("example-" + wave, base, lambda: example_posts(base, files, hdr),
                                              tid if wave == "warm" else None,
                                              waves=WARM_WAVES if wave == "warm" else 1)
            note(f"openresty example app ({wave}): p99 {out['example_' + wave]['p99']:.2f} ms")
        return out
    except Exception as e:  # noqa: BLE001 - the report says why
        out.setdefault("example_cold", {"skipped": f"the example app run failed: {e}"[:400]})
        return out
    finally:
        if app_started:
            run([runner, "stop", "--dir", SB], check=False, timeout=120)
            app_started = False


# ------------------------------------------------------------------ item 8: relay (issue 16)

RELAY_SIZES = [("100 MB", 100_000_000), ("1 GiB", 1 << 30), ("4 GiB", 4 << 30)]
if os.environ.get("BENCH_RELAY_SIZES"):      # development: e.g. BENCH_RELAY_SIZES="1 GiB"
    RELAY_SIZES = [s for s in RELAY_SIZES if s[0] in os.environ["BENCH_RELAY_SIZES"].split(",")]
RELAY_RUNS = int(os.environ.get("BENCH_RELAY_RUNS", "3"))    # runs of the 1 GiB side by side (median shown)
SETTINGS.update(relay_sizes=[list(s) for s in RELAY_SIZES], relay_runs=RELAY_RUNS)
SBH = os.path.join(WORK, "sbh") if WORK else None            # the plain-HTTP sandbox (sandbox/run --http-only)
ENVH = None


def https_json(method, url, body, headers, ca):
    """A JSON request to the sandbox's API over http or https (its CA)."""
    import ssl
    handlers = [urllib.request.ProxyHandler({})]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca or None)))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers=dict(headers, **{"Content-Type": "application/json; charset=UTF-8"}))
    try:
        with urllib.request.build_opener(*handlers).open(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def plan_of(size):
    out = run(["lua5.4", "-e", f"local c = require 'tiktok.core' local s, n = c.plan({size}) print(s, n)"],
              env=lua_env()).stdout.split()
    return int(out[0]), int(out[1])


def sandbox_init(env, token, size):
    """A real FILE_UPLOAD init for `size` bytes with the one planner's plan:
    {publish_id, upload_url, chunk_size, count, ranges}."""
    chunk, count = plan_of(size)
    status, v = https_json("POST", env["TIKTOK_API_BASE"] + "/v2/post/publish/video/init/", {
        "post_info": {"title": "bench relay", "privacy_level": "SELF_ONLY"},
        "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                        "total_chunk_count": count}}, {"Authorization": "Bearer " + token},
        env.get("TIKTOK_CA_FILE"))
    if status != 200:
        raise RuntimeError(f"init answered {status}: {v}")
    ranges = []
    for i in range(count):
        off = i * chunk
        ranges.append([off, size - off if i == count - 1 else chunk])
    return {"publish_id": v["data"]["publish_id"], "upload_url": v["data"]["upload_url"], "size": size,
            "chunk_size": chunk, "count": count, "ranges": ranges}


def start_sandbox_http():
    """A second sandbox on plain HTTP only (its media and upload hosts too),
    for the relay over loopback HTTP; an account of its own."""
    global ENVH
    run([os.path.join(ROOT, "sandbox/run"), "start", "--dir", SBH, "--http-only"])
    ENVH = read_env(os.path.join(SBH, "env"))
    http("PATCH", ENVH["TIKTOK_SANDBOX_ADMIN"] + "/config",
         {"upload": {"hash": False}, "rate_limits": {"window_sec": 0, "video.init": 1000000,
                                                      "status.fetch": 100000000, "creator_info": 1000000}})
    run(["lua5.4", f"{ROOT}/bench/account.lua"], env=lua_env(relay_env("http")))


def relay_env(scheme):
    if scheme == "http":
        return {"BENCH_ENV": os.path.join(SBH, "env"), "BENCH_STORE": os.path.join(WORK, "store-http.json")}
    return {}


def relay_sandbox(scheme):
    """(env, admin URL, token) of the sandbox the relay over `scheme` uses."""
    env = ENVH if scheme == "http" else ENV
    store = json.load(open(os.path.join(WORK, "store-http.json" if scheme == "http" else "store.json")))
    token = next(iter(store["accounts"].values()))["access_token"]
    return env, env["TIKTOK_SANDBOX_ADMIN"], token


def relay_media(scheme, name, size):
    """A sparse media file on that sandbox's media host (PUT /_sandbox/media/NAME,
    copied from a real MP4 of 1 MB): its URL."""
    env, adm, _ = relay_sandbox(scheme)
    clip = os.path.join(env["TIKTOK_MEDIA_DIR"], "clip.mp4")
    if not os.path.exists(clip):
        os.makedirs(env["TIKTOK_MEDIA_DIR"], exist_ok=True)
        shutil.copyfile(make_media(1_000_000), clip)
    status, v = http("PUT", adm + "/media/" + name, {"size": size, "copy_from": "clip.mp4"})
    if status >= 300:
        raise RuntimeError(f"PUT /_sandbox/media/{name}: {status} {v}")
    return env["TIKTOK_MEDIA_BASE"] + name


def lib_relay(scheme, url, size):
    env, adm, token = relay_sandbox(scheme)
    init = sandbox_init(env, token, size)
    out, wall, rss, cpu = timed(["lua5.4", f"{ROOT}/bench/relay.lua", url, init["upload_url"], str(size),
                                 str(init["chunk_size"]), str(init["count"])], env=lua_env(relay_env(scheme)))
    r = lua_json(out)[-1]
    post = http("GET", adm + "/posts/" + urllib.parse.quote(init["publish_id"], safe=""))[1]
    if (post.get("upload") or {}).get("complete") is not True and post.get("status") == "PROCESSING_UPLOAD":
        raise RuntimeError(f"the relay's upload is not complete at the sandbox: {post}")
    r.update(client="library relay", scheme=scheme, wall=wall, rss_kib=rss, cpu=cpu,
             mbps=size / 1e6 / r["seconds"])
    r.pop("stats", None)
    return r


def curl_by_hand(scheme, url, size):
    """What a person would do without the relay: curl downloads the URL to a
    file, then curl uploads that file in the same chunk plan (each chunk cut
    out of the file beforehand: curl -T cannot send a byte range; the cutting
    is not timed). Seconds: the download's time_total + the PUTs' time_total."""
    env, _, token = relay_sandbox(scheme)
    dl = os.path.join(WORK, "relay-download.mp4")
    args = ["curl", "-s", "-S", "-o", dl, "-w", "%{http_code} %{time_total}"]
    if scheme == "https":
        args += ["--cacert", env["TIKTOK_CA_FILE"]]
    out, _, rss_dl, cpu_dl = timed(args + [url])
    code, down_s = out.split()
    if code != "200" or os.path.getsize(dl) != size:
        raise RuntimeError(f"curl download answered {code}, {os.path.getsize(dl)} bytes")
    init = sandbox_init(env, token, size)
    chunks = split_chunks(dl, init["ranges"])
    r = curl_put_chunks(scheme, init, chunks, env)
    shutil.rmtree(os.path.dirname(chunks[0]), ignore_errors=True)
    os.remove(dl)
    r.update(client="curl by hand", download_seconds=float(down_s), upload_seconds=r["seconds"],
             seconds=float(down_s) + r["seconds"], rss_kib=max(rss_dl, r["rss_kib"]), cpu=cpu_dl + r["cpu"])
    r["mbps"] = size / 1e6 / r["seconds"]
    return r


def curl_put_chunks(scheme, init, chunks, env):
    u = urllib.parse.urlsplit(init["upload_url"])
    origin = f"{u.scheme}://{u.netloc}/"
    target = u.path + ("?" + u.query if u.query else "")
    size = init["size"]
    args = ["curl"]
    for i, (off, length) in enumerate(init["ranges"]):
        if i:
            args.append("--next")
        args += ["-s", "-S", "-o", "/dev/null", "-w", "%{http_code} %{num_connects} %{time_total}\\n",
                 "-T", chunks[i], "-H", "Content-Type: video/mp4",
                 "-H", f"Content-Range: bytes {off}-{off + length - 1}/{size}", "--request-target", target]
        if scheme == "https":
            args += ["--cacert", env["TIKTOK_CA_FILE"]]
        args.append(origin)
    out, wall, rss, cpu = timed(args)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    codes = [r[0] for r in rows]
    if codes != ["206"] * (len(init["ranges"]) - 1) + ["201"]:
        raise RuntimeError(f"curl upload answered {codes}")
    return {"scheme": scheme, "size": size, "chunks": len(rows), "seconds": sum(float(r[2]) for r in rows),
            "wall": wall, "rss_kib": rss, "cpu": cpu, "connects": sum(int(r[1]) for r in rows)}


def item_relay(R):
    if not ENVH:
        start_sandbox_http()
    res = R["relay"] = {}             # filled as it goes: a failure keeps the runs made
    for scheme in ("http", "https"):
        # the first relay against a fresh sandbox is slow (its workers load
        # and JIT the media and upload handlers): one of 100 MB first, not counted
        warm_url = relay_media(scheme, "relay-warm.mp4", 100_000_000)
        for _ in range(2):
            lib_relay(scheme, warm_url, 100_000_000)
        for label, size in RELAY_SIZES:
            wait_quiet()
            url = relay_media(scheme, f"relay-{size}.mp4", size)
            n = RELAY_RUNS if label == "1 GiB" else 1
            for run_i in range(n):
                order = ("library", "curl") if run_i % 2 == 0 else ("curl", "library")
                for client in order if label == "1 GiB" else ("library",):
                    r = lib_relay(scheme, url, size) if client == "library" else curl_by_hand(scheme, url, size)
                    r.update(label=label, run=run_i, loadavg=loadavg())
                    res[f"{scheme} {label} {client} {run_i}"] = r
                    note(f"relay {scheme} {label} {client}: {r['seconds']:.3f} s, {r['rss_kib'] / 1024:.1f} MiB")
            http("DELETE", relay_sandbox(scheme)[1] + "/media/" + f"relay-{size}.mp4")
    R["relay"] = res


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def wait_quiet(limit=1.0, max_s=int(os.environ.get("BENCH_QUIET_WAIT_S", "90"))):
    """Waits (at most max_s) for the 1-minute load average to fall under
    limit: the machine is shared; the figures say the load they were taken at."""
    t0 = time.time()
    while loadavg() >= limit and time.time() - t0 < max_s:
        time.sleep(5)
    return loadavg()


# ------------------------------------------------------------------ items 9 and 10: budgets and jobs (issues 14, 15)

BUDGET_PROCS = 4
BUDGET_S = int(os.environ.get("BENCH_BUDGET_S", "120"))        # the two minutes
TIKTOK_LIMITS = {"window_sec": 60, "video.init": 6, "status.fetch": 30, "creator_info": 20}   # the sandbox's defaults
BENCH_LIMITS = {"window_sec": 0, "video.init": 1000000, "status.fetch": 100000000, "creator_info": 1000000}
JOBS_ACCOUNTS = int(os.environ.get("BENCH_JOBS_ACCOUNTS", "2"))
JOBS_WORKERS = int(os.environ.get("BENCH_JOBS_WORKERS", "2"))
JOBS_S = int(os.environ.get("BENCH_JOBS_S", "120"))
JOBS_LATENCY_N = 5
JOBS_MEM_UPLOADS = (1, 4, 16)
JOBS_MEM_SIZE = int(os.environ.get("BENCH_JOBS_MEM_SIZE", str(1 << 30)))   # sparse: no disk
SETTINGS.update(budget_procs=BUDGET_PROCS, budget_s=BUDGET_S, jobs_accounts=JOBS_ACCOUNTS,
                jobs_workers=JOBS_WORKERS, jobs_s=JOBS_S, jobs_latency_n=JOBS_LATENCY_N,
                jobs_mem_uploads=list(JOBS_MEM_UPLOADS), jobs_mem_size=JOBS_MEM_SIZE)


def sandbox_user_store(store, users):
    """A file store holding the accounts of these sandbox users (made when
    missing, no daily post cap), connected through the library."""
    path = os.path.join(WORK, store)
    for u in users:
        status, _ = http("GET", ENV["TIKTOK_SANDBOX_ADMIN"] + "/users/" + u)
        if status == 404:
            admin("POST", "/users", {"username": u})
        admin("PATCH", "/users/" + u, {"daily_post_cap": 1000000})
        run(["lua5.4", f"{ROOT}/bench/account.lua", u], env=lua_env({"BENCH_STORE": path}))
    return path


def log_since(seq):
    entries = admin("GET", f"/log?since={seq}")
    return entries if isinstance(entries, list) else entries.get("entries") or entries.get("log") or []


def last_seq():
    entries = admin("GET", "/log")
    entries = entries if isinstance(entries, list) else entries.get("entries") or entries.get("log") or []
    return max((e.get("seq", 0) for e in entries), default=0)


def count_log(entries, t0, t1):
    """Requests per endpoint that started in [t0, t1] (epoch s), and the 429s."""
    by = {}
    for e in entries:
        if t0 <= e.get("time", 0) <= t1:
            k = e.get("endpoint")
            c = by.setdefault(k, {"requests": 0, "429": 0})
            c["requests"] += 1
            c["429"] += e.get("status") == 429
    return by


def item_budgets(R):
    path = sandbox_user_store("store-budget.json", ["bench_budget"])
    media = make_media(1_000_000, "budget.mp4")
    admin("PATCH", "/config", {"rate_limits": TIKTOK_LIMITS})
    try:
        seq = last_seq()
        t0 = time.time()
        ps = [subprocess.Popen(["lua5.4", f"{ROOT}/bench/budget.lua", str(BUDGET_S), media], text=True,
                               stdout=subprocess.PIPE, env=lua_env({"BENCH_STORE": path}))
              for _ in range(BUDGET_PROCS)]
        procs.extend(ps)
        outs = []
        for p in ps:
            outs.append(lua_json(p.communicate(timeout=BUDGET_S + 300)[0])[-1])
            procs.remove(p)
        t1 = time.time()
    finally:
        admin("PATCH", "/config", {"rate_limits": BENCH_LIMITS})
    entries = log_since(seq)
    # the requests sent in the run's BUDGET_S seconds (a process may start
    # one more call just before its deadline: it is not counted)
    by = count_log(entries, t0, t0 + BUDGET_S)
    minutes = BUDGET_S / 60
    # each 429: when, and how many requests of its endpoint the sandbox had
    # seen in the 60 s before it (its sliding window)
    refused = []
    for e in entries:
        if e.get("status") == 429:
            before = [x for x in entries if x.get("endpoint") == e.get("endpoint")
                      and e["time"] - 60 < x.get("time", 0) < e["time"] and x.get("status") != 429]
            gaps = sorted(e["time"] - x["time"] for x in before)
            refused.append({"endpoint": e.get("endpoint"), "at_s": round(e["time"] - t0, 3),
                            "in_window_before": len(before),
                            "oldest_in_window_s_before": round(gaps[-1], 3) if gaps else None})
    res = {"procs": {"rows": outs},
           "log": {"seconds": t1 - t0, "minutes": minutes, "by_endpoint": by,
                   "all_429": sum(1 for e in entries if e.get("status") == 429), "refused": refused,
                   "init_per_min": by.get("video.init", {}).get("requests", 0) / minutes,
                   "status_per_min": by.get("status.fetch", {}).get("requests", 0) / minutes,
                   "creator_info_per_min": by.get("creator_info", {}).get("requests", 0) / minutes}}
    R["budgets"] = res
    note(f"budgets: {res['log']['init_per_min']:.2f} inits/min, {res['log']['status_per_min']:.2f} status/min, "
         f"{res['log']['all_429']} answers 429")


def start_workers(n, store, stopfile, limits, tag):
    if os.path.exists(stopfile):
        os.remove(stopfile)
    ps = []
    for i in range(n):
        out = open(os.path.join(WORK, f"worker-{tag}-{i}.jsonl"), "w")
        p = subprocess.Popen(["lua5.4", f"{ROOT}/bench/jobs.lua", "worker", stopfile, limits], text=True,
                             stdout=out, env=lua_env({"BENCH_STORE": store}))
        p.out_path = out.name
        procs.append(p)
        ps.append(p)
    return ps


def stop_workers(ps, stopfile):
    open(stopfile, "w").close()
    events = []
    for p in ps:
        try:
            p.wait(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        procs.remove(p)
        events += [e for e in lua_json(open(p.out_path).read()) if e.get("item") == "event"]
    return events


def worker_events(ps):
    ev = []
    for p in ps:
        try:
            ev += [e for e in lua_json(open(p.out_path).read()) if e.get("item") == "event"]
        except ValueError:
            pass        # a line being written
    return ev


def enqueue(store, media, n, accounts=()):
    out = run(["lua5.4", f"{ROOT}/bench/jobs.lua", "enqueue", media, str(n)] + list(accounts),
              env=lua_env({"BENCH_STORE": store})).stdout
    return lua_json(out)


def store_accounts(store):
    return list(json.load(open(store))["accounts"].keys())


def smaps_kib(pid):
    """(RSS, PSS) of a process in KiB (smaps_rollup: PSS shares each shared
    page among the processes that map it)."""
    rss = pss = 0
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def peak_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def item_jobs(R):
    media = make_media(1_000_000, "jobs.mp4")
    res = R["jobs"] = {}
    admin("PATCH", "/config", {"rate_limits": TIKTOK_LIMITS})
    try:
        # Latency from enqueue to init, with the budget free: one worker waiting
        # (jobs:work sleeps idle_s between looks at the queue), one job at a time.
        lat_store = sandbox_user_store("store-jobs-latency.json", ["bench_jobs_lat"])
        stopfile = os.path.join(WORK, "jobs-lat.stop")
        ws = start_workers(1, lat_store, stopfile, "default", "lat")
        time.sleep(2)
        lats = []
        for i in range(JOBS_LATENCY_N):
            job = enqueue(lat_store, media, 1)[0]
            deadline = time.time() + 60
            init = None
            while time.time() < deadline and not init:
                time.sleep(0.05)
                init = next((e for e in worker_events(ws) if e["id"] == job["id"] and e["type"] == "init"), None)
            if not init:
                raise RuntimeError(f"job {job['id']} made no init within 60 s")
            lats.append(init["t"] - job["t"])
            time.sleep(0.3 + i * 0.17)       # a different phase of the worker's idle sleep each time
        stop_workers(ws, stopfile)
        res["latency"] = {"runs_ms": lats, "median_ms": statistics.median(lats), "max_ms": max(lats)}
        note(f"jobs: enqueue -> init {lats} ms")

        # Jobs per minute: JOBS_ACCOUNTS accounts, JOBS_WORKERS worker processes,
        # more jobs queued than the budgets allow in JOBS_S.
        users = [f"bench_jobs_{i + 1}" for i in range(JOBS_ACCOUNTS)]
        store = sandbox_user_store("store-jobs.json", users)
        accounts = store_accounts(store)
        allowed = 6 * JOBS_ACCOUNTS * JOBS_S / 60
        queued = enqueue(store, media, int(allowed * 2) + 6 * JOBS_ACCOUNTS, accounts)   # never runs dry
        seq = last_seq()
        stopfile = os.path.join(WORK, "jobs.stop")
        t0 = time.time()
        ws = start_workers(JOBS_WORKERS, store, stopfile, "default", "rate")
        time.sleep(JOBS_S)
        t1 = time.time()
        events = stop_workers(ws, stopfile)
        entries = log_since(seq)
        by = count_log(entries, t0, t1)
        finals = {}
        for e in events:
            if e["type"] in ("published", "failed", "ambiguous", "inbox") or e.get("state") in (
                    "published", "failed", "ambiguous", "inbox"):
                finals.setdefault(e.get("state"), set()).add(e["id"])
        inits = {e["id"] for e in events if e["type"] == "init"}
        res["rate"] = {"accounts": JOBS_ACCOUNTS, "workers": JOBS_WORKERS, "seconds": t1 - t0,
                       "queued": len(queued), "inits": len(inits),
                       "finished": {k: len(v) for k, v in finals.items()},
                       "log_inits": by.get("video.init", {}).get("requests", 0),
                       "all_429": sum(1 for e in entries if e.get("status") == 429), "by_endpoint": by,
                       "allowed_inits": allowed,
                       "jobs_per_min": by.get("video.init", {}).get("requests", 0) / ((t1 - t0) / 60),
                       "allowed_per_min": 6 * JOBS_ACCOUNTS,
                       "event_types": sorted({e["type"] for e in events if e.get("type")})}
        note(f"jobs: {res['rate']['jobs_per_min']:.2f} inits/min with {JOBS_ACCOUNTS} accounts "
             f"(allowed {6 * JOBS_ACCOUNTS}), {res['rate']['all_429']} answers 429")
    finally:
        admin("PATCH", "/config", {"rate_limits": BENCH_LIMITS})

    # Memory: one machine's worker processes, each running one file upload,
    # 1, 4 and 16 at once (sampled while every upload is in flight).
    mem_store = sandbox_user_store("store-jobs-mem.json", ["bench_jobs_mem"])
    big = make_media(JOBS_MEM_SIZE, "jobs-mem.mp4")
    warm(big)
    res["memory"] = {}
    for n in JOBS_MEM_UPLOADS:
        wait_quiet()
        stopfile = os.path.join(WORK, f"jobs-mem-{n}.stop")
        ws = start_workers(n, mem_store, stopfile, "off", f"mem{n}")
        time.sleep(1.5)
        idle = [smaps_kib(p.pid) for p in ws]
        jobs_ = enqueue(mem_store, big, n)
        ids = {j["id"] for j in jobs_}
        samples, peak_sum, peak_pss, most, t_end = 0, 0, 0, 0, time.time() + 300
        while time.time() < t_end:
            ev = worker_events(ws)
            started = {e["id"] for e in ev if e["type"] == "init"} & ids
            # the init event already carries the state "processing": the upload
            # is over at the first status poll (event "processing") or the end
            done = {e["id"] for e in ev if e["type"] in ("processing", "published", "failed")} & ids
            m = [smaps_kib(p.pid) for p in ws]
            in_flight = len(started - done)
            most = max(most, in_flight)
            if in_flight:
                samples += 1
            peak_sum = max(peak_sum, sum(x[0] for x in m))
            peak_pss = max(peak_pss, sum(x[1] for x in m))
            if len(done) == n:
                break
            time.sleep(0.05)
        hwm = [peak_kib(p.pid) for p in ws]
        stop_workers(ws, stopfile)
        res["memory"][str(n)] = {"uploads": n, "samples": samples, "most_in_flight": most, "sum_rss_kib": peak_sum, "sum_pss_kib": peak_pss,
                                 "idle_sum_rss_kib": sum(x[0] for x in idle),
                                 "idle_sum_pss_kib": sum(x[1] for x in idle),
                                 "sum_peak_rss_kib": sum(hwm), "max_peak_rss_kib": max(hwm)}
        note(f"jobs memory {n} uploads: sum RSS {peak_sum / 1024:.1f} MiB, sum PSS {peak_pss / 1024:.1f} MiB, "
             f"{samples} samples")
    res["memory_nginx"] = jobs_memory_nginx(big)
    R["jobs"] = res


# The other design: one nginx worker running jobs:work{ concurrency = N }
# from a handler (the example app's timers do the same). A new nginx for
# each row, so that no row inherits the memory of the one before; "warm"
# first makes the 16 thread VMs that tiktok.warm_threads makes at start-up,
# the other rows let the uploads create the VMs they need.
JOBS_NGX_ROWS = [(1, False), (4, False), (16, False), (16, True)]


def jobs_memory_nginx(big):
    rows = {}
    upload_port = urllib.parse.urlsplit(ENV["TIKTOK_UPLOAD_BASE"]).port
    for n, warm_vms in JOBS_NGX_ROWS:
        wait_quiet()
        name = f"store-jobs-ngx-{n}{'-warm' if warm_vms else ''}.json"
        for stale in (name, name + ".lock"):
            if os.path.exists(os.path.join(WORK, stale)):
                os.remove(os.path.join(WORK, stale))
        store = sandbox_user_store(name, ["bench_jobs_mem"])
        base = start_bench_nginx(warm_threads=warm_vms)
        prefix = nginx_prefixes[-1]
        master = int(open(os.path.join(prefix, "nginx.pid")).read().strip())
        worker = int(sh_out(f"ps -o pid= --ppid {master}").split()[0])
        time.sleep(0.5)
        idle = smaps_kib(worker)
        enqueue(store, big, n)
        events = os.path.join(WORK, f"jobs-ngx-{n}.jsonl")
        open(events, "w").close()
        answer = {}

        def work():
            q = urllib.parse.urlencode({"store": store, "events": events, "n": n, "c": n})
            answer["r"] = http("GET", f"{base}/jobs?{q}", timeout=900)
        t = threading.Thread(target=work)
        t.start()
        samples, peak, peak_master, most = 0, (0, 0), 0, 0
        while t.is_alive():
            # the events of a post arrive when its worker thread is done with
            # it: the uploads in flight are the worker's connections to the
            # upload host
            in_flight = sum(1 for line in sh_out(f"ss -tnpH state established '( dport = :{upload_port} )'")
                            .splitlines() if f"pid={worker}," in line)
            most = max(most, in_flight)
            m = smaps_kib(worker)
            if in_flight:
                samples += 1
            peak = (max(peak[0], m[0]), max(peak[1], m[1]))
            peak_master = max(peak_master, smaps_kib(master)[1])
            time.sleep(0.05)
        t.join()
        hwm = peak_kib(worker)
        stop_bench_nginx(nginx_prefixes.pop())
        status, body = answer.get("r", (0, None))
        if status != 200:
            raise RuntimeError(f"nginx jobs run with {n} uploads failed: {status} {body}")
        ev = lua_json(open(events).read())
        finished = {e["id"] for e in ev if e.get("state") in ("published", "processing")}
        key = f"{n}{' warm' if warm_vms else ''}"
        rows[key] = {"uploads": n, "warm_vms": 16 if warm_vms else 0, "samples": samples, "most_in_flight": most,
                     "jobs_uploaded": len(finished),
                     "worker_rss_kib": peak[0], "worker_pss_kib": peak[1], "master_pss_kib": peak_master,
                     "idle_rss_kib": idle[0], "idle_pss_kib": idle[1], "worker_peak_rss_kib": hwm}
        note(f"jobs memory, one nginx worker, {key}: RSS {peak[0] / 1024:.1f} MiB, PSS {peak[1] / 1024:.1f} MiB "
             f"(+ master PSS {peak_master / 1024:.1f}), idle PSS {idle[1] / 1024:.1f}, {most} in flight")
    return rows


# ------------------------------------------------------------------ item 11: /ping in every run (issue 18)

PING_RUNS = int(os.environ.get("BENCH_PING_RUNS", "5"))
PING_MANY = 16                    # concurrent uploads on one worker
PING_BUFS = [16384, 65536, 262144, 1048576]
PING_BUF_RUNS = int(os.environ.get("BENCH_PING_BUF_RUNS", "3"))
SETTINGS.update(ping_runs=PING_RUNS, ping_many=PING_MANY, ping_bufs=PING_BUFS, ping_buf_runs=PING_BUF_RUNS)


def ping_figures(r):
    """The figures of one run kept in the report (p99.9 from the pooled probes)."""
    return {k: r.get(k) for k in ("probes", "answered", "failures", "p50", "p99", "p999", "max", "over100",
                                  "upload_seconds", "upload_mbps", "waves")}


def load_run_n(tag, base, start_uploads, n_uploads, waves):
    """load_run with p99.9 and the throughput of n_uploads uploads."""
    global OR_UPLOADS
    keep = OR_UPLOADS
    OR_UPLOADS = n_uploads            # load_run's MB/s is for OR_UPLOADS uploads
    try:
        r = load_run(tag, base, start_uploads, None, waves=waves)
    finally:
        OR_UPLOADS = keep
    return r


def sandbox_autogroup_nice(n):
    """Sets the nice of the sandbox's scheduling group (its nginx runs in a
    session of its own, so with the kernel's autogroups it competes with the
    app's nginx as a group, whatever nice the app's threads have). Returns
    False when the kernel has no autogroups."""
    try:
        with open(f"/proc/{int(ENV['TIKTOK_SANDBOX_PID'])}/autogroup", "w") as f:
            f.write(str(n))
        return True
    except (OSError, KeyError, ValueError):
        return False


def item_ping_runs(R):
    files = [make_media(OR_SIZE, f"or-{i}.mp4") for i in range(PING_MANY)]
    warm(*files[:OR_UPLOADS])
    # TikTok's upload servers are elsewhere in production: on this machine the
    # sandbox that stands in for them decrypts every upload, and at nice 0 its
    # group takes the CPU from the event loop (the contrast row measures it).
    lowered = sandbox_autogroup_nice(19)
    try:
        item_ping_rows(R, files, lowered)
    finally:
        sandbox_autogroup_nice(0)


def item_ping_rows(R, files, lowered):
    rows = R["ping_runs"] = {"setup": {"sandbox_autogroup_nice": 19 if lowered else None}}

    def add(row, i, r, **extra):
        r = ping_figures(r)
        r.update(extra, row=row, run=i, loadavg=loadavg())
        rows[f"{row} {i}"] = r
        note(f"ping {row} run {i}: p99 {r['p99']:.2f} ms, p99.9 {r['p999']:.2f} ms, {r['upload_mbps']:.0f} MB/s"
             f" (load {r['loadavg']:.2f})")

    def uploads(base, fs, query=""):
        def go():
            q = [base + "/library?file=" + urllib.parse.quote(f) + query for f in fs]
            bodies = curl_all(q)
            wait_uploads([json.loads(b)["publish_id"] for b in bodies])
        return go

    for i in range(PING_RUNS):
        wait_quiet(max_s=45)
        base = start_bench_nginx(warm_threads=True)      # the README's setup
        try:
            add("handler first", i, load_run_n("h-first", base, uploads(base, files[:OR_UPLOADS]), OR_UPLOADS, 1))
            add("handler next", i, load_run_n("h-next", base, uploads(base, files[:OR_UPLOADS]), OR_UPLOADS,
                                              WARM_WAVES))
            add("handler next, upload_nice 0", i,
                load_run_n("h-nice0", base, uploads(base, files[:OR_UPLOADS], "&nice=0"), OR_UPLOADS, WARM_WAVES))
            uploads(base, files)()       # the 12 more connections are made before the measured 16-upload runs
            add(f"handler {PING_MANY} uploads", i,
                load_run_n("h-many", base, uploads(base, files), PING_MANY, 1))
            add(f"handler {PING_MANY} uploads, upload_nice 0", i,
                load_run_n("h-many0", base, uploads(base, files, "&nice=0"), PING_MANY, 1))
            if lowered:
                sandbox_autogroup_nice(0)
                try:
                    add(f"handler {PING_MANY} uploads, sandbox at nice 0", i,
                        load_run_n("h-many-sb0", base, uploads(base, files), PING_MANY, 1))
                finally:
                    sandbox_autogroup_nice(19)
        finally:
            stop_bench_nginx(nginx_prefixes.pop())

    # libcurl's upload buffer (CURLOPT_UPLOAD_BUFFERSIZE through upload_buffer_size)
    wait_quiet(max_s=45)
    base = start_bench_nginx(warm_threads=True)
    try:
        uploads(base, files[:OR_UPLOADS])()          # the connections exist before the first measured run
        for i in range(PING_BUF_RUNS):
            for buf in PING_BUFS:
                add(f"buffer {buf // 1024} KiB", i,
                    load_run_n("h-buf", base, uploads(base, files[:OR_UPLOADS], f"&buf={buf}"), OR_UPLOADS,
                               WARM_WAVES), buffer=buf)
    finally:
        stop_bench_nginx(nginx_prefixes.pop())

    # The example app (examples/openresty: posts are jobs run by nginx timers)
    runner = os.path.join(ROOT, "examples/openresty/run")
    global app_started
    for i in range(PING_RUNS):
        wait_quiet(max_s=45)
        try:
            base, _, hdr = start_example(runner, files[:OR_UPLOADS])
            app_connect(base, hdr)
            add("example first", i, load_run_n("e-first", base, lambda: example_posts(base, files[:OR_UPLOADS], hdr),
                                              OR_UPLOADS, 1))
            add("example next", i, load_run_n("e-next", base, lambda: example_posts(base, files[:OR_UPLOADS], hdr),
                                             OR_UPLOADS, WARM_WAVES))
        except Exception as e:  # noqa: BLE001 - the report says why
            rows[f"example failed {i}"] = {"row": "example failed", "run": i, "error": str(e)[:400]}
            note(f"example app run {i} failed: {e}")
            break
        finally:
            if app_started:
                run([runner, "stop", "--dir", SB], check=False, timeout=120)
                app_started = False
    R["ping_runs"] = rows


# ------------------------------------------------------------------ item 5: pure Lua

def item_purelua(R):
    rows = []
    for interp in ("lua5.4", "luajit"):
        out = run([interp, f"{ROOT}/bench/purelua.lua"], env=lua_env()).stdout
        rows.append(lua_json(out)[-1])
        note(f"pure Lua {rows[-1]['interpreter']}: {rows[-1]['render_per_s']:.0f} renders/s, "
             f"{rows[-1]['validate_per_s']:.0f} validations/s")
    R["purelua"] = rows


# ------------------------------------------------------------------ item 7: hostile input

def interpreter_name(interp):
    return run([interp, "-e", "print(jit and jit.version or _VERSION)"]).stdout.strip()


def hostile_case(interp, case, n):
    """One case in its own process, stopped after HOSTILE_TIMEOUT_S."""
    try:
        r = lua_json(run([interp, f"{ROOT}/bench/hostile.lua", case, str(n)], env=lua_env(),
                         timeout=HOSTILE_TIMEOUT_S).stdout)[-1]
    except subprocess.TimeoutExpired:
        r = {"case": case, "bytes": n, "timeout": True}
    r["interp"] = interp
    return r


def item_hostile(R):
    rows = []
    names = {}
    for interp in ("lua5.4", "luajit"):
        names[interp] = interpreter_name(interp)
        for case in report.HOSTILE_CASES:
            for n in HOSTILE_BYTES:
                rows.append(hostile_case(interp, case, n))
                r = rows[-1]
                note(f"hostile {interp} {case} {n} B: "
                     + ("> {} s".format(HOSTILE_TIMEOUT_S) if r.get("timeout") else f"{r['seconds'] * 1000:.3f} ms"))
    measured = "lua/tiktok/template.lua lua/tiktok/errors.lua"      # what hostile.lua loads
    R["hostile"] = {"rows": rows, "interpreters": names, "commit": commit_name(measured),
                    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# ------------------------------------------------------------------ main


def cleanup():
    if INTERFERENCE:
        INTERFERENCE.stop()
    for p in list(procs):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    for prefix in list(nginx_prefixes):
        stop_bench_nginx(prefix)
    if app_started:
        run([os.path.join(ROOT, "examples/openresty/run"), "stop", "--dir", SB], check=False, timeout=120)
    for d in (SB, SBH):
        if d and os.path.exists(os.path.join(d, "env")):
            run([os.path.join(ROOT, "sandbox/run"), "stop", "--dir", d], check=False, timeout=120)


ITEMS = [("1", item_uploads), ("2", item_flow), ("3", item_status), ("4", item_openresty),
         ("5", item_purelua), ("7", item_hostile), ("8", item_relay), ("9", item_budgets), ("10", item_jobs),
         ("11", item_ping_runs)]
# what each of items 8-11 measured with: when, at which commit, under which load (they can be run
# alone with BENCH_ONLY and put into BENCHMARKS.md next to the other items' saved figures)
STAMPED = {"8": "relay", "9": "budgets", "10": "jobs", "11": "ping_runs"}


def start_sandbox():
    global ENV
    note("starting the sandbox")
    run([os.path.join(ROOT, "sandbox/run"), "start", "--dir", SB])
    ENV = read_env(os.path.join(SB, "env"))
    # Hashing off: the sink must not be the bottleneck. Rate limits off
    # (a zero window): the bench makes far more posts and status fetches
    # than TikTok allows a token, and the sandbox's sliding window keeps
    # and copies every request's timestamp on each request, which slows
    # it down as thousands of fetches pile up inside a 60 s window.
    admin("PATCH", "/config", {"upload": {"hash": False},
                               "rate_limits": {"window_sec": 0, "video.init": 1000000,
                                               "status.fetch": 100000000, "creator_info": 1000000}})
    admin("PATCH", "/users/" + ENV["TIKTOK_SANDBOX_USER"], {"daily_post_cap": 1000000})
    run(["lua5.4", f"{ROOT}/bench/account.lua"], env=lua_env())


def run_items(R, items):
    """Runs the items (those BENCH_ONLY names), each with the interference
    sampler on it; adds what the sampler saw to R["interference"]."""
    for key, fn in items:
        if ONLY and key not in ONLY and not (key == "1" and "6" in ONLY):
            continue
        note(f"item {key}")
        INTERFERENCE.item = key
        stamp = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "commit": commit_name(), "loadavg_start": loadavg()}
        if key in STAMPED:
            try:
                fn(R)
            except Exception as e:  # noqa: BLE001 - one of items 8-11 failing keeps the others' figures
                import traceback
                traceback.print_exc()
                note(f"item {key} failed: {e}")
        else:
            fn(R)
        INTERFERENCE.item = None
        if key in STAMPED and STAMPED[key] in R:
            stamp["loadavg_end"] = loadavg()
            R[STAMPED[key]]["run"] = stamp
    seen = {k: INTERFERENCE.describe(k) for k, _ in items if INTERFERENCE.describe(k)}
    R["interference"] = dict(R.get("interference") or {}, **seen)


def write(R, machine):
    """Prints the report and writes it to OUT (not for a BENCH_ONLY run)
    and the raw figures to build/bench/results.jsonl (always)."""
    os.makedirs(os.path.dirname(SAVED), exist_ok=True)
    with open(SAVED, "w") as f:
        f.write(results.raw_lines(R, machine))
    text = report.document(R, machine)
    print(text)
    if not ONLY or MERGED:
        with open(OUT, "w") as f:
            f.write(text)
        note(f"wrote {OUT}")


def full_run():
    """make bench: every item in one run, with the sandbox."""
    global PERF, INTERFERENCE, MERGED
    for tool in ("/usr/bin/time", "curl", "nginx", "lua5.4", "luajit", "ffmpeg"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install {'time' if tool == '/usr/bin/time' else tool})")
    t_start, steal0 = time.time(), steal_ms()
    PERF = perf_works()
    INTERFERENCE = Interference()
    start_sandbox()
    M = machine()
    R = {}
    run_items(R, ITEMS)
    if ONLY and ONLY <= set(STAMPED) and os.path.exists(OUT):
        # items 8-11 alone: their figures go into BENCHMARKS.md next to the
        # other items' saved ones (the machine table stays that run's)
        MERGED = True
        saved, old = results.load(OUT)
        for k, v in R.items():
            if k != "interference" and isinstance(v, dict) and isinstance(v.get("run"), dict):
                v["run"]["alone"] = True          # measured in a run of its own (the report says so)
        saved.update({k: v for k, v in R.items() if k != "interference"})
        saved["interference"] = dict(saved.get("interference") or {}, **(R.get("interference") or {}))
        write(saved, old)
        return
    M["steal_s"] = (steal_ms() - steal0) / 1000
    M["run_s"] = time.time() - t_start
    M["loadavg_end"] = open("/proc/loadavg").read().split()[0]
    M["busy_end"] = busy_processes()
    write(R, {"machine": M, "settings": SETTINGS, "took_s": time.time() - t_start})


def hostile_run():
    """make bench-hostile: item 7 alone (no sandbox), put into the figures
    OUT already holds, and OUT written again."""
    global INTERFERENCE
    for tool, package in (("lua5.4", "lua5.4"), ("luajit", "luajit")):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install {package})")
    if not os.path.exists(OUT):
        sys.exit(f"bench: {OUT} does not exist: run make bench first")
    R, machine = results.load(OUT)
    INTERFERENCE = Interference()
    run_items(R, [("7", item_hostile)])
    write(R, machine)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mode = sys.argv[1] if len(sys.argv) > 1 else None
    if mode == "--report":
        R, machine = results.load(sys.argv[2] if len(sys.argv) > 2 else OUT)
        sys.stdout.write(report.document(R, machine))
        return
    if not mode:
        sys.exit(__doc__)
    try:
        hostile_run() if mode == "--hostile" else full_run()
    finally:
        cleanup()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)
