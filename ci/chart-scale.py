#!/usr/bin/env python3
"""chart-scale.py TSV OUT.svg - chart the rows ci/bench-scale.sh appends (issue #20).

One row of panels per step: wall time, peak RSS and seconds per installed GiB against the
corpus's installed size (GiB), arbor and the stock tool side by side. In the last panel a
band shows +-25 % around each tool's figure on the smallest corpus: a line that stays in its
band scales linearly ("flat"). Prints a markdown table of the same figures to stdout.

When the TSV holds several rows for one corpus, tool and step (runs on several days), the
last one counts. Python 3 standard library only.
"""
import csv
import html
import math
import sys

ORDER = [
    "resolve v1",
    "compose cold v1",
    "compose v2 after v1",
    "compose unchanged",
    "commit v1 tree",
    "delta v1-v2",
    "delta empty-v2",
    "publish first",
    "publish unchanged",
    "mirror over HTTP",
]
TOOLS = ("arbor", "stock")
COLOR = {"arbor": "#1f6fb4", "stock": "#c8372d"}
DASH = {"arbor": "", "stock": "6,4"}
GIB = 1 << 30
MIB = 1 << 20
FLAT = 0.25  # +-25 %


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def load(path):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if not r.get("step") or r.get("date") == "date":
                continue
            rows[(r["corpus"], r["tool"], r["step"])] = r
    corpora = {}
    for (c, _, _), r in rows.items():
        b = num(r["installed_bytes"])
        if b:
            corpora[c] = b
    corpora = sorted(corpora, key=corpora.get)
    sizes = {c: num(rows[next(k for k in rows if k[0] == c)]["installed_bytes"]) for c in corpora}
    steps = [s for s in ORDER if any(k[2] == s for k in rows)]
    steps += sorted({k[2] for k in rows} - set(steps), key=lambda s: (":" in s, s))
    return rows, corpora, sizes, steps


def metric(r, name):
    if r is None:
        return None
    if name == "wall":
        return num(r["wall_s"])
    if name == "cpu":
        return num(r["cpu_s"])
    if name == "rss":
        v = num(r["peak_rss_bytes"])
        return v / MIB if v is not None else None
    if name == "out":
        v = num(r["output_bytes"])
        return v / MIB if v is not None else None
    if name == "spg":
        w, b = num(r["wall_s"]), num(r["installed_bytes"])
        return w / (b / GIB) if w is not None and b else None
    raise KeyError(name)


def nice_ticks(hi, n=4):
    """Ticks 0..>=hi at a 1/2/5 x 10^k step."""
    if not hi or hi <= 0:
        hi = 1.0
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    top = step * math.ceil(hi / step - 1e-9)
    ticks = []
    t = 0.0
    while t <= top + step / 2:
        ticks.append(t)
        t += step
    return ticks


def fmt(v):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def tick_label(v):
    return f"{v:g}"


class Svg:
    def __init__(self):
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=11, anchor="start", weight="normal", color="#222", rotate=None):
        tr = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{color}"{tr}>{html.escape(s)}</text>')

    def line(self, x1, y1, x2, y2, color="#999", width=1, dash=""):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                 f'stroke-width="{width}"{d}/>')


