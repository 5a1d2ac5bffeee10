import Foundation
import Testing
@testable import Vision
import TestSupport

/// A pseudo-random but fixed test pattern.
func pattern(_ w: Int, _ h: Int, channels: Int, seed: Int = 1) -> [UInt8] {
    var s = UInt32(truncatingIfNeeded: seed &* 2654435761 &+ 12345)
    return (0..<(w * h * channels)).map { _ in s = s &* 1664525 &+ 1013904223; return UInt8(s >> 24) }
}

func expectError(_ body: () throws -> Void, _ check: (VisionError) -> Bool, _ comment: Comment) {
    do { try body(); Issue.record("expected an error: \(comment)") } catch let error as VisionError {
        #expect(check(error), "\(comment): got \(error)")
    } catch {
        Issue.record("\(comment): untyped error \(error)")
    }
}

func rgbFromGray(_ g: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(g.count * 3)
    for v in g { out.append(v); out.append(v); out.append(v) }
    return out
}

/// Keeps channels `0..<keep` of every `stride`-sample pixel.
func channels(_ p: [UInt8], stride: Int, keep: [Int]) -> [UInt8] {
    var out: [UInt8] = []
    for i in 0..<(p.count / stride) { for c in keep { out.append(p[i * stride + c]) } }
    return out
}

@Suite("Image decoding")
struct DecoderTests {
    @Test func emptyData() {
        expectError({ _ = try ImageDecoder.decode(data: Data(), name: "empty.jpg") }, {
            if case .empty(let p) = $0 { return p == "empty.jpg" }; return false
        }, "zero bytes")
        let dir = temporaryDirectory("vision")
        FileManager.default.createFile(atPath: dir + "/zero.png", contents: Data())
        expectError({ _ = try ImageDecoder.decode(path: dir + "/zero.png") }, {
            if case .empty = $0 { return $0.description.contains("zero.png") }; return false
        }, "zero-byte file")
    }

    @Test func missingFile() {
        expectError({ _ = try ImageDecoder.decode(path: "/nonexistent/x.jpg") }, {
            if case .unreadable(_, let reason) = $0 { return reason.contains("No such file") }; return false
        }, "missing file")
        let dir = temporaryDirectory("vision")
        expectError({ _ = try ImageDecoder.decode(path: dir) }, {
            if case .unreadable(let p, _) = $0 { return p == dir }; return false
        }, "a directory")
    }

    @Test func garbage() {
        let g = Data(pattern(100, 1, channels: 1, seed: 9))
        expectError({ _ = try ImageDecoder.decode(data: g, name: "noise.jpg") }, {
            if case .unrecognizedData(let p) = $0 { return p == "noise.jpg" }; return false
        }, "random bytes")
        // A JPEG signature followed by garbage.
        expectError({ _ = try ImageDecoder.decode(data: Data([0xFF, 0xD8, 0xFF]) + g, name: "bad.jpg") }, {
            if case .corrupt(_, "JPEG", _) = $0 { return true }; return false
        }, "JPEG signature then garbage")
        // A PNG signature followed by garbage.
        expectError({ _ = try ImageDecoder.decode(data: Data(PNGBuilder.signature) + g, name: "bad.png") }, {
            if case .corrupt(_, "PNG", _) = $0 { return true }; return false
        }, "PNG signature then garbage")
    }

    @Test func unsupportedFormatsNameTheFile() {
        let samples: [(String, [UInt8])] = [
            ("GIF", Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0]),
            ("WebP", Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WEBPVP8 ".utf8)),
            ("BMP", Array("BM".utf8) + [UInt8](repeating: 0, count: 20)),
            ("TIFF", [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]),
        ]
        let dir = temporaryDirectory("vision")
        for (fmt, bytes) in samples {
            let path = dir + "/looks-like.jpg"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            expectError({ _ = try ImageDecoder.decode(path: path) }, {
                if case .unsupportedFormat(let p, let f) = $0 { return p == path && f == fmt && $0.description.contains("looks-like.jpg") }
                return false
            }, "\(fmt) bytes")
        }
    }

    @Test func rgbPNGRoundTripAndWrongExtension() throws {
        let (w, h) = (37, 23)
        let img = RGBImage(width: w, height: h, pixels: pattern(w, h, channels: 3))
        let png = try PNGWriter.encode(img)
        #expect(try ImageDecoder.decode(data: png) == img)
        let hdr = try ImageDecoder.header(data: png)
        #expect(hdr == ImageHeader(format: .png, width: w, height: h))
        // PNG bytes behind a .jpg name: the format comes from the bytes.
        let dir = temporaryDirectory("vision")
        try png.write(to: URL(fileURLWithPath: dir + "/actually-png.jpg"))
        #expect(try ImageDecoder.decode(path: dir + "/actually-png.jpg") == img)
    }

