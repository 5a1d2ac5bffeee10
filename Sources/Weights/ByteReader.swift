/// A bounds-checked little-endian cursor over raw bytes. Every read throws `WeightsError.truncated`
/// instead of reading past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var pos: Int
    let what: String

    init(_ bytes: UnsafeRawBufferPointer, at pos: Int = 0, what: String) {
        self.bytes = bytes
        self.pos = pos
        self.what = what
    }

    var remaining: Int { bytes.count - pos }
    var atEnd: Bool { pos >= bytes.count }

    @inline(__always) mutating func need(_ n: Int) throws {
        if n < 0 || pos < 0 || n > bytes.count - pos { throw WeightsError.truncated(what: what, offset: pos) }
    }

    mutating func u8() throws -> UInt8 {
        try need(1)
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func u16() throws -> UInt16 {
        try need(2)
        defer { pos += 2 }
        return UInt16(bytes[pos]) | UInt16(bytes[pos + 1]) << 8
    }

    mutating func u32() throws -> UInt32 {
        try need(4)
        defer { pos += 4 }
        return bytes.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian
    }

    mutating func u64() throws -> UInt64 {
        try need(8)
        defer { pos += 8 }
        return bytes.loadUnaligned(fromByteOffset: pos, as: UInt64.self).littleEndian
    }

    /// The next `n` bytes as a sub-buffer (no copy).
    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n)
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }
}

extension UnsafeRawBufferPointer {
    /// A checked sub-range; throws `truncated` when it leaves the buffer.
    func checkedSlice(_ offset: Int, _ count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, offset <= self.count, count <= self.count - offset else {
            throw WeightsError.truncated(what: what, offset: offset)
        }
        return UnsafeRawBufferPointer(rebasing: self[offset..<(offset + count)])
    }
}

/// Printable summary of the first bytes of a file, for error messages.
func describeBytes(_ b: UnsafeRawBufferPointer, limit: Int = 8) -> String {
    let n = Swift.min(limit, b.count)
    if n == 0 { return "(empty file)" }
    let digits = Array("0123456789abcdef")
    var s = ""
    for i in 0..<n { s.append(digits[Int(b[i] >> 4)]); s.append(digits[Int(b[i] & 15)]); if i + 1 < n { s.append(" ") } }
    return s
}
