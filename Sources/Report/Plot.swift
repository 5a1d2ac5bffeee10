import Foundation
import Vision

/// One line of a chart.
public struct Series: Sendable {
    public var name: String
    public var values: [Double]
    public var color: (UInt8, UInt8, UInt8)
    public init(name: String, values: [Double], color: (UInt8, UInt8, UInt8)) {
        self.name = name; self.values = values; self.color = color
    }
}

/// Draws a line chart (x = index, e.g. epoch) with axes, tick labels, a title and a legend.
public func lineChart(title: String, series: [Series], yRange: (Double, Double)? = nil,
                      width: Int = 560, height: Int = 360) -> RGBImage {
    var img = RGBImage(width: width, height: height)
    img.fill(x: 0, y: 0, width: width, height: height, color: (255, 255, 255))
    let left = 64, right = 16, top = 40, bottom = 44
    let pw = width - left - right, ph = height - top - bottom
    let all = series.flatMap(\.values).filter(\.isFinite)
    var (lo, hi) = yRange ?? ((all.min() ?? 0), (all.max() ?? 1))
    if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
    let n = max(2, series.map(\.values.count).max() ?? 2)
    func px(_ i: Int) -> Double { Double(left) + Double(i) / Double(n - 1) * Double(pw) }
    func py(_ v: Double) -> Double { Double(top + ph) - (v - lo) / (hi - lo) * Double(ph) }
    let grid: (UInt8, UInt8, UInt8) = (225, 225, 225), ink: (UInt8, UInt8, UInt8) = (40, 40, 40)
    for t in 0...4 {
        let v = lo + (hi - lo) * Double(t) / 4
        let y = Int(py(v).rounded())
        img.fill(x: left, y: y, width: pw, height: 1, color: grid)
        let label = String(format: "%.2f", v)
        img.drawText(label, x: left - RGBImage.textWidth(label, scale: 1) - 6, y: y - 4, scale: 1, color: ink)
    }
    let xTicks = min(n - 1, 6)
    for t in 0...xTicks {
        let i = Int((Double(t) / Double(xTicks) * Double(n - 1)).rounded())
        let x = Int(px(i).rounded())
        img.fill(x: x, y: top + ph, width: 1, height: 5, color: ink)
        img.drawText("\(i)", x: x - RGBImage.textWidth("\(i)", scale: 1) / 2, y: top + ph + 8, scale: 1, color: ink)
    }
    img.drawText("epoch", x: left + pw / 2 - 15, y: height - 16, scale: 1, color: ink)
    img.fill(x: left, y: top, width: 1, height: ph, color: ink)
    img.fill(x: left, y: top + ph, width: pw, height: 1, color: ink)
    img.drawText(title, x: left, y: 12, scale: 2, color: ink)
    for s in series {
        var prev: (Double, Double)? = nil
        for (i, v) in s.values.enumerated() where v.isFinite {
            let p = (px(i), py(min(max(v, lo), hi)))
            if let q = prev { img.drawLine(from: q, to: p, thickness: 2, color: s.color) }
            prev = p
        }
    }
    var lx = width - right - 8
    for s in series.reversed() {
        let w = RGBImage.textWidth(s.name, scale: 1)
        lx -= w + 22
        img.fill(x: lx, y: top - 14, width: 14, height: 3, color: s.color)
        img.drawText(s.name, x: lx + 18, y: top - 17, scale: 1, color: ink)
    }
    return img
}
