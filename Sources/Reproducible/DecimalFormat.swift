#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// printf("%.*f") through the C library, so rounding is exactly Python's/printf's (the tutorial's
/// logs of head training and finetuning).
public func cFormat(_ x: Double, _ digits: Int) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    let n = buf.withUnsafeMutableBufferPointer { p in
        withVaList([Int32(digits), x]) { vsnprintf(p.baseAddress!, 64, "%.*f", $0) }
    }
    guard n > 0 else { return String(x) }
    return String(decoding: buf.prefix(Int(min(n, 63))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Fixed-point formatting ("%.{digits}f", round half to even as printf does); "nan", "inf", "-inf"
/// for the non-finite.
public func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    return cFormat(x, digits)
}
