"""A log-scale key-per-pulse versus distance chart as SVG lines, for the plot scripts here."""
import math


class Chart:
    width, height, left, right, top, bottom = 760, 520, 80, 30, 40, 60

    def __init__(self, title, ymin, ymax, xmax, xstep):
        self.ymin, self.ymax, self.xmax = ymin, ymax, xmax
        w, h, l, r, t, b = self.width, self.height, self.left, self.right, self.top, self.bottom
        self.svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
                    '<rect width="100%" height="100%" fill="white"/>']
        for e in range(ymin, ymax + 1):
            y = self.py(10 ** e)
            self.svg.append(f'<line x1="{l}" y1="{y:.1f}" x2="{w - r}" y2="{y:.1f}" stroke="#ddd"/>')
            self.svg.append(f'<text x="{l - 8}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
        for km in range(0, xmax + 1, xstep):
            x = self.px(km)
            self.svg.append(f'<line x1="{x:.1f}" y1="{t}" x2="{x:.1f}" y2="{h - b}" stroke="#eee"/>')
            self.svg.append(f'<text x="{x:.1f}" y="{h - b + 18}" text-anchor="middle">{km}</text>')
        self.svg.append(f'<rect x="{l}" y="{t}" width="{w - l - r}" height="{h - t - b}" fill="none" stroke="#333"/>')
        self.svg.append(f'<text x="{(l + w - r) / 2}" y="{h - 15}" text-anchor="middle">fibre length (km), 0.2 dB/km</text>')
        self.svg.append(f'<text transform="translate(20,{(t + h - b) / 2}) rotate(-90)" text-anchor="middle">secret key per pulse</text>')
        self.svg.append(f'<text x="{l}" y="24" font-size="14">{title}</text>')

    def px(self, km):
        return self.left + (self.width - self.left - self.right) * km / self.xmax

    def py(self, value):
        v = min(max(math.log10(value), self.ymin), self.ymax) if value > 0 else self.ymin
        return self.top + (self.height - self.top - self.bottom) * (self.ymax - v) / (self.ymax - self.ymin)

    def path(self, points):
        pts = [(self.px(k), self.py(v)) for k, v in points if v and v > 0]
        return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts) if pts else ""

    def write(self, output):
        with open(output, "w") as f:
            f.write("\n".join(self.svg + ["</svg>"]) + "\n")
