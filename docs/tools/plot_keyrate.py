#!/usr/bin/env python3
"""Key rate versus distance, measured by `qkdctl sim link` against the analytic model and the
PLOB bound. Writes an SVG (no plotting library needed).

usage: plot_keyrate.py QKDCTL OUTPUT.svg
"""
import json
import math
import subprocess
import sys


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

    width, height, left, right, top, bottom = 760, 520, 80, 30, 40, 60
    ymin, ymax, xmax = -8, 0, 220

    def px(km):
        return left + (width - left - right) * km / xmax

    def py(value):
        v = min(max(math.log10(value), ymin), ymax) if value > 0 else ymin
        return top + (height - top - bottom) * (ymax - v) / (ymax - ymin)

    def path(points):
        pts = [(px(k), py(v)) for k, v in points if v > 0]
        return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts) if pts else ""

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']
    for e in range(ymin, ymax + 1):
        y = py(10 ** e)
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
    for km in range(0, xmax + 1, 20):
        x = px(km)
        svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="#eee"/>')
        svg.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle">{km}</text>')
    svg.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" stroke="#333"/>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 15}" text-anchor="middle">fibre length (km), 0.2 dB/km</text>')
    svg.append(f'<text transform="translate(20,{(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">secret key per pulse</text>')
    svg.append(f'<text x="{left}" y="24" font-size="14">Decoy-state BB84 (μ=0.5, ν=0.1, vacuum), η_Bob=0.10, Y0=1e-6, e_d=1.5%, f=1.16</text>')
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
    svg.append("</svg>")
    with open(output, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