    /// The per-thread libturbojpeg handle must not carry state from a failed image into the next one.
    @Test func jpegHandleSurvivesErrors() throws {
        let img = RGBImage(width: 40, height: 30, pixels: pattern(40, 30, channels: 3, seed: 5))
        let jpeg = try #require(JPEGWriter.encode(pixels: img.pixels, width: 40, height: 30))
        let good = try ImageDecoder.decode(data: jpeg)
        let dir = temporaryDirectory("vision")
        try jpeg.write(to: URL(fileURLWithPath: dir + "/good.jpg"))
        let broken: [Data] = [
            Data([0xFF, 0xD8, 0xFF]) + Data(pattern(100, 1, channels: 1, seed: 9)),  // bad header
            // An invalid marker right after SOI: libjpeg errors out mid-header; a reused libturbojpeg 2.x
            // handle would then fail every later image ("Unsupported marker type 0xa5").
            jpeg.prefix(2) + Data([0xFF, 0xA5]) + jpeg.dropFirst(2),
            jpeg.prefix(jpeg.count / 2),  // truncated scan
            jpeg.prefix(30),  // truncated header
        ]
        for (n, b) in broken.enumerated() {
            #expect(throws: VisionError.self, "broken \(n)") { _ = try ImageDecoder.decode(data: b, name: "broken.jpg") }
            #expect(try ImageDecoder.decode(data: jpeg) == good, "after broken \(n)")
            #expect(try ImageDecoder.decode(path: dir + "/good.jpg") == good, "from a file after broken \(n)")
        }
    }

    @Test func truncatedPNGAndJPEG() throws {
        let img = RGBImage(width: 64, height: 48, pixels: pattern(64, 48, channels: 3))
        let png = try PNGWriter.encode(img)
        for cut in [png.count / 2, 40, 20] {
            expectError({ _ = try ImageDecoder.decode(data: png.prefix(cut), name: "cut.png") }, {
                if case .corrupt(_, "PNG", _) = $0 { return true }; return false
            }, "PNG cut at \(cut)")
        }
        let jpeg = try #require(JPEGWriter.encode(pixels: img.pixels, width: 64, height: 48))
        #expect(try ImageDecoder.decode(data: jpeg).width == 64)
        for cut in [jpeg.count / 2, jpeg.count - 10, 30] {
            expectError({ _ = try ImageDecoder.decode(data: jpeg.prefix(cut), name: "cut.jpg") }, {
                if case .corrupt(_, "JPEG", _) = $0 { return true }; return false
            }, "JPEG cut at \(cut)")
        }
    }

    @Test func grayAndAlphaPNGs() throws {
        let (w, h) = (19, 11)
        let g = pattern(w, h, channels: 1, seed: 2)
        let gray = try ImageDecoder.decode(data: PNGWriter.encode(pixels: g, width: w, height: h, layout: .gray))
        #expect(gray.pixels == rgbFromGray(g))
        // Gray + alpha: alpha dropped, gray replicated (Pillow LA -> RGB).
        let ga = pattern(w, h, channels: 2, seed: 3)
        let dga = try ImageDecoder.decode(data: PNGWriter.encode(pixels: ga, width: w, height: h, layout: .grayAlpha))
        #expect(dga.pixels == channels(ga, stride: 2, keep: [0, 0, 0]))
        // RGBA: alpha dropped, colour untouched (not composited).
        let rgba = pattern(w, h, channels: 4, seed: 4)
        let drgba = try ImageDecoder.decode(data: PNGWriter.encode(pixels: rgba, width: w, height: h, layout: .rgba))
        #expect(drgba.pixels == channels(rgba, stride: 4, keep: [0, 1, 2]))
    }

    @Test func palettePNGIgnoresTransparency() throws {
        let (w, h) = (13, 7)
        var palette: [UInt8] = []
        for i in 0..<16 { palette += [UInt8(i * 16), UInt8(255 - i * 16), UInt8((i * 77) & 0xFF)] }
        let idx: [Int] = pattern(w, h, channels: 1, seed: 5).map { Int($0 % 16) }
        var samples: [[[Int]]] = []
        for y in 0..<h { samples.append((0..<w).map { x in [idx[y * w + x]] }) }
        var expected: [UInt8] = []
        for i in idx { expected += palette[(i * 3)..<(i * 3 + 3)] }
        for depth in [8, 4] {
            let png = PNGBuilder.build(width: w, height: h, bitDepth: depth, colorType: 3, samples: samples,
                                       palette: palette, trns: [0, 128, 255])
            let d = try ImageDecoder.decode(data: png)
            #expect(d.pixels == expected, "palette depth \(depth)")
        }
    }

