/// Drawing helpers for reports: text in the built-in 5x8 bitmap font, rectangles, lines, grids.
extension RGBImage {
    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` x `scale`.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8)) {
        BitmapFont.draw(text, into: &self, x: x, y: y, scale: scale, color: color)
    }

    /// Width in pixels of `text` drawn at `scale`.
    public static func textWidth(_ text: String, scale: Int = 2) -> Int {
        text.unicodeScalars.count * (BitmapFont.glyphWidth + 1) * scale
    }

    /// Fills the rectangle (clipped to the image).
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: (UInt8, UInt8, UInt8)) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for py in y0..<y1 {
            for px in x0..<x1 {
                let o = (py * width + px) * 3
                pixels[o] = color.0; pixels[o + 1] = color.1; pixels[o + 2] = color.2
            }
        }
    }

    /// Draws a straight line `thickness` pixels wide (clipped to the image).
    public mutating func drawLine(from a: (Double, Double), to b: (Double, Double), thickness: Int = 2,
                                  color: (UInt8, UInt8, UInt8)) {
        let steps = max(1, Int(max(abs(b.0 - a.0), abs(b.1 - a.1)).rounded(.up)))
        for s in 0...steps {
            let t = Double(s) / Double(steps)
            let x = Int((a.0 + (b.0 - a.0) * t).rounded()), y = Int((a.1 + (b.1 - a.1) * t).rounded())
            fill(x: x - thickness / 2, y: y - thickness / 2, width: thickness, height: thickness, color: color)
        }
    }
}

/// Lays out equally sized tiles in a grid on a dark background, with a caption under each in its colour.
public func captionedGrid(_ tiles: [(image: RGBImage, caption: String, color: (UInt8, UInt8, UInt8))], columns: Int = 0) -> RGBImage {
    let n = max(1, tiles.count)
    let cols = columns > 0 ? columns : Int(Double(n).squareRoot().rounded(.up))
    let rows = (n + cols - 1) / cols
    let tw = tiles.first?.image.width ?? 224, th = tiles.first?.image.height ?? 224
    let pad = 6, scale = 2, captionH = BitmapFont.glyphHeight * scale + 8
    let cellW = tw + pad, cellH = th + captionH + pad
    var grid = RGBImage(width: cols * cellW + pad, height: rows * cellH + pad)
    for i in 0..<grid.pixels.count { grid.pixels[i] = 32 }
    for (k, t) in tiles.enumerated() {
        let x0 = pad + (k % cols) * cellW, y0 = pad + (k / cols) * cellH
        for y in 0..<min(th, t.image.height) {
            let src = y * t.image.width * 3, dst = ((y0 + y) * grid.width + x0) * 3
            for i in 0..<(min(tw, t.image.width) * 3) { grid.pixels[dst + i] = t.image.pixels[src + i] }
        }
        grid.drawText(t.caption, x: x0 + 2, y: y0 + th + 4, scale: scale, color: t.color)
    }
    return grid
}
