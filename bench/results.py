"""The raw results of a bench run, one JSON object per line: written at the
end of BENCHMARKS.md (and to build/bench/results.jsonl) and read back, so
that the report can be made again from saved figures (`bench.py --report`)
and one item can be run again alone (`bench.py --hostile`).

The figures R are {item: value}; a value is a list of rows (one line each),
a dict with "rows" (the rows, then one line with the rest), a dict of dicts
(one line per case) or a flat dict (one line per key, or one line). The
first line, {"item": "machine", ...}, holds the machine table, the run's
settings and its length.
"""
import json
import re

# How the figures of each item are laid out (see raw_lines).
LIST_ITEMS = {"uploads", "purelua"}
ROWS_ITEMS = {"status": "client", "hostile": "interp"}     # item -> a field every row has


def _line(obj):
    return json.dumps(obj, default=str, separators=(",", ":"))


def _item_lines(key, v):
    if isinstance(v, dict) and "rows" in v or isinstance(v, list):
        rows = v["rows"] if isinstance(v, dict) else v
        out = [_line({"item": key, **{k: x for k, x in r.items() if k not in ("item", "publish_id")}})
               for r in rows]
        if isinstance(v, dict):
            out.append(_line({"item": key, **{k: x for k, x in v.items() if k != "rows"}}))
        return out
    if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
        return [_line({"item": key, "case": k, **x} if isinstance(x, dict) else {"item": key, k: x})
                for k, x in v.items()]
    return [_line({"item": key, **v} if isinstance(v, dict) else {"item": key, "value": v})]


def raw_lines(R, machine=None):
    """The figures as text, one JSON object per line; with machine (the
    machine table, settings and length of the run) first."""
    out = [_line({"item": "machine", **machine})] if machine else []
    for key, v in R.items():
        if key != "files":
            out += _item_lines(key, v)
    return "\n".join(out) + "\n"


def _add_line(R, row):
    key = row.pop("item")
    if key in LIST_ITEMS:
        R.setdefault(key, []).append(row)
    elif key in ROWS_ITEMS:
        v = R.setdefault(key, {"rows": []})
        if ROWS_ITEMS[key] in row:
            v["rows"].append(row)
        else:
            v.update(row)
    elif "case" in row:
        R.setdefault(key, {})[row.pop("case")] = row
    elif not row:
        R.setdefault(key, {})["item"] = key       # the row's own "item" field
    else:
        R.setdefault(key, {}).update(row)


def parse_lines(text):
    """(R, machine) from raw result lines; machine is None when the lines
    have no machine line (a BENCHMARKS.md written before it existed)."""
    R, machine = {}, None
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if row.get("item") == "machine":
            row.pop("item")
            machine = row
        else:
            _add_line(R, row)
    return R, machine


# The machine table of a report: label -> how its cell splits into fields.
_TABLE = [("CPU", r"(?P<cpu>.*)"), ("memory", r"(?P<memory>.*)"),
          ("OS", r"(?P<os>.*); files on (?P<disk>.*)"), ("Lua", r"(?P<lua>.*?); (?P<luajit>.*)"),
          ("libcurl", r"(?P<libcurl>.*); (?P<openssl>.*)"), ("nginx", r"(?P<nginx>.*)"),
          ("tools", r"(?P<valgrind>.*), Python (?P<python>.*), GNU time"),
          ("load at start", r"1-min load average (?P<loadavg>\S+); other processes using CPU: (?P<busy>.*)"),
          ("vCPU steal", r"(?P<steal_s>[\d.]+) s summed over the vCPUs during the (?P<run_s>[\d.]+) s run .*"),
          ("load at end", r"1-min load average (?P<loadavg_end>\S+); other processes using CPU: (?P<busy_end>.*)")]


def machine_from_report(text):
    """The machine fields read back from a report's heading and machine
    table (for a BENCHMARKS.md without a machine line)."""
    m = re.search(r"on (?P<date>.+? UTC) at commit `(?P<commit>[^`]*)`", text)
    M = m.groupdict()
    for label, pattern in _TABLE:
        m = re.search(r"^\| " + re.escape(label) + r" \| " + pattern + r" \|$", text, re.M)
        if m:
            M.update(m.groupdict())
    for k in ("busy", "busy_end"):
        if M.get(k) == "none":
            M[k] = ""
    for k in ("steal_s", "run_s"):
        if k in M:
            M[k] = float(M[k])
    took = re.search(r"^_The whole run took (\d+) s\.", text, re.M)
    return {"machine": M, "took_s": float(took.group(1)) if took else None}


def load(path):
    """(R, machine) from a BENCHMARKS.md (its raw results) or a
    results.jsonl file."""
    text = open(path, encoding="utf-8").read()
    R, machine = parse_lines(text)
    if machine is None:
        machine = machine_from_report(text)
    return R, machine