    @Test func transparencyChunksAreIgnored() throws {
        let (w, h) = (6, 4)
        let g = pattern(w, h, channels: 1, seed: 11)
        var gs: [[[Int]]] = []
        for y in 0..<h { gs.append((0..<w).map { x in [Int(g[y * w + x])] }) }
        let dg = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 8, colorType: 0, samples: gs, trns: [0, g[0]]))
        #expect(dg.pixels == rgbFromGray(g))
        let c = pattern(w, h, channels: 3, seed: 12)
        var cs: [[[Int]]] = []
        for y in 0..<h { cs.append((0..<w).map { x in (0..<3).map { Int(c[(y * w + x) * 3 + $0]) } }) }
        let dc = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 8, colorType: 2, samples: cs, trns: [0, c[0], 0, c[1], 0, c[2]]))
        #expect(dc.pixels == c)
    }

    @Test func lowBitGrayPNG() throws {
        let (w, h) = (10, 3)
        for depth in [1, 2, 4] {
            let maxv = (1 << depth) - 1
            let v = (0..<(w * h)).map { ($0 * 7) % (maxv + 1) }
            let samples = (0..<h).map { y in (0..<w).map { x in [v[y * w + x]] } }
            let d = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: depth, colorType: 0, samples: samples))
            #expect(d.pixels == rgbFromGray(v.map { UInt8($0 * 255 / maxv) }), "gray depth \(depth)")
        }
    }

    @Test func sixteenBitPNGsAreScaled() throws {
        let (w, h) = (9, 5)
        func scale(_ v: Int) -> UInt8 { UInt8((v * 255 + 32895) >> 16) }
        let vals = (0..<(w * h * 3)).map { ($0 * 2654435761) & 0xFFFF }
        let rgb = (0..<h).map { y in (0..<w).map { x in Array(vals[((y * w + x) * 3)..<((y * w + x) * 3 + 3)]) } }
        let d = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 16, colorType: 2, samples: rgb))
        #expect(d.pixels == vals.map(scale))
        // 16-bit gray with a gAMA chunk: scaled, not clipped (Pillow would give 255 for most), no gamma.
        let gvals = [0, 1, 127, 128, 255, 256, 32767, 32768, 65279, 65280, 65535] + (0..<34).map { $0 * 1927 }
        let gs = (0..<h).map { y in (0..<w).map { x in [gvals[y * w + x]] } }
        let gama = PNGBuilder.chunk("gAMA", PNGBuilder.be32(100000))
        let dg = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 16, colorType: 0, samples: gs, extra: [gama]))
        #expect(dg.pixels == rgbFromGray(gvals.map(scale)))
        #expect(scale(65535) == 255 && scale(0) == 0 && scale(32768) == 128)
        // 16-bit RGBA: alpha dropped after scaling.
        let rgbaS = (0..<h).map { y in (0..<w).map { x in Array(vals[((y * w + x) * 3)..<((y * w + x) * 3 + 3)]) + [1234] } }
        let da = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 16, colorType: 6, samples: rgbaS))
        #expect(da.pixels == vals.map(scale))
    }

    @Test func interlacedPNG() throws {
        let (w, h) = (21, 14)
        let px = pattern(w, h, channels: 3, seed: 6)
        let samples = (0..<h).map { y in (0..<w).map { x in (0..<3).map { Int(px[(y * w + x) * 3 + $0]) } } }
        let plain = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 8, colorType: 2, samples: samples))
        let adam7 = try ImageDecoder.decode(data: PNGBuilder.build(width: w, height: h, bitDepth: 8, colorType: 2, samples: samples, interlace: true))
        #expect(plain.pixels == px)
        #expect(adam7 == plain)
    }

    @Test func decompressionBombHeaders() throws {
        // PNG: a valid IHDR announcing 20000 x 10000 = 200M pixels, no image data at all.
        let bomb = Data(PNGBuilder.signature + PNGBuilder.ihdr(width: 20000, height: 10000, bitDepth: 8, colorType: 2, interlace: 0)
                        + PNGBuilder.chunk("IEND", []))
        expectError({ _ = try ImageDecoder.decode(data: bomb, name: "bomb.png") }, {
            if case .decompressionBomb(_, 20000, 10000) = $0 { return true }; return false
        }, "PNG bomb")
        // Exactly at the limit is still accepted by the header check.
        let atLimit = Data(PNGBuilder.signature + PNGBuilder.ihdr(width: 178_956_970, height: 1, bitDepth: 8, colorType: 0, interlace: 0))
        let hdr = try ImageDecoder.header(data: atLimit)
        #expect(hdr.width * hdr.height == ImageDecoder.maxPixels)
        // JPEG: patch the SOF dimensions of a real JPEG to 60000 x 60000.
        var jpeg = [UInt8](try #require(JPEGWriter.encode(pixels: pattern(16, 16, channels: 3), width: 16, height: 16)))
        var i = 2
        while i + 8 < jpeg.count {
            if jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC2) {
                jpeg[i + 5] = 0xEA; jpeg[i + 6] = 0x60; jpeg[i + 7] = 0xEA; jpeg[i + 8] = 0x60
                break
            }
            i += 2 + (Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3]))
        }
        expectError({ _ = try ImageDecoder.decode(data: Data(jpeg), name: "bomb.jpg") }, {
            if case .decompressionBomb(_, 60000, 60000) = $0 { return true }; return false
        }, "JPEG bomb")
    }

    @Test func grayJPEGBecomesRGB() throws {
        let (w, h) = (33, 17)
        let g = pattern(w, h, channels: 1, seed: 8)
        let jpeg = try #require(JPEGWriter.encode(pixels: g, width: w, height: h, gray: true))
        let gray = try #require(JPEGWriter.decodeGray(jpeg, width: w, height: h))
        let d = try ImageDecoder.decode(data: jpeg)
        #expect(d.width == w && d.height == h)
        #expect(d.pixels == rgbFromGray(gray))
    }

    @Test func cmykJPEGMatchesPillow() throws {
        let data = try #require(Data(base64Encoded: cmykJPEGBase64))
        let d = try ImageDecoder.decode(data: data, name: "cmyk.jpg")
        #expect(d.width == 8 && d.height == 8)
        #expect(d.pixels == cmykExpectedRGB)
    }

    @Test func cmykFormula() {
        // Stored (Adobe-inverted) CMYK 255,255,255,255 is C=M=Y=K=0: white.
        var out = [UInt8](repeating: 0, count: 6)
        let inp: [UInt8] = [255, 255, 255, 255, 0, 128, 255, 200]
        ImageDecoder.cmykInvertedToRGB(inp, &out, count: 2)
        #expect(Array(out[0..<3]) == [255, 255, 255])
        // Second pixel: C=255, M=127, Y=0, K=55; nk=200; R=200-200=0, G=200-muldiv(127,200)=200-100=100, B=200.
        #expect(Array(out[3..<6]) == [0, 100, 200])
    }
}

