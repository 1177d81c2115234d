#!/usr/bin/env python3
"""Composable finite-key length (Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307, 2014) per
pulse versus distance, for blocks of N = 1e8, 1e10 and 1e12 pulses, against the asymptotic
version of the same bounds and the PLOB repeaterless bound. Every point is `qkdctl sim bound`
(expected counts of the analytic model, intensities, probabilities and p_X optimised over a
grid; eps_sec = 1e-10, eps_cor = 1e-15). Writes an SVG (no plotting library needed).

usage: plot_finite_key.py QKDCTL OUTPUT.svg
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svgplot import Chart  # noqa: E402


def bound(qkdctl, km, pulses, kind="lim2014"):
    out = subprocess.run([qkdctl, "sim", "bound", "--distance", str(km), "--pulses", "%g" % pulses,
                          "--finite-key", kind, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    qkdctl, output = sys.argv[1], sys.argv[2]
    distances = [0, 1] + list(range(5, 251, 5))
    curves = []
    for label, pulses, kind, colour in [("N = 1e8", 1e8, "lim2014", "#d62728"), ("N = 1e10", 1e10, "lim2014", "#ff7f0e"),
                                        ("N = 1e12", 1e12, "lim2014", "#2ca02c"),
                                        ("asymptotic (same bounds, N → ∞)", 1e12, "asymptotic", "#1f77b4")]:
        points = []
        for km in distances:
            r = bound(qkdctl, km, pulses, kind)
            points.append((km, r["key_per_pulse"]))
        reach = max((km for km, v in points if v > 0), default=None)
        print(f"{label:34s} reach {reach} km; at 50 km {dict(points).get(50, 0):.3e} bits/pulse", flush=True)
        curves.append((label, colour, points))
    plob = [(km, bound(qkdctl, km, 1e8)["plob_per_pulse"]) for km in distances if km > 0]

    chart = Chart("Efficient decoy BB84, Lim et al. 2014, ε_sec=1e-10, ε_cor=1e-15; η_Bob=0.10, Y0=1e-6, e_d=1.5%, f=1.16", ymin=-9, ymax=0, xmax=250, xstep=25)
    svg, px, py, path = chart.svg, chart.px, chart.py, chart.path
    width, right, top = chart.width, chart.right, chart.top
    svg.append(f'<path d="{path(plob)}" fill="none" stroke="#888" stroke-dasharray="6,4" stroke-width="1.5"/>')
    for label, colour, points in curves:
        svg.append(f'<path d="{path(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
    lx, ly = width - right - 260, top + 20
    svg.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 30}" y2="{ly}" stroke="#888" stroke-dasharray="6,4" stroke-width="1.5"/>'
               f'<text x="{lx + 38}" y="{ly + 4}">PLOB bound (per channel use)</text>')
    for i, (label, colour, _) in enumerate(curves):
        y = ly + 20 * (i + 1)
        svg.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 30}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{lx + 38}" y="{y + 4}">{label}</text>')
    chart.write(output)


if __name__ == "__main__":
    main()