def panel(svg, x0, y0, w, h, title, xs_max, series, ylabel, band=False):
    """series: {tool: [(x, y), ...]} (y may be None). Draws axes, lines, markers, labels."""
    left, bottom, top, right = 46, 30, 20, 12
    px0, py0, pw, ph = x0 + left, y0 + top, w - left - right, h - top - bottom
    svg.text(x0 + w / 2, y0 + 13, title, size=11 if len(title) <= 40 else 9, anchor="middle", weight="bold")
    ys = [y for pts in series.values() for _, y in pts if y is not None]
    if band:
        for pts in series.values():
            first = next((y for _, y in pts if y is not None), None)
            if first is not None:
                ys.append(first * (1 + FLAT))
    xt = nice_ticks(xs_max * 1.05, 5)
    yt = nice_ticks(max(ys) * 1.08 if ys else 1.0, 4)
    xmax, ymax = xt[-1], yt[-1]

    def X(v):
        return px0 + pw * v / xmax

    def Y(v):
        return py0 + ph - ph * v / ymax

    svg.add(f'<rect x="{px0:.1f}" y="{py0:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="#fafafa" stroke="#ccc"/>')
    for t in yt:
        svg.line(px0, Y(t), px0 + pw, Y(t), color="#e4e4e4")
        svg.text(px0 - 4, Y(t) + 4, tick_label(t), size=9, anchor="end", color="#555")
    for t in xt:
        svg.line(X(t), py0 + ph, X(t), py0 + ph + 3, color="#999")
        svg.text(X(t), py0 + ph + 13, tick_label(t), size=9, anchor="middle", color="#555")
    svg.text(px0 + pw / 2, py0 + ph + 25, "installed GiB", size=9, anchor="middle", color="#555")
    svg.text(x0 + 10, py0 + ph / 2, ylabel, size=9, anchor="middle", color="#555", rotate=-90)
    if not ys:
        svg.text(px0 + pw / 2, py0 + ph / 2, "no data", size=10, anchor="middle", color="#999")
        return
    for i, tool in enumerate(TOOLS):
        pts = [(x, y) for x, y in series.get(tool, []) if y is not None]
        if not pts:
            continue
        c = COLOR[tool]
        if band:
            lo, hi = pts[0][1] * (1 - FLAT), pts[0][1] * (1 + FLAT)
            svg.add(f'<rect x="{px0:.1f}" y="{Y(hi):.1f}" width="{pw:.1f}" height="{Y(lo) - Y(hi):.1f}" '
                    f'fill="{c}" fill-opacity="0.08"/>')
        if len(pts) > 1:
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
            dash = f' stroke-dasharray="{DASH[tool]}"' if DASH[tool] else ""
            svg.add(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        for x, y in pts:
            if tool == "arbor":
                svg.add(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{c}"/>')
            else:
                svg.add(f'<rect x="{X(x) - 3.5:.1f}" y="{Y(y) - 3.5:.1f}" width="7" height="7" fill="{c}"/>')
            # value labels: arbor's above-left, stock's below-right, to keep them apart
            dx, dy, anchor = (-5, -6, "end") if i == 0 else (5, 13, "start")
            svg.text(X(x) + dx, Y(y) + dy, fmt(y), size=9, anchor=anchor, color=c)
        if band and len(pts) > 1:
            r = pts[-1][1] / pts[0][1] if pts[0][1] else float("inf")
            ok = abs(r - 1) <= FLAT
            svg.text(px0 + pw - 4, py0 + 12 + 11 * i, f"{tool} ×{r:.2f} {'flat' if ok else 'NOT flat'}",
                     size=9, anchor="end", color=c, weight="bold" if not ok else "normal")


def chart(rows, corpora, sizes, steps, out):
    pw, ph, cols, head = 290, 170, 3, 70
    W, H = 40 + pw * cols, head + ph * len(steps) + 20
    svg = Svg()
    svg.add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">')
    svg.add(f'<rect width="{W}" height="{H}" fill="white"/>')
    svg.text(20, 22, "arbor vs the stock tools, by corpus size", size=15, weight="bold")
    desc = ", ".join(f"{c.rsplit('/', 1)[-1]} {sizes[c] / GIB:.2f} GiB" for c in corpora)
    dates = sorted(r["date"] for r in rows.values())
    svg.text(20, 40, f"corpora: {desc}; rows dated {dates[0][:16]} – {dates[-1][:16]} UTC" if dates else desc,
             size=10, color="#444")
    lx = 20
    for tool in TOOLS:
        c = COLOR[tool]
        dash = f' stroke-dasharray="{DASH[tool]}"' if DASH[tool] else ""
        svg.add(f'<line x1="{lx}" y1="56" x2="{lx + 26}" y2="56" stroke="{c}" stroke-width="2"{dash}/>')
        svg.text(lx + 32, 60, tool if tool == "arbor" else "stock (dnf/rpm/ostree/aws)", size=10, color=c)
        lx += 210
    svg.text(lx, 60, f"band: ±{FLAT * 100:.0f} % of the smallest corpus's s/GiB (inside = flat)", size=10,
             color="#444")
    xs_max = max(sizes[c] / GIB for c in corpora) if corpora else 1
    for i, step in enumerate(steps):
        y0 = head + ph * i
        for j, (m, label, unit, band) in enumerate((("wall", "wall time", "seconds", False),
                                                    ("rss", "peak RSS", "MiB", False),
                                                    ("spg", "s / installed GiB", "s / GiB", True))):
            series = {t: [(sizes[c] / GIB, metric(rows.get((c, t, step)), m)) for c in corpora] for t in TOOLS}
            panel(svg, 20 + pw * j, y0, pw, ph, f"{step}: {label}", xs_max, series, unit, band=band)
    svg.add("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg.parts) + "\n")


def markdown(rows, corpora, sizes, steps):
    names = [c.rsplit("/", 1)[-1] for c in corpora]
    print("Corpora: " + "; ".join(f"`{c}` {sizes[c] / GIB:.2f} GiB installed" for c in corpora)
          + ". Figures per corpus in that order, separated by ' / '.")
    dates = {}
    for (c, _, _), r in rows.items():
        dates.setdefault(c, []).append((r["date"], num(r["load1"])))
    for c, n in zip(corpora, names):
        ds = sorted(dates[c])
        loads = [l for _, l in ds if l is not None]
        print(f"- {n}: rows {ds[0][0]} – {ds[-1][0]}, 1-min load {min(loads):.2f}–{max(loads):.2f}" if loads
              else f"- {n}: rows {ds[0][0]} – {ds[-1][0]}")
    print()
    print("| step | tool | runs | wall s | CPU s | peak RSS MiB | output MiB | s / installed GiB | "
          "scaling (s/GiB, last ÷ first) | stock ÷ arbor wall |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def joined(vals):
        return " / ".join(fmt(v) for v in vals)

    for step in steps:
        for tool in TOOLS:
            rs = [rows.get((c, tool, step)) for c in corpora]
            if not any(rs):
                continue
            runs = " / ".join(sorted({r["runs"] for r in rs if r}))
            spg = [metric(r, "spg") for r in rs]
            have = [v for v in spg if v is not None]
            if len(have) >= 2 and have[0]:
                ratio = have[-1] / have[0]
                scaling = f"×{ratio:.2f} " + ("flat" if abs(ratio - 1) <= FLAT else "**not flat**")
            else:
                scaling = "–"
            speed = "–"
            if tool == "arbor":
                sp = []
                for c in corpora:
                    a, s = metric(rows.get((c, "arbor", step)), "wall"), metric(rows.get((c, "stock", step)), "wall")
                    sp.append(s / max(a, 0.01) if a is not None and s is not None else None)
                if any(v is not None for v in sp):
                    speed = " / ".join("–" if v is None else f"{v:.2f}×" for v in sp)
            print(f"| {step} | {tool} | {runs} | {joined(metric(r, 'wall') for r in rs)} | "
                  f"{joined(metric(r, 'cpu') for r in rs)} | {joined(metric(r, 'rss') for r in rs)} | "
                  f"{joined(metric(r, 'out') for r in rs)} | {joined(spg)} | {scaling} | {speed} |")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: chart-scale.py TSV OUT.svg")
    rows, corpora, sizes, steps = load(sys.argv[1])
    if not rows:
        sys.exit(f"chart-scale: no rows in {sys.argv[1]}")
    chart(rows, corpora, sizes, steps, sys.argv[2])
    markdown(rows, corpora, sizes, steps)


if __name__ == "__main__":
    main()
