/// A minimal ZIP reader/writer for torch.save archives: STORED entries only, ZIP64 aware.
/// Reading never copies: entries are sub-buffers of the file's bytes.

struct ZipEntry {
    let name: String
    let method: Int
    let compressedSize: Int
    let size: Int
    let localHeaderOffset: Int
}

enum ZipReader {
    static let eocdSignature: UInt32 = 0x0605_4b50
    static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    static let zip64EOCDSignature: UInt32 = 0x0606_4b50
    static let centralSignature: UInt32 = 0x0201_4b50
    static let localSignature: UInt32 = 0x0403_4b50

    /// The central directory's entries, in directory order.
    static func entries(_ file: UnsafeRawBufferPointer) throws -> [ZipEntry] {
        guard file.count >= 22 else { throw WeightsError.corruptZip("file too short for an end-of-central-directory record (\(file.count) bytes)") }
        // Find the end-of-central-directory record, scanning back over a possible comment.
        var eocd = -1
        let lowest = max(0, file.count - 22 - 65_535)
        var i = file.count - 22
        while i >= lowest {
            if file.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian == eocdSignature { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw WeightsError.corruptZip("no end-of-central-directory record (file truncated?)") }
        var r = ByteReader(file, at: eocd + 4, what: "zip end record")
        let disk = try r.u16(), cdDisk = try r.u16()
        _ = try r.u16()
        var count = Int(try r.u16())
        var cdSize = Int(try r.u32())
        var cdOffset = Int(try r.u32())
        guard disk == 0 || disk == 0xFFFF, cdDisk == 0 || cdDisk == 0xFFFF else {
            throw WeightsError.corruptZip("multi-disk archives are not supported")
        }
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: the locator sits just before the end record.
            let loc = eocd - 20
            guard loc >= 0 else { throw WeightsError.corruptZip("ZIP64 locator missing") }
            var l = ByteReader(file, at: loc, what: "zip64 locator")
            guard try l.u32() == zip64LocatorSignature else { throw WeightsError.corruptZip("ZIP64 locator missing") }
            _ = try l.u32()
            let recOffset = try l.u64()
            guard recOffset < UInt64(file.count) else { throw WeightsError.truncated(what: "zip64 end record", offset: Int(loc)) }
            var z = ByteReader(file, at: Int(recOffset), what: "zip64 end record")
            guard try z.u32() == zip64EOCDSignature else { throw WeightsError.corruptZip("ZIP64 end record has a bad signature") }
            _ = try z.u64(); _ = try z.u16(); _ = try z.u16(); _ = try z.u32(); _ = try z.u32()
            _ = try z.u64()
            let total = try z.u64(), size = try z.u64(), off = try z.u64()
            guard total < UInt64(Int32.max), size <= UInt64(file.count), off <= UInt64(file.count) else {
                throw WeightsError.corruptZip("ZIP64 end record is out of range")
            }
            count = Int(total); cdSize = Int(size); cdOffset = Int(off)
        }
        guard cdOffset <= file.count, cdSize <= file.count - cdOffset else {
            throw WeightsError.truncated(what: "zip central directory", offset: cdOffset)
        }
        var c = ByteReader(try file.checkedSlice(cdOffset, cdSize, what: "zip central directory"), what: "zip central directory")
        var out: [ZipEntry] = []
        out.reserveCapacity(min(count, 1 << 16))
        for _ in 0..<count {
            guard try c.u32() == centralSignature else { throw WeightsError.corruptZip("bad central directory entry signature") }
            _ = try c.u16(); _ = try c.u16()
            let flags = try c.u16()
            let method = Int(try c.u16())
            _ = try c.u16(); _ = try c.u16(); _ = try c.u32()
            var csize = UInt64(try c.u32()), usize = UInt64(try c.u32())
            let nameLen = Int(try c.u16()), extraLen = Int(try c.u16()), commentLen = Int(try c.u16())
            _ = try c.u16(); _ = try c.u16(); _ = try c.u32()
            var offset = UInt64(try c.u32())
            let nameBytes = try c.take(nameLen)
            let extra = try c.take(extraLen)
            _ = try c.take(commentLen)
            if flags & 1 != 0 { throw WeightsError.corruptZip("encrypted entries are not supported") }
            // ZIP64 extended information: only the fields saturated in the fixed header are present.
            var e = ByteReader(extra, what: "zip extra field")
            while e.remaining >= 4 {
                let id = try e.u16(), len = Int(try e.u16())
                var f = ByteReader(try e.take(len), what: "zip64 extra field")
                if id == 0x0001 {
                    if usize == 0xFFFF_FFFF { usize = try f.u64() }
                    if csize == 0xFFFF_FFFF { csize = try f.u64() }
                    if offset == 0xFFFF_FFFF { offset = try f.u64() }
                }
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let limit = UInt64(file.count)
            guard usize <= limit, csize <= limit, offset <= limit else {
                throw WeightsError.truncated(what: "zip entry \(name)", offset: Int(min(offset, limit)))
            }
            out.append(ZipEntry(name: name, method: method, compressedSize: Int(csize), size: Int(usize),
                                localHeaderOffset: Int(offset)))
        }
        return out
    }

    /// The stored bytes of `entry`, checked against its local header.
    static func data(_ file: UnsafeRawBufferPointer, _ entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        guard entry.method == 0 else { throw WeightsError.compressedEntry(name: entry.name, method: entry.method) }
        guard entry.compressedSize == entry.size else {
            throw WeightsError.corruptZip("stored entry \(entry.name) has different compressed and real sizes")
        }
        var r = ByteReader(file, at: entry.localHeaderOffset, what: "zip local header of \(entry.name)")
        guard try r.u32() == localSignature else {
            throw WeightsError.corruptZip("bad local header signature for \(entry.name)")
        }
        r.pos += 22
        let nameLen = Int(try r.u16()), extraLen = Int(try r.u16())
        let start = entry.localHeaderOffset + 30 + nameLen + extraLen
        return try file.checkedSlice(start, entry.size, what: "zip entry \(entry.name)")
    }
}

// MARK: - CRC-32 (IEEE), slicing-by-8

enum CRC32 {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    static func checksum(_ data: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        let flat = tables.flatMap { $0 }
        flat.withUnsafeBufferPointer { t in
            var i = 0
            let n = data.count
            while n - i >= 8 {
                let lo = data.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ crc
                let hi = data.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(data[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        return ~crc
    }
}

// MARK: - Writer

/// Writes a STORED zip archive with each entry's data aligned to `alignment` bytes, the way
/// torch's PyTorchStreamWriter does (padding in an extra field with id "FB").
struct ZipWriter {
    private(set) var bytes: [UInt8] = []
    private var central: [UInt8] = []
    private var count = 0
    let alignment: Int
    /// Write ZIP64 records even for small archives (tests use this to exercise the ZIP64 reader).
    let forceZip64: Bool

    init(alignment: Int = 64, forceZip64: Bool = false) { self.alignment = alignment; self.forceZip64 = forceZip64 }

    private static func put16(_ v: Int, _ a: inout [UInt8]) {
        a.append(UInt8(truncatingIfNeeded: v)); a.append(UInt8(truncatingIfNeeded: v >> 8))
    }
    private static func put32(_ v: UInt32, _ a: inout [UInt8]) {
        for s in stride(from: 0, to: 32, by: 8) { a.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }
    private static func put64(_ v: UInt64, _ a: inout [UInt8]) {
        for s in stride(from: 0, to: 64, by: 8) { a.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
    }

    mutating func add(name: String, data: UnsafeRawBufferPointer) {
        let nameBytes = Array(name.utf8)
        let offset = bytes.count
        let crc = CRC32.checksum(data)
        let big = forceZip64 || data.count >= 0xFFFF_FFFF || offset >= 0xFFFF_FFFF
        // Local header extra: optional ZIP64 sizes, then "FB" padding to align the data.
        var extra: [UInt8] = []
        if big {
            Self.put16(0x0001, &extra); Self.put16(16, &extra)
            Self.put64(UInt64(data.count), &extra); Self.put64(UInt64(data.count), &extra)
        }
        let unpadded = offset + 30 + nameBytes.count + extra.count
        var pad = (alignment - unpadded % alignment) % alignment
        if pad > 0 && pad < 4 { pad += alignment }
        if pad > 0 {
            Self.put16(0x4246, &extra); Self.put16(pad - 4, &extra)
            extra += [UInt8](repeating: UInt8(ascii: "Z"), count: pad - 4)
        }
        var h: [UInt8] = []
        Self.put32(ZipReader.localSignature, &h)
        Self.put16(big ? 45 : 20, &h); Self.put16(0, &h); Self.put16(0, &h)   // version, flags, method
        Self.put16(0, &h); Self.put16(0x21, &h)                                // time, date (1980-01-01)
        Self.put32(crc, &h)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(data.count), &h)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(data.count), &h)
        Self.put16(nameBytes.count, &h); Self.put16(extra.count, &h)
        bytes += h; bytes += nameBytes; bytes += extra
        bytes.append(contentsOf: data)

        var cextra: [UInt8] = []
        if big {
            Self.put16(0x0001, &cextra); Self.put16(24, &cextra)
            Self.put64(UInt64(data.count), &cextra); Self.put64(UInt64(data.count), &cextra); Self.put64(UInt64(offset), &cextra)
        }
        Self.put32(ZipReader.centralSignature, &central)
        Self.put16(big ? 45 : 20, &central); Self.put16(big ? 45 : 20, &central)
        Self.put16(0, &central); Self.put16(0, &central); Self.put16(0, &central); Self.put16(0x21, &central)
        Self.put32(crc, &central)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(data.count), &central)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(data.count), &central)
        Self.put16(nameBytes.count, &central); Self.put16(cextra.count, &central); Self.put16(0, &central)
        Self.put16(0, &central); Self.put16(0, &central); Self.put32(0, &central)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(offset), &central)
        central += nameBytes; central += cextra
        count += 1
    }

    mutating func add(name: String, bytes data: [UInt8]) {
        data.withUnsafeBytes { add(name: name, data: $0) }
    }

    /// Appends the central directory (ZIP64 records when needed) and returns the archive.
    mutating func finish() -> [UInt8] {
        let cdOffset = bytes.count
        bytes += central
        let cdSize = central.count
        let big = forceZip64 || cdOffset >= 0xFFFF_FFFF || count >= 0xFFFF
        if big {
            let recOffset = bytes.count
            Self.put32(ZipReader.zip64EOCDSignature, &bytes); Self.put64(44, &bytes)
            Self.put16(45, &bytes); Self.put16(45, &bytes); Self.put32(0, &bytes); Self.put32(0, &bytes)
            Self.put64(UInt64(count), &bytes); Self.put64(UInt64(count), &bytes)
            Self.put64(UInt64(cdSize), &bytes); Self.put64(UInt64(cdOffset), &bytes)
            Self.put32(ZipReader.zip64LocatorSignature, &bytes); Self.put32(0, &bytes)
            Self.put64(UInt64(recOffset), &bytes); Self.put32(1, &bytes)
        }
        Self.put32(ZipReader.eocdSignature, &bytes)
        Self.put16(0, &bytes); Self.put16(0, &bytes)
        Self.put16(big ? 0xFFFF : count, &bytes); Self.put16(big ? 0xFFFF : count, &bytes)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(cdSize), &bytes)
        Self.put32(big ? 0xFFFF_FFFF : UInt32(cdOffset), &bytes)
        Self.put16(0, &bytes)
        return bytes
    }
}
