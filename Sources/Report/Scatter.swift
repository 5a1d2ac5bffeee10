import Foundation
import Vision

/// One point of a scatter plot: its position, its class (colour) and whether it is marked
/// (drawn as a ring: a misclassified validation image, say).
public struct ScatterPoint: Sendable {
    public var x: Double, y: Double
    public var group: Int
    public var marked: Bool
    /// Drawn larger (validation rows) or smaller (training rows).
    public var large: Bool
    public init(x: Double, y: Double, group: Int, marked: Bool = false, large: Bool = true) {
        self.x = x; self.y = y; self.group = group; self.marked = marked; self.large = large
    }
}

/// Ten distinguishable colours (matplotlib's tab10), cycled for more groups.
public let categoricalColors: [(UInt8, UInt8, UInt8)] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]

/// A scatter plot of `points` coloured by group, with axis labels, a title and a legend naming
/// the groups (and the marked points, when there are any).
public func scatterPlot(title: String, points: [ScatterPoint], groups: [String], xLabel: String, yLabel: String,
                        markedLabel: String = "misclassified", width: Int = 640, height: Int = 520) -> RGBImage {
    var img = RGBImage(width: width, height: height)
    img.fill(x: 0, y: 0, width: width, height: height, color: (255, 255, 255))
    let left = 40, right = 16, top = 56, bottom = 36
    let pw = width - left - right, ph = height - top - bottom
    let ink: (UInt8, UInt8, UInt8) = (40, 40, 40)
    let xs = points.map(\.x).filter(\.isFinite), ys = points.map(\.y).filter(\.isFinite)
    func range(_ v: [Double]) -> (Double, Double) {
        var lo = v.min() ?? 0, hi = v.max() ?? 1
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.04
        return (lo - pad, hi + pad)
    }
    let (x0, x1) = range(xs), (y0, y1) = range(ys)
    func px(_ v: Double) -> Int { left + Int(((v - x0) / (x1 - x0) * Double(pw - 1)).rounded()) }
    func py(_ v: Double) -> Int { top + ph - 1 - Int(((v - y0) / (y1 - y0) * Double(ph - 1)).rounded()) }
    img.fill(x: left, y: top, width: 1, height: ph, color: ink)
    img.fill(x: left, y: top + ph, width: pw, height: 1, color: ink)
    if x0 < 0 && x1 > 0 { img.fill(x: px(0), y: top, width: 1, height: ph, color: (225, 225, 225)) }
    if y0 < 0 && y1 > 0 { img.fill(x: left + 1, y: py(0), width: pw - 1, height: 1, color: (225, 225, 225)) }
    img.drawText(title, x: left, y: 10, scale: 2, color: ink)
    img.drawText(xLabel, x: left + pw / 2 - RGBImage.textWidth(xLabel, scale: 1) / 2, y: height - 16, scale: 1, color: ink)
    img.drawText(yLabel, x: 4, y: top - 12, scale: 1, color: ink)
    func color(_ g: Int) -> (UInt8, UInt8, UInt8) { categoricalColors[((g % categoricalColors.count) + categoricalColors.count) % categoricalColors.count] }
    // Small points first, then large, then the rings of marked points on top.
    for pass in 0..<2 {
        for p in points where p.x.isFinite && p.y.isFinite && (p.large ? 1 : 0) == pass {
            let r = p.large ? 3 : 2
            let c = pass == 0 ? blend(color(p.group), 0.45) : color(p.group)
            img.fill(x: px(p.x) - r, y: py(p.y) - r, width: 2 * r + 1, height: 2 * r + 1, color: c)
        }
    }
    for p in points where p.marked && p.x.isFinite && p.y.isFinite {
        ring(&img, px(p.x), py(p.y), 7, (0, 0, 0))
    }
    // Legend: one swatch per group, and the ring.
    var lx = left, ly = 34
    for (g, name) in groups.enumerated() {
        let w = RGBImage.textWidth(name, scale: 1)
        if lx + 22 + w > width - right { lx = left; ly += 12 }
        img.fill(x: lx, y: ly, width: 9, height: 9, color: color(g))
        img.drawText(name, x: lx + 13, y: ly + 1, scale: 1, color: ink)
        lx += w + 28
    }
    if points.contains(where: \.marked) {
        let w = RGBImage.textWidth(markedLabel, scale: 1)
        if lx + 22 + w > width - right { lx = left; ly += 12 }
        ring(&img, lx + 4, ly + 4, 5, (0, 0, 0))
        img.drawText(markedLabel, x: lx + 13, y: ly + 1, scale: 1, color: ink)
    }
    return img
}

/// A colour mixed with white (`amount` of the colour).
private func blend(_ c: (UInt8, UInt8, UInt8), _ amount: Double) -> (UInt8, UInt8, UInt8) {
    func m(_ v: UInt8) -> UInt8 { UInt8((Double(v) * amount + 255 * (1 - amount)).rounded()) }
    return (m(c.0), m(c.1), m(c.2))
}

/// A one-pixel circle of radius `r` around (cx, cy).
private func ring(_ img: inout RGBImage, _ cx: Int, _ cy: Int, _ r: Int, _ c: (UInt8, UInt8, UInt8)) {
    let steps = 8 * r
    for s in 0..<steps {
        let a = Double(s) / Double(steps) * 2 * Double.pi
        img.fill(x: cx + Int((Double(r) * cos(a)).rounded()), y: cy + Int((Double(r) * sin(a)).rounded()),
                 width: 1, height: 1, color: c)
    }
}
