"""Draws docs/efficiency.svg: parallel efficiency against peers, the stealing simulator's
curves (docs/stealing.md, `cargo run --release -p peer-workloads --bin sim -- --strategy
all`, two-choices rows) beside what was measured on this machine with real processes
(W4: UTS across 2 processes of 1 worker against 1 process of 2 workers, docs/benchmarks.md).
Standard library only: `python3 benches/plot/efficiency.py`."""
import math
import pathlib

# (label, colour, dashed, [(peers, efficiency %)])
SIMULATED = [
    ("simulator, T1, 100 µs links", "#1f77b4", False, [(2, 100.0), (16, 100.0), (128, 99.4), (1024, 93.5)]),
    ("simulator, T1, 1 ms links", "#1f77b4", True, [(2, 100.0), (16, 99.0), (128, 88.1), (1024, 42.5)]),
    ("simulator, T3, 100 µs links", "#d62728", False, [(2, 100.0), (16, 99.9), (128, 86.4), (1024, 29.8)]),
    ("simulator, T3, 1 ms links", "#d62728", True, [(2, 100.0), (16, 97.1), (128, 47.2), (1024, 8.8)]),
]
# Measured with real `peer` processes on 127.0.0.1 (2 cores): W4's ratio, each run.
MEASURED = [
    ("measured, UTS T1L (W4)", "#1f77b4", [(2, 95.8), (2, 95.0), (2, 92.9), (2, 93.5), (2, 93.1), (2, 96.8), (2, 94.7), (2, 92.7), (2, 95.7), (2, 94.4), (2, 95.6), (2, 94.2), (2, 95.5), (2, 95.2), (2, 95.4), (2, 98.5), (2, 98.5), (2, 96.7), (2, 97.1), (2, 95.5), (2, 95.0)]),
    ("measured, UTS T3L (W4)", "#d62728", [(2, 90.0), (2, 90.3), (2, 88.6), (2, 90.8), (2, 89.8), (2, 93.0), (2, 92.3), (2, 95.5), (2, 94.7)]),
]

W, H, LEFT, RIGHT, TOP, BOTTOM = 760, 440, 70, 250, 30, 60


def x(peers):
    return LEFT + (math.log2(peers) / 10) * (W - LEFT - RIGHT)


def y(eff):
    return TOP + (1 - eff / 100) * (H - TOP - BOTTOM)


def main():
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for e in range(0, 101, 20):
        out.append(f'<line x1="{LEFT}" y1="{y(e):.1f}" x2="{W - RIGHT}" y2="{y(e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(e) + 4:.1f}" text-anchor="end">{e}%</text>')
    for k in range(0, 11):
        out.append(f'<text x="{x(2 ** k):.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{2 ** k}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">peers (log scale)</text>')
    out.append(f'<text x="18" y="{(TOP + H - BOTTOM) / 2}" transform="rotate(-90 18 {(TOP + H - BOTTOM) / 2})" '
               'text-anchor="middle">parallel efficiency</text>')
    legend = TOP + 10
    for label, colour, dashed, points in SIMULATED:
        path = " ".join(f"{x(p):.1f},{y(e):.1f}" for p, e in points)
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<line x1="{W - RIGHT + 12}" y1="{legend}" x2="{W - RIGHT + 40}" y2="{legend}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - RIGHT + 46}" y="{legend + 4}">{label}</text>')
        legend += 20
    for label, colour, points in MEASURED:
        for p, e in points:
            out.append(f'<circle cx="{x(p):.1f}" cy="{y(e):.1f}" r="4" fill="{colour}" fill-opacity="0.6"/>')
        out.append(f'<circle cx="{W - RIGHT + 26}" cy="{legend}" r="4" fill="{colour}" fill-opacity="0.6"/>')
        out.append(f'<text x="{W - RIGHT + 46}" y="{legend + 4}">{label}</text>')
        legend += 20
    out.append(f'<text x="{W - RIGHT + 12}" y="{legend + 14}" font-size="10">measured: 2 processes on</text>')
    out.append(f'<text x="{W - RIGHT + 12}" y="{legend + 27}" font-size="10">a 2-core VM; more would</text>')
    out.append(f'<text x="{W - RIGHT + 12}" y="{legend + 40}" font-size="10">share cores</text>')
    out.append("</svg>")
    target = pathlib.Path(__file__).resolve().parents[2] / "docs" / "efficiency.svg"
    target.write_text("\n".join(out) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
