#!/usr/bin/env python3
"""The driver of `make bench` (bench/run calls it): starts the sandbox, runs
every measurement side by side in one run, prints the report and writes
BENCHMARKS.md. Python standard library only; everything talks to 127.0.0.1.

    bench.py WORKDIR        (bench/run makes WORKDIR and removes it afterwards)

Environment knobs (for development; `make bench` uses the defaults):
    BENCH_RUNS=3            runs per upload figure (the median is shown)
    BENCH_RUNS_MAIN=7       runs of the 1 GiB uploads and of the status fetches
    BENCH_ONLY=1,2,...      run only these items (BENCHMARKS.md is then not written)
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
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# the headline figures (1 GiB uploads, status fetches) get more runs: the VM may be shared
RUNS_MAIN = int(os.environ.get("BENCH_RUNS_MAIN", str(max(RUNS, 7))))
ONLY = set(x for x in os.environ.get("BENCH_ONLY", "").split(",") if x)
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "BENCHMARKS.md"))

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

SB = os.path.join(WORK, "sb") if WORK else None
PERF = False             # perf sched usable (set in main)
INTERFERENCE = None      # the sampler of other processes' CPU use (set in main)
procs = []               # background processes we started (killed by pid on exit)
nginx_prefixes = []      # bench nginx instances we started
app_started = False


def note(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def lua_env(extra=None):
    e = dict(os.environ)
    e["LUA_PATH"] = f"{ROOT}/?.lua;{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;{ROOT}/spec/?.lua;;"
    e["LUA_CPATH_5_4"] = f"{ROOT}/build/5.4/?.so;;"
    e["LUA_CPATH"] = f"{ROOT}/build/5.1/?.so;;"
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
        "commit": sh_out(f"git -C {ROOT} rev-parse --short HEAD") + (
            " (with uncommitted changes)" if sh_out(f"git -C {ROOT} status --porcelain -- lua src") else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg": open("/proc/loadavg").read().split()[0],
        "busy": busy_processes(),
    }


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
        for pf in ("sb/nginx/logs/nginx.pid", "sb/app/logs/nginx.pid", "nginx/nginx.pid"):
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
                 "-H", f"Content-Range: bytes {off}-{off + length - 1}/{size}",
                 "--request-target", target]
        if scheme == "https":
            args += ["--cacert", ENV["TIKTOK_CA_FILE"]]
        args.append(origin)
    out, wall, rss, cpu = timed(args)
    rows = [line.split() for line in out.splitlines() if line.strip()]
    codes = [r[0] for r in rows]
    want = ["206"] * (len(init["ranges"]) - 1) + ["201"]
    if codes != want:
        raise RuntimeError(f"curl upload answered {codes}")
    seconds = sum(float(r[2]) for r in rows)
    return {"client": "curl", "scheme": scheme, "size": size, "chunks": len(rows), "seconds": seconds,
            "wall": wall, "rss_kib": rss, "cpu": cpu, "mbps": size / 1e6 / seconds,
            "connects": sum(int(r[1]) for r in rows), "requests": len(rows)}


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
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat) if lat else float("nan"),
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


def start_bench_nginx():
    prefix = os.path.join(WORK, "nginx")
    for d in ("logs", "tmp", "conf"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    tpl = open(f"{ROOT}/bench/nginx.conf.in").read()
    for attempt in range(8):
        port = free_port()
        conf = (tpl.replace("@USER@", "user root root;" if os.getuid() == 0 else "")
                .replace("@PREFIX@", prefix).replace("@ROOT@", ROOT).replace("@PORT@", str(port))
                .replace("@MODULES@", "/usr/lib/nginx/modules"))
        open(os.path.join(prefix, "conf/nginx.conf"), "w").write(conf)
        r = run(["nginx", "-p", prefix, "-c", "conf/nginx.conf", "-e", os.path.join(prefix, "logs/error.log")],
                env=lua_env(), check=False)
        if r.returncode == 0:
            nginx_prefixes.append(prefix)
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if http("GET", base + "/ping")[0] == 200:
                        return base
                except OSError:
                    pass
                time.sleep(0.05)
            raise RuntimeError("bench nginx does not answer")
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


def example_run(files):
    global app_started
    runner = os.path.join(ROOT, "examples/openresty/run")
    if not os.access(runner, os.X_OK):
        return {"example_cold": {"skipped": "examples/openresty/run does not exist"}}
    env = dict(os.environ, APP_FILES_DIR=os.path.dirname(files[0]))
    r = run([runner, "start", "--dir", SB, "--workers", "1"], env=env, check=False, timeout=120)
    if r.returncode != 0:
        return {"example_cold": {"skipped": "examples/openresty/run start failed: "
                                 + (r.stderr or r.stdout).strip()[-300:]}}
    app_started = True
    try:
        src = open(os.path.join(ROOT, "examples/openresty/lua/tiktok_app/init.lua")).read()
    except OSError:
        src = ""
    out = {"example_warms": "warm_threads" in src}
    try:
        base = re.search(r"^APP_URL=(\S+)", r.stdout, re.M).group(1).strip("'")
        tid = worker_of(int(re.search(r"^APP_PID=(\S+)", r.stdout, re.M).group(1).strip("'")))
        store = os.path.join(SB, "app", "store.json")
        run(["lua5.4", f"{ROOT}/bench/account.lua"], env=lua_env({"BENCH_STORE": store, "BENCH_AS_USER": "bench"}))
        hdr = {"X-User": "bench", "Content-Type": "application/json"}

        def example_uploads():
            import concurrent.futures as cf
            with cf.ThreadPoolExecutor(OR_UPLOADS) as ex:
                answers = list(ex.map(lambda f: http("POST", base + "/tiktok/posts",
                                                     {"video_file": os.path.basename(f), "privacy": "SELF_ONLY"},
                                                     hdr, timeout=120), files))
            bad = [a for a in answers if a[0] != 202]
            if bad:
                raise RuntimeError(f"example app refused the posts: {bad}")
            wait_uploads([a[1]["publish_id"] for a in answers])
        for wave in ("cold", "warm"):
            out["example_" + wave] = load_run("example-" + wave, base, example_uploads,
                                              tid if wave == "warm" else None,
                                              waves=WARM_WAVES if wave == "warm" else 1)
            note(f"openresty example app ({wave}): p99 {out['example_' + wave]['p99']:.2f} ms")
        return out
    except Exception as e:  # noqa: BLE001 - the report says why
        out.setdefault("example_cold", {"skipped": f"the example app run failed: {e}"[:400]})
        return out
    finally:
        run([runner, "stop", "--dir", SB], check=False, timeout=120)
        app_started = False


# ------------------------------------------------------------------ item 5: pure Lua

def item_purelua(R):
    rows = []
    for interp in ("lua5.4", "luajit"):
        out = run([interp, f"{ROOT}/bench/purelua.lua"], env=lua_env()).stdout
        rows.append(lua_json(out)[-1])
        note(f"pure Lua {rows[-1]['interpreter']}: {rows[-1]['render_per_s']:.0f} renders/s, "
             f"{rows[-1]['validate_per_s']:.0f} validations/s")
    R["purelua"] = rows


# ------------------------------------------------------------------ report

def med(rows, key):
    return statistics.median(r[key] for r in rows)


def rng(rows, key, fmt="{:.0f}"):
    xs = [r[key] for r in rows]
    if len(xs) < 2:
        return ""
    return " (" + fmt.format(min(xs)) + "–" + fmt.format(max(xs)) + ")"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def rng_mib(rows):
    xs = [r["rss_kib"] / 1024 for r in rows]
    return f" ({min(xs):.1f}–{max(xs):.1f})" if len(xs) > 1 else ""


def verdict(ok):
    return "met" if ok else "**missed**"


def interference(w, R, key):
    line = (R.get("interference") or {}).get(key)
    if line:
        w(f"_While this ran, {line}._")
        w("")


def report(R, M):
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w(f"Generated by `make bench` (`bench/run`) on {M['date']} at commit `{M['commit']}`. Every figure "
      "below was measured in that one run, side by side; upload and request rates are medians of "
      f"{RUNS_MAIN} runs for 1 GiB and the status fetches, {RUNS} runs for 100 MB and 4 GiB (min–max in brackets). MB/s = 10^6 bytes/s. All traffic went to 127.0.0.1: the "
      "local TikTok sandbox (`sandbox/`, one nginx worker, upload hashing off) stands in for TikTok.")
    w("")
    w("| machine | |")
    w("|---|---|")
    w(f"| CPU | {M['cpu']} |")
    w(f"| memory | {M['memory']} |")
    w(f"| OS | {M['os']}; files on {M['disk']} |")
    w(f"| Lua | {M['lua']}; {M['luajit']} |")
    w(f"| libcurl | {M['libcurl']}; {M['openssl']} |")
    w(f"| nginx | {M['nginx']} |")
    w(f"| tools | {M['valgrind']}, Python {M['python']}, GNU time |")
    w(f"| load at start | 1-min load average {M['loadavg']}; other processes using CPU: {M['busy'] or 'none'} |")
    if "steal_s" in M:
        w(f"| vCPU steal | {M['steal_s']:.1f} s summed over the vCPUs during the {M['run_s']:.0f} s run "
          "(time the hypervisor gave this VM's vCPUs to others) |")
    if "loadavg_end" in M:
        w(f"| load at end | 1-min load average {M['loadavg_end']}; other processes using CPU: "
          f"{M['busy_end'] or 'none'} |")
    w("")

    summary = []
    up = R.get("uploads", [])

    def sel(label, scheme, client):
        return [r for r in up if r["label"] == label and r["scheme"] == scheme and r["client"] == client]

    if up:
        w("## 1. Upload 1 GiB: the library vs curl")
        w("")
        interference(w, R, "1")
        w("The library: a real `tiktok.post` (creator_info, validation, the planner's chunks, init) with "
          "an `on_progress` callback and the default file store (it journals each chunk), `wait = false`; "
          "timed from `on_publish` (init answered) to the last chunk's 201, which covers the "
          "connection to the upload host, every chunk PUT and the library's work between chunks. "
          "curl: one `curl` process, the same PUTs (same URL from a real init, same Content-Range "
          "and Content-Type) on one connection with `--next`, each chunk from a file cut out "
          "beforehand; timed as the sum of its transfers' `time_total`. Peak RSS is that of the "
          "whole client process (`/usr/bin/time`).")
        w("")
        f1 = [r for r in up if r["label"] == "1 GiB"]
        if f1:
            n = f1[0]["chunks"]
            w(f"Plan for 1 GiB ({f1[0]['size']:,} bytes): {n} chunks, "
              f"{n - 1} × 64,000,000 and a last one of {f1[0]['size'] - (n - 1) * 64_000_000:,} bytes.")
            w("")
        w("| transport | client | MB/s | seconds | of which journal writes | client CPU s | connections | requests | peak RSS |")
        w("|---|---|---|---|---|---|---|---|---|")
        for scheme in ("http", "https"):
            for client in ("library", "library (memory store)", "curl"):
                rows = sel("1 GiB", scheme, client)
                if not rows:
                    continue
                jr = (f"{med(rows, 'journal_seconds') * 1000:.1f} ms ({rows[0]['journal_writes']} writes)"
                      if "journal_seconds" in rows[0] else "–")
                w(f"| {scheme.upper()} | {client} | {med(rows, 'mbps'):.0f}{rng(rows, 'mbps')} | "
                  f"{med(rows, 'seconds'):.3f} | {jr} | {med(rows, 'cpu'):.2f} | {med(rows, 'connects'):.0f} | "
                  f"{med(rows, 'requests'):.0f} | {mib(med(rows, 'rss_kib'))}{rng_mib(rows)} |")
        w("")
        w("Library / curl throughput, three ways: the ratio of the medians above; the median of the "
          f"{RUNS_MAIN} back-to-back pairs (each run times the library and curl one right after the other, "
          "so a slow spell of this shared VM hits both sides of a pair; this one decides the target); the "
          "ratio of the best runs.")
        w("")
        w("| transport | client | ratio of medians | median of pairs | best / best | target | | peak RSS | target | |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for scheme in ("http", "https"):
            cu = sel("1 GiB", scheme, "curl")
            for client in ("library", "library (memory store)"):
                lib = sel("1 GiB", scheme, client)
                if not (lib and cu):
                    continue
                ratio = med(lib, "mbps") / med(cu, "mbps")
                by_run = {r["run"]: r["mbps"] for r in cu}
                paired = statistics.median(r["mbps"] / by_run[r["run"]] for r in lib if r["run"] in by_run)
                best = max(r["mbps"] for r in lib) / max(r["mbps"] for r in cu)
                rss = med(lib, "rss_kib") / 1024
                w(f"| {scheme.upper()} | {client} | {ratio:.3f} | **{paired:.3f}** | {best:.3f} | ≥ 0.95 | "
                  f"{verdict(paired >= 0.95)} | {rss:.1f} MiB | ≤ 16 MiB | {verdict(rss <= 16)} |")
                if client == "library":
                    summary.append((f"1. upload 1 GiB {scheme.upper()}: library / curl (median of pairs; ratio of medians)",
                                    f"{paired:.3f}; {ratio:.3f}", "≥ 0.95", paired >= 0.95))
                    summary.append((f"1. upload 1 GiB {scheme.upper()}: library peak RSS", f"{rss:.1f} MiB",
                                    "≤ 16 MiB", rss <= 16))
        w("")
        w("The library's connections and requests include the API host (creator_info and init) besides "
          "the chunk PUTs. \"client CPU s\" is user + system time of the whole client process. "
          "\"memory store\": the same `tiktok.post` with `tiktok.store.memory()`, which keeps the upload "
          "journal in memory instead of writing and fsyncing the store file after every chunk.")
        w("")

    fl = R.get("flow")
    if fl:
        w("## 2. One whole post: connections and requests")
        w("")
        interference(w, R, "2")
        w("`tiktok.post` of the 1 GiB file over HTTPS on a fresh connection, `wait = true` (default "
          "polling), after the sandbox expired the account's access token, so the flow starts with a "
          f"refresh. Took {fl['seconds']:.2f} s, peak RSS {fl['rss_kib'] / 1024:.1f} MiB, final status "
          f"`{fl['status']}`. Counted by the library (`conn:stats()`) and by the sandbox's request log "
          "(distinct nginx connection serials per host).")
        w("")
        ep = fl["by_endpoint"]
        chunks = fl["chunks"]
        rows = [("token refresh", "oauth.token", 1), ("creator_info", "creator_info", 1),
                ("init", "video.init", 1), ("chunk PUTs", "upload.put", chunks), ("status polls", "status.fetch", 1)]
        w("| request | made | minimum the API needs |")
        w("|---|---|---|")
        for name, key, mn in rows:
            w(f"| {name} | {ep.get(key, 0)} | {mn} |")
        others = {k: v for k, v in ep.items() if k not in {r[1] for r in rows}}
        for k, v in sorted(others.items(), key=lambda kv: str(kv[0])):
            w(f"| {k} | {v} | 0 |")
        minimum = sum(r[2] for r in rows)
        w(f"| **total** | **{fl['log_requests']}** (library: {fl['requests']}) | **{minimum}** |")
        w("")
        lc = fl["log_connections"]
        w("| TCP connections | opened | target |")
        w("|---|---|---|")
        w(f"| API host (sandbox log) | {lc['api']} | 1 |")
        w(f"| upload host (sandbox log) | {lc['upload']} | 1 |")
        if lc.get("other"):
            w(f"| other ports (sandbox log) | {lc['other']} | 0 |")
        w(f"| total (library, `conn:stats().connects`) | {fl['connects']} | 2 |")
        w("")
        extra_polls = ep.get("status.fetch", 0) - 1
        if extra_polls > 0:
            w(f"Status answers, in order: {'; '.join(fl.get('statuses', []))} (from the start of the post). "
              f"The {extra_polls} poll(s) beyond the minimum waited for the sandbox's processing (it keeps a "
              f"finished upload in `PROCESSING_UPLOAD` for `delays.processing_ms`, {fl['processing_ms']} ms); "
              f"the library polls right after the last chunk, then with back-off from `poll_ms` ({fl['poll_ms']} ms).")
            w("")
        conn_ok = lc["api"] == 1 and lc["upload"] == 1 and fl["connects"] == 2 and not lc.get("other")
        summary.append(("2. connections for one post (API + upload)", f"{lc['api']} + {lc['upload']}", "1 + 1",
                        conn_ok))
        req_ok = fl["log_requests"] - max(0, extra_polls) == minimum and fl["requests"] == fl["log_requests"]
        summary.append(("2. requests for one post", f"{fl['log_requests']} ({extra_polls} extra status polls)",
                        f"{minimum} + polls while processing", req_ok))

    st = R.get("status")
    if st:
        w(f"## 3. Per-request cost: {STATUS_N:,} status fetches on one connection")
        w("")
        interference(w, R, "3")
        w(f"The library: `tiktok.status{{}}` for one publish_id, {STATUS_N:,} times after one warm-up fetch, "
          "timed in the process (with the default file store, read on every call as processes sharing it "
          "must, and with the account in `tiktok.store.memory()`). curl: one `curl -K` process with the same "
          f"POST (same headers and body) {STATUS_N + 1:,} times (`next` between them) minus one with 1, so "
          "both figures are for warm keep-alive connections. Every run made exactly one connection.")
        w("")
        w("| transport | client | requests/s | ms/request | client CPU µs/request |")
        w("|---|---|---|---|---|")
        rows = st["rows"]
        for scheme in ("http", "https"):
            for client in ("library (file store)", "library (memory store)", "curl"):
                rs = [r for r in rows if r["scheme"] == scheme and r["client"] == client]
                if rs:
                    w(f"| {scheme.upper()} | {client} | {med(rs, 'rps'):.0f}{rng(rs, 'rps')} | "
                      f"{1000 / med(rs, 'rps'):.3f} | {med(rs, 'cpu') / STATUS_N * 1e6:.0f} |")
        w("")
        for scheme in ("http", "https"):
            lib = [r for r in rows if r["scheme"] == scheme and r["client"] == "library (file store)"]
            cu = [r for r in rows if r["scheme"] == scheme and r["client"] == "curl"]
            if lib and cu:
                summary.append((f"3. status fetches {scheme.upper()}: library / curl requests/s; CPU per request",
                                f"{med(lib, 'rps') / med(cu, 'rps'):.2f}; {med(lib, 'cpu') / med(cu, 'cpu'):.2f}",
                                "(no target)", None))
        cg = st.get("callgrind") or {}
        if cg:
            w(f"Instructions per request (`valgrind --tool=callgrind`, whole client process, plain HTTP): "
              f"(run with 1 + {CALLGRIND_N} fetches − run with 1) / {CALLGRIND_N}, two runs each:")
            w("")
            w("| client | run 1 | run 2 | difference |")
            w("|---|---|---|---|")
            for k, label in (("library", "library (`tiktok.status`, file store)"), ("curl", "curl CLI")):
                a, b = cg[k]
                w(f"| {label} | {a:,.0f} | {b:,.0f} | {abs(a - b) / max(a, b) * 100:.3f} % |")
            w("")
            a, b = cg["library"]
            summary.append(("3. instructions per status fetch (library; curl CLI)",
                            f"{statistics.mean(cg['library']):,.0f}; {statistics.mean(cg['curl']):,.0f}",
                            "stable between runs", abs(a - b) / max(a, b) < 0.01))
        else:
            w("valgrind is not installed: no instruction counts (apt-get install valgrind).")
            w("")

    orr = R.get("openresty")
    if orr:
        w(f"## 4. OpenResty: /ping on one nginx worker during {OR_UPLOADS} uploads of {OR_SIZE // 1_000_000} MB")
        w("")
        interference(w, R, "4")
        w(f"Open-loop prober (`bench/prober.py`): a new connection to `/ping` every {PROBE_MS} ms whether "
          "or not the earlier probes were answered, from the start of the uploads until all of them were "
          f"complete at the sandbox. {OR_UPLOADS} uploads at once, HTTPS to the sandbox, one nginx worker "
          "(`worker_processes 1`), thread pool of 4.")
        w("")
        cols = [("idle", "no uploads (reference)"),
                ("example_cold", "example app (`examples/openresty`"
                 + (", which calls `tiktok.warm_threads` at start" if orr.get("example_warms") else "")
                 + "), first uploads after start"),
                ("example_warm", "example app, next uploads"),
                ("handler_cold", "`tiktok.post` in a content handler (no `tiktok.warm_threads`), first uploads "
                 "after start"),
                ("handler_warm", "`tiktok.post` in a content handler, next uploads"),
                ("handler_nice", "the same, thread-pool threads at nice 10"),
                ("direct", "C core called directly in the handler (blocking baseline)")]
        w("| /ping while | probes | p50 ms | p99 ms | max ms | > 100 ms | slowest probes (ms @ start) | uploads took | aggregate MB/s |")
        w("|---|---|---|---|---|---|---|---|---|")
        for key, label in cols:
            r = orr.get(key)
            if not r:
                continue
            if "skipped" in r:
                w(f"| {label} | not measured: {r['skipped']} | | | | | | | |")
                continue
            up_s = f"{r['upload_seconds']:.2f} s" if "upload_seconds" in r else "–"
            up_m = f"{r['upload_mbps']:.0f}" if "upload_mbps" in r else "–"
            fails = f" ({r['failures']} failed)" if r["failures"] else ""
            slow = ", ".join(f"{a:.0f} @ {b}" for a, b in r.get("slowest", [])[:3])
            w(f"| {label} | {r['probes']}{fails} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['over100']} | "
              f"{slow} | {up_s} | {up_m} |")
        w("")
        w("\"slowest probes\": the three longest /ping answers and when they started (ms after the "
          f"uploads were started; \"next uploads\" rows pool {WARM_WAVES} runs of the {OR_UPLOADS} uploads). \"first uploads after start\": nginx makes a Lua VM for each worker thread "
          "that gets a task, on the event loop, and `require`s the module the task names in it there "
          "(lua-nginx-module 0.10.23 `ngx_http_lua_run_worker_thread`); later tasks reuse the VMs, and "
          "`tiktok.warm_threads` in `init_worker_by_lua*` makes them at start-up instead.")
        w("")
        fc = R.get("first_calls")
        if fc:
            t, e = fc["tiktok"], fc["empty"]
            w(f"The first {OR_UPLOADS} uploads after a start pay for {OR_UPLOADS} new thread VMs on the event loop. "
              f"Measured alone (`/firstcalls` in `bench/ngx_bench.lua`: {OR_UPLOADS} calls posted at once in a "
              "freshly started nginx, timed until the loop runs a timer again; medians of 3 starts):")
            w("")
            w(f"| module the task names | event loop held for {OR_UPLOADS} new VMs | per VM | runs |")
            w("|---|---|---|---|")
            for x in (t, e):
                w(f"| `{x['module']}` | {x['median_ms']:.2f} ms | {x['median_ms'] / OR_UPLOADS:.2f} ms | "
                  + ", ".join(f"{v:.2f}" for v in x["runs_ms"]) + " |")
            w("")
            w(f"The difference, {(t['median_ms'] - e['median_ms']) / OR_UPLOADS:.2f} ms per VM, is nginx "
              "compiling lua-tiktok (`tiktok.thread` requires the whole library) on the event loop.")
            w("")
        traced = [(k, lbl) for k, lbl in cols if orr.get(k) and "loop_delay_p99" in orr[k]]
        if traced:
            w("Where the time went, from `perf sched record` during those runs: the nginx worker's event-loop "
              "thread (the one that answers /ping)")
            w("")
            w("| run | event loop woken but waiting for a CPU: p99 | max | context switches | vCPU steal meanwhile |")
            w("|---|---|---|---|---|")
            for k, lbl in traced:
                r = orr[k]
                w(f"| {lbl} | {r['loop_delay_p99']:.2f} ms | {r['loop_delay_max']:.2f} ms | {r['loop_switches']} | "
                  f"{r['steal_ms']:.0f} ms |")
            w("")
            w("\"waiting for a CPU\": the time from the event-loop thread being woken (a /ping arrived) to it "
              "running, while the upload threads and the sandbox (which decrypts all four uploads) had both "
              "vCPUs. \"steal\": time the hypervisor gave this VM's vCPUs to other guests.")
            w("")
        if fc:
            summary.append((f"4. event loop held per new thread VM (`tiktok.thread`; empty module)",
                            f"{fc['tiktok']['median_ms'] / OR_UPLOADS:.2f} ms; {fc['empty']['median_ms'] / OR_UPLOADS:.2f} ms",
                            "(none)", None))
        for key, label in (("example_cold", "example app, first uploads"), ("example_warm", "example app, next uploads"),
                           ("handler_cold", "library in a handler, first uploads"),
                           ("handler_warm", "library in a handler, next uploads"),
                           ("handler_nice", "library in a handler, threads at nice 10")):
            r = orr.get(key)
            if r and "skipped" not in r:
                summary.append((f"4. /ping p99 during uploads, {label}", f"{r['p99']:.2f} ms", "< 10 ms",
                                r["p99"] < 10 and r["failures"] == 0))
        r = orr.get("direct")
        if r and "skipped" not in r:
            summary.append(("4. /ping p99, blocking baseline (for contrast)", f"{r['p99']:.0f} ms", "(none)", None))

    pl = R.get("purelua")
    if pl:
        w("## 5. Pure Lua: captions and validation")
        w("")
        interference(w, R, "5")
        w(f"`tiktok.template.render` of a {pl[0]['caption_bytes']}-byte caption with {pl[0]['tags']} "
          "variables (dotted paths and list items) and `tiktok.settings.validate` of a direct video post (every switch set) against "
          "a creator_info; median of 3 runs of ~0.5 s each.")
        w("")
        w("| interpreter | captions rendered/s | requests validated/s |")
        w("|---|---|---|")
        for r in pl:
            w(f"| {r['interpreter']} | {r['render_per_s']:,.0f} | {r['validate_per_s']:,.0f} |")
        w("")

    if up and any(r["label"] != "1 GiB" for r in up):
        w("## 6. Scale: 100 MB, 1 GiB and 4 GiB")
        w("")
        interference(w, R, "1")
        w("The same upload as in 1 (sparse padded MP4 files, `media.mp4`), for each size. Time should grow "
          "linearly (constant s/GB) and peak RSS stay flat.")
        w("")
        w("| transport | size | chunks | library s | library s/GB | library peak RSS | curl s | curl s/GB | curl peak RSS | library / curl |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        rss_by = {}
        for scheme in ("http", "https"):
            for label, size in SIZES:
                lib, cu = sel(label, scheme, "library"), sel(label, scheme, "curl")
                if not lib:
                    continue
                ls, cs = med(lib, "seconds"), med(cu, "seconds") if cu else float("nan")
                rss_by.setdefault(scheme, []).append(med(lib, "rss_kib"))
                w(f"| {scheme.upper()} | {label} | {lib[0]['chunks']} | {ls:.3f} | {ls / (size / 1e9):.3f} | "
                  f"{med(lib, 'rss_kib') / 1024:.1f} MiB | {cs:.3f} | {cs / (size / 1e9):.3f} | "
                  f"{med(cu, 'rss_kib') / 1024:.1f} MiB | {med(lib, 'mbps') / med(cu, 'mbps'):.3f} |")
        w("")
        for scheme, rs in rss_by.items():
            growth = (max(rs) - min(rs)) / 1024
            summary.append((f"6. library peak RSS 100 MB → 4 GiB, {scheme.upper()}",
                            f"{min(rs) / 1024:.1f}–{max(rs) / 1024:.1f} MiB (spread {growth:.2f} MiB)",
                            "flat, ≤ 16 MiB", growth < 1.0 and max(rs) / 1024 <= 16))
            big = sel("4 GiB", scheme, "library")
            small = sel("1 GiB", scheme, "library")
            if big and small:
                lin = (med(big, "seconds") / 4) / med(small, "seconds")
                summary.append((f"6. library time 4 GiB / (4 × 1 GiB), {scheme.upper()}", f"{lin:.2f}",
                                "≈ 1 (linear)", 0.85 <= lin <= 1.15))

    head = ["## Summary", "", "| measure | result | target | |", "|---|---|---|---|"]
    for name, val, target, ok in summary:
        head.append(f"| {name} | {val} | {target} | {'' if ok is None else verdict(ok)} |")
    head.append("")
    # the summary goes right after the machine table
    i = next(k for k, line in enumerate(L) if line.startswith("## "))
    L[i:i] = head
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main

def raw_lines(R):
    out = []
    for key, v in R.items():
        if key == "files":
            continue
        rows = v.get("rows") if isinstance(v, dict) and "rows" in v else v
        if isinstance(rows, list):
            for r in rows:
                out.append(json.dumps({"item": key, **{k: x for k, x in r.items() if k not in ("item", "publish_id")}},
                                      default=str, separators=(",", ":")))
            if isinstance(v, dict):
                rest = {k: x for k, x in v.items() if k != "rows"}
                out.append(json.dumps({"item": key, **rest}, default=str, separators=(",", ":")))
        elif isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
            for k, x in v.items():
                row = {"item": key, "case": k, **x} if isinstance(x, dict) else {"item": key, k: x}
                out.append(json.dumps(row, default=str, separators=(",", ":")))
        else:
            out.append(json.dumps({"item": key, **v} if isinstance(v, dict) else {"item": key, "value": v},
                                  default=str, separators=(",", ":")))
    return "\n".join(out) + "\n"


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
    if SB and os.path.exists(os.path.join(SB, "env")):
        run([os.path.join(ROOT, "sandbox/run"), "stop", "--dir", SB], check=False, timeout=120)


def main():
    global ENV, PERF, INTERFERENCE
    if not WORK:
        sys.exit("usage: bench.py WORKDIR")
    for tool in ("/usr/bin/time", "curl", "nginx", "lua5.4", "luajit", "ffmpeg"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install {'time' if tool == '/usr/bin/time' else tool})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start, steal0 = time.time(), steal_ms()
    try:
        PERF = perf_works()
        INTERFERENCE = Interference()
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
        M = machine()
        R = {}
        items = [("1", item_uploads), ("2", item_flow), ("3", item_status), ("4", item_openresty),
                 ("5", item_purelua)]
        for key, fn in items:
            if ONLY and key not in ONLY and not (key == "1" and "6" in ONLY):
                continue
            note(f"item {key}")
            INTERFERENCE.item = key
            fn(R)
            INTERFERENCE.item = None
        R["interference"] = {k: INTERFERENCE.describe(k) for k, _ in items if INTERFERENCE.describe(k)}
        M["steal_s"] = (steal_ms() - steal0) / 1000
        M["run_s"] = time.time() - t_start
        M["loadavg_end"] = open("/proc/loadavg").read().split()[0]
        M["busy_end"] = busy_processes()
        text = report(R, M)
        text += (f"\n_The whole run took {time.time() - t_start:.0f} s. Raw figures of every run below "
                 "(one JSON object per line)._\n\n<details><summary>raw results</summary>\n\n```\n"
                 + raw_lines(R) + "```\n</details>\n")
        print(text)
        if not ONLY:
            with open(OUT, "w") as f:
                f.write(text)
            note(f"wrote {OUT}")
    finally:
        cleanup()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        sys.exit(130)
