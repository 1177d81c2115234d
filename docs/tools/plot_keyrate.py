#!/usr/bin/env python3
"""Key rate versus distance, measured by `qkdctl sim link` against the analytic model and the
PLOB bound. Writes an SVG (no plotting library needed).

usage: plot_keyrate.py QKDCTL OUTPUT.svg
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svgplot import Chart  # noqa: E402


def sim(qkdctl, km, pulses, seed=1):
    out = subprocess.run([qkdctl, "sim", "link", "--distance", str(km), "--pulses", "%g" % pulses,
                          "--seed", str(seed), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    qkdctl, output = sys.argv[1], sys.argv[2]
    measured = []
    for km in range(0, 201, 10):
        pulses = 2e9 if km <= 60 else (1e10 if km <= 120 else 1e11)
        r = sim(qkdctl, km, pulses)
        measured.append((km, r["key_per_pulse_estimate"], r["qber_signal"]))
        print(f"{km:4d} km  measured {r['key_per_pulse_estimate']:.3e}  model {r['key_per_pulse_model']:.3e}  "
              f"QBER {r['qber_signal'] * 100:.2f}%", flush=True)
    model, plob = [], []
    for tenth in range(0, 2201, 10):
        km = tenth / 10
        r = sim(qkdctl, km, 1)  # one pulse: only the analytic values matter here
        model.append((km, r["key_per_pulse_model"]))
        if r.get("plob_per_pulse") is not None:
            plob.append((km, r["plob_per_pulse"]))

    chart = Chart("Decoy-state BB84 (μ=0.5, ν=0.1, vacuum), η_Bob=0.10, Y0=1e-6, e_d=1.5%, f=1.16", ymin=-8, ymax=0, xmax=220, xstep=20)
    svg, px, py, path = chart.svg, chart.px, chart.py, chart.path
    width, right, top = chart.width, chart.right, chart.top
    svg.append(f'<path d="{path(plob)}" fill="none" stroke="#888" stroke-dasharray="6,4" stroke-width="1.5"/>')
    svg.append(f'<path d="{path(model)}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for km, value, _ in measured:
        if value > 0:
            svg.append(f'<circle cx="{px(km):.1f}" cy="{py(value):.1f}" r="4" fill="#d62728"/>')
    lx, ly = width - right - 250, top + 20
    svg.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 30}" y2="{ly}" stroke="#888" stroke-dasharray="6,4" stroke-width="1.5"/>'
               f'<text x="{lx + 38}" y="{ly + 4}">PLOB bound (per channel use)</text>')
    svg.append(f'<line x1="{lx}" y1="{ly + 20}" x2="{lx + 30}" y2="{ly + 20}" stroke="#1f77b4" stroke-width="2"/>'
               f'<text x="{lx + 38}" y="{ly + 24}">analytic model (GLLP + decoy bounds)</text>')
    svg.append(f'<circle cx="{lx + 15}" cy="{ly + 40}" r="4" fill="#d62728"/>'
               f'<text x="{lx + 38}" y="{ly + 44}">emulated (qkdctl sim link, 5σ bounds)</text>')
    chart.write(output)


if __name__ == "__main__":
    main()
