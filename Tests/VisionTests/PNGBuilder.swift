import Foundation

/// Builds PNG files byte by byte (stored deflate blocks, filter 0), so tests control every header field:
/// bit depth, colour type, palette, tRNS, Adam7 interlacing, and impossible dimensions.
struct PNGBuilder {
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        return be32(UInt32(data.count)) + t + data + be32(crc(t + data))
    }

    /// zlib stream made of stored blocks.
    static func zlibStored(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            let final: UInt8 = (i + n == raw.count) ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        return out + be32((b << 16) | a)
    }

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func ihdr(width: UInt32, height: UInt32, bitDepth: UInt8, colorType: UInt8, interlace: UInt8) -> [UInt8] {
        chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, interlace])
    }

    /// `samples[y][x]` are per-pixel sample arrays (channels for the colour type; palette index for 3).
    static func build(width: Int, height: Int, bitDepth: Int, colorType: Int, samples: [[[Int]]],
                      palette: [UInt8]? = nil, trns: [UInt8]? = nil, interlace: Bool = false, extra: [[UInt8]] = []) -> Data {
        var out = signature + ihdr(width: UInt32(width), height: UInt32(height), bitDepth: UInt8(bitDepth), colorType: UInt8(colorType), interlace: interlace ? 1 : 0)
        for e in extra { out += e }
        if let p = palette { out += chunk("PLTE", p) }
        if let t = trns { out += chunk("tRNS", t) }
        func packRow(_ xs: [Int], _ y: Int) -> [UInt8] {
            var row: [UInt8] = [0]
            if bitDepth < 8 {
                var acc = 0, nbits = 0
                for x in xs {
                    acc = (acc << bitDepth) | samples[y][x][0]; nbits += bitDepth
                    if nbits == 8 { row.append(UInt8(acc)); acc = 0; nbits = 0 }
                }
                if nbits > 0 { row.append(UInt8(acc << (8 - nbits))) }
            } else {
                for x in xs { for s in samples[y][x] {
                    if bitDepth == 16 { row += [UInt8(s >> 8), UInt8(s & 0xFF)] } else { row.append(UInt8(s)) }
                } }
            }
            return row
        }
        var raw: [UInt8] = []
        if !interlace {
            for y in 0..<height { raw += packRow(Array(0..<width), y) }
        } else {
            let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            for (x0, y0, dx, dy) in passes {
                let xs = Array(stride(from: x0, to: width, by: dx))
                if xs.isEmpty { continue }
                for y in stride(from: y0, to: height, by: dy) { raw += packRow(xs, y) }
            }
        }
        out += chunk("IDAT", zlibStored(raw))
        out += chunk("IEND", [])
        return Data(out)
    }
}