@Suite("Decoder robustness")
struct DecoderFuzzTests {
    @Test("mutated and truncated JPEG/PNG bytes give an image or a typed error, never a crash")
    func mutations() throws {
        let img = RGBImage(width: 48, height: 40, pixels: pattern(48, 40, channels: 3, seed: 50))
        let seeds: [(String, Data)] = [
            ("PNG", try PNGWriter.encode(img)),
            ("JPEG", try #require(JPEGWriter.encode(pixels: img.pixels, width: 48, height: 40))),
            ("CMYK JPEG", try #require(Data(base64Encoded: cmykJPEGBase64))),
        ]
        var rng = AugmentRNG(seed: 2024)
        var decoded = 0, rejected = 0
        for (name, original) in seeds {
            for trial in 0..<150 {
                var bytes = [UInt8](original)
                let flips = 1 + rng.randint(0, 8)
                for _ in 0..<flips {
                    // Keep the signature so the decoders, not the sniffer, see the damage.
                    let at = 8 + rng.randint(0, bytes.count - 8)
                    bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                }
                if trial % 3 == 0 { bytes = Array(bytes.prefix(8 + rng.randint(0, bytes.count - 8))) }
                do {
                    let out = try ImageDecoder.decode(data: Data(bytes), name: "\(name)#\(trial)")
                    #expect(out.isWellFormed)
                    decoded += 1
                } catch {
                    #expect(error.description.contains("\(name)#\(trial)"))
                    rejected += 1
                }
            }
        }
        print("decoder fuzz: \(decoded) decoded, \(rejected) rejected with typed errors")
        #expect(decoded + rejected == 450)
    }
}
