/// A safe subset of Python's pickle machine: enough for torch state_dicts, nothing that runs code.
/// Globals are checked against an allow-list the moment they are named (GLOBAL / STACK_GLOBAL);
/// REDUCE only "calls" the few allowed constructors, interpreted here in Swift.

/// A storage referenced by a persistent id ('storage', torch.FloatStorage, key, location, numel).
final class StorageRef {
    let key: String
    let dtype: DType
    let numel: Int
    /// Offset (in elements) of this storage inside the stored one (legacy storage views); 0 otherwise.
    let elementOffset: Int
    init(key: String, dtype: DType, numel: Int, elementOffset: Int = 0) {
        self.key = key; self.dtype = dtype; self.numel = numel; self.elementOffset = elementOffset
    }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view into a storage.
struct TensorRef {
    let storage: StorageRef
    let offset: Int
    let shape: [Int]
    let stride: [Int]
}

final class PList { var items: [PValue] = []; var depth = 1 }
final class PDict { var keys: [PValue] = []; var values: [PValue] = []; var depth = 1 }

indirect enum PValue {
    case none
    case bool(Bool)
    case int(Int64)
    case bigInt([UInt8])          // little-endian two's complement, wider than 64 bits
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PValue])
    case list(PList)
    case dict(PDict)
    case global(module: String, name: String)
    case storage(StorageRef)
    case tensor(TensorRef)
    case mark

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(m, n): return "\(m).\(n)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .mark: return "mark"
        }
    }
}

/// The globals a state_dict may name. Everything else is refused.
enum SafeGlobals {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "DoubleStorage": .float64, "LongStorage": .int64, "IntStorage": .int32,
        "ShortStorage": .int16, "CharStorage": .int8, "ByteStorage": .uint8, "BoolStorage": .bool,
    ]
    static func allowed(_ module: String, _ name: String) -> Bool {
        switch (module, name) {
        case ("collections", "OrderedDict"),
             ("torch._utils", "_rebuild_tensor_v2"),
             ("torch._utils", "_rebuild_tensor"),
             ("torch._utils", "_rebuild_parameter"):
            return true
        case ("torch", _):
            return storageTypes[name] != nil
        default:
            return false
        }
    }
}

struct PickleMachine {
    /// Resolves a persistent id into a value (a storage). Given the id tuple.
    typealias PersistentLoad = (PValue) throws -> PValue

    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22
    /// Nesting limit: deeper structures are refused (a state_dict nests a handful of levels; releasing
    /// a million nested tuples would overflow the stack).
    static let maxDepth = 100

    /// Nesting depth of `v`, reading the stored depth of lists and dicts; tuples are walked within `budget` nodes.
    static func depth(_ v: PValue, _ budget: inout Int) -> Int {
        switch v {
        case let .tuple(items):
            budget -= items.count
            if budget < 0 { return Int.max }
            var d = 0
            for i in items {
                d = max(d, depth(i, &budget))
                if d > maxDepth { return d }
            }
            return d + 1
        case let .list(l): return l.depth
        case let .dict(d): return d.depth
        default: return 0
        }
    }

    static func depth(_ v: PValue) -> Int {
        var budget = 1 << 16
        return depth(v, &budget)
    }

    /// Runs the pickle starting at `start` in `bytes`; returns the result and the offset after STOP.
    static func run(_ bytes: UnsafeRawBufferPointer, from start: Int = 0,
                    persistentLoad: PersistentLoad) throws -> (PValue, end: Int) {
        var r = ByteReader(bytes, at: start, what: "pickle")
        var stack: [PValue] = []
        var marks: [Int] = []
        var memo: [Int: PValue] = [:]

        func fail(_ msg: String) -> WeightsError { .pickle(msg, offset: r.pos - start) }
        func pop() throws -> PValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            return v
        }
        func popMark() throws -> [PValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("no MARK on the stack") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func push(_ v: PValue) throws {
            guard stack.count < maxStack else { throw fail("stack too deep") }
            stack.append(v)
        }
        func pushTuple(_ items: [PValue]) throws {
            let t = PValue.tuple(items)
            guard depth(t) <= maxDepth else { throw fail("tuples nested too deeply or too large") }
            try push(t)
        }
        /// Depth a container reaches when `v` is put into it.
        func nested(_ v: PValue) throws -> Int {
            let d = depth(v)
            guard d < maxDepth else { throw fail("containers nested too deeply") }
            return d + 1
        }
        func string(_ n: Int) throws -> String {
            let b = try r.take(n)
            return String(decoding: b, as: UTF8.self)
        }
        func line() throws -> String {
            var end = r.pos
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            guard end < bytes.count else { throw WeightsError.truncated(what: "pickle", offset: r.pos) }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r.pos..<end]), as: UTF8.self)
            r.pos = end + 1
            return s
        }
        func global(_ module: String, _ name: String) throws -> PValue {
            guard SafeGlobals.allowed(module, name) else { throw WeightsError.forbiddenGlobal(module: module, name: name) }
            return .global(module: module, name: name)
        }
        func setMemo(_ i: Int) throws {
            guard let top = stack.last else { throw fail("memoize on an empty stack") }
            guard i >= 0, memo.count < maxMemo else { throw fail("memo too large") }
            memo[i] = top
        }
        func getMemo(_ i: Int) throws {
            guard let v = memo[i] else { throw fail("memo entry \(i) was never stored") }
            try push(v)
        }
        func long(_ b: UnsafeRawBufferPointer) -> PValue {
            if b.count == 0 { return .int(0) }
            if b.count <= 8 {
                var v: UInt64 = 0
                for i in 0..<b.count { v |= UInt64(b[i]) << (8 * UInt64(i)) }
                let shift = UInt64(64 - 8 * b.count)
                return .int(Int64(bitPattern: v << shift) >> Int64(shift))   // sign-extend
            }
            return .bigInt(Array(b))
        }
        func setItems(_ target: PValue, _ kv: [PValue]) throws {
            guard case let .dict(d) = target else { throw fail("SETITEM(S) on a \(target.kind), not a dict") }
            guard kv.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
            var i = 0
            while i < kv.count {
                d.depth = max(d.depth, try nested(kv[i]), try nested(kv[i + 1]))
                d.keys.append(kv[i]); d.values.append(kv[i + 1]); i += 2
            }
        }

        while true {
            let op = try r.u8()
            switch op {
            case 0x80: // PROTO
                let p = try r.u8()
                guard p <= 5 else { throw fail("pickle protocol \(p) is not supported") }
            case 0x95: _ = try r.u64()                          // FRAME
            case 0x2E: // STOP '.'
                let v = try pop()
                return (v, r.pos)
            case 0x7D: try push(.dict(PDict()))                 // EMPTY_DICT '}'
            case 0x5D: try push(.list(PList()))                 // EMPTY_LIST ']'
            case 0x29: try push(.tuple([]))                     // EMPTY_TUPLE ')'
            case 0x28:                                          // MARK '('
                guard marks.count < maxStack else { throw fail("too many marks") }
                marks.append(stack.count)
            case 0x58: try push(.string(try string(Int(try r.u32()))))      // BINUNICODE 'X'
            case 0x8C: try push(.string(try string(Int(try r.u8()))))       // SHORT_BINUNICODE
            case 0x8D:                                                      // BINUNICODE8
                let n = try r.u64()
                guard n <= UInt64(r.remaining) else { throw WeightsError.truncated(what: "pickle string", offset: r.pos) }
                try push(.string(try string(Int(n))))
            case 0x54: try push(.string(try string(Int(try r.u32()))))      // BINSTRING 'T'
            case 0x55: try push(.string(try string(Int(try r.u8()))))       // SHORT_BINSTRING 'U'
            case 0x42: try push(.bytes(Array(try r.take(Int(try r.u32())))))  // BINBYTES 'B'
            case 0x43: try push(.bytes(Array(try r.take(Int(try r.u8())))))   // SHORT_BINBYTES 'C'
            case 0x4A: try push(.int(Int64(Int32(bitPattern: try r.u32()))))  // BININT 'J'
            case 0x4B: try push(.int(Int64(try r.u8())))                       // BININT1 'K'
            case 0x4D: try push(.int(Int64(try r.u16())))                      // BININT2 'M'
            case 0x8A: try push(long(try r.take(Int(try r.u8()))))             // LONG1
            case 0x8B:                                                         // LONG4
                let n = Int(Int32(bitPattern: try r.u32()))
                try push(long(try r.take(n)))
            case 0x47:                                                         // BINFLOAT 'G' (big-endian)
                let b = try r.take(8)
                var bits: UInt64 = 0
                for i in 0..<8 { bits = bits << 8 | UInt64(b[i]) }
                try push(.float(Double(bitPattern: bits)))
            case 0x4E: try push(.none)                                         // NONE 'N'
            case 0x88: try push(.bool(true))                                   // NEWTRUE
            case 0x89: try push(.bool(false))                                  // NEWFALSE
            case 0x63:                                                         // GLOBAL 'c'
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:                                                         // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case let .string(m) = module, case let .string(n) = name else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                try push(try global(m, n))
            case 0x52:                                                         // REDUCE 'R'
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args, fail))
            case 0x81:                                                         // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try reduce(cls, args, fail))
            case 0x62:                                                         // BUILD 'b'
                _ = try pop()     // state: OrderedDict's __dict__ (e.g. _metadata); ignored, never executed
                guard !stack.isEmpty else { throw fail("BUILD on an empty stack") }
            case 0x51:                                                         // BINPERSID 'Q'
                let pid = try pop()
                try push(try persistentLoad(pid))
            case 0x73:                                                         // SETITEM 's'
                let v = try pop(), k = try pop()
                guard let target = stack.last else { throw fail("SETITEM without a dict") }
                try setItems(target, [k, v])
            case 0x75:                                                         // SETITEMS 'u'
                let kv = try popMark()
                guard let target = stack.last else { throw fail("SETITEMS without a dict") }
                try setItems(target, kv)
            case 0x61:                                                         // APPEND 'a'
                let v = try pop()
                guard case let .list(l)? = stack.last else { throw fail("APPEND to a non-list") }
                l.depth = max(l.depth, try nested(v))
                l.items.append(v)
            case 0x65:                                                         // APPENDS 'e'
                let vs = try popMark()
                guard case let .list(l)? = stack.last else { throw fail("APPENDS to a non-list") }
                for v in vs { l.depth = max(l.depth, try nested(v)) }
                l.items += vs
            case 0x74: try pushTuple(try popMark())                            // TUPLE 't'
            case 0x85: let a = try pop(); try pushTuple([a])                   // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try pushTuple([a, b]) // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try pushTuple([a, b, c])  // TUPLE3
            case 0x94: try setMemo(memo.count)                                 // MEMOIZE
            case 0x71: try setMemo(Int(try r.u8()))                            // BINPUT 'q'
            case 0x72: try setMemo(Int(try r.u32()))                           // LONG_BINPUT 'r'
            case 0x68: try getMemo(Int(try r.u8()))                            // BINGET 'h'
            case 0x6A: try getMemo(Int(try r.u32()))                           // LONG_BINGET 'j'
            case 0x30: _ = try pop()                                           // POP '0'
            case 0x31: _ = try popMark()                                       // POP_MARK '1'
            case 0x32:                                                         // DUP '2'
                guard let top = stack.last else { throw fail("DUP on an empty stack") }
                try push(top)
            default:
                r.pos -= 1
                throw fail("opcode 0x\(String(op, radix: 16)) is not supported by the safe state_dict reader")
            }
        }
    }

    /// The only "calls" a state_dict makes, interpreted without running anything.
    private static func reduce(_ callable: PValue, _ args: PValue,
                               _ fail: (String) -> WeightsError) throws -> PValue {
        guard case let .global(module, name) = callable else { throw fail("REDUCE of a \(callable.kind), not a class or function") }
        guard case let .tuple(a) = args else { throw fail("REDUCE arguments are a \(args.kind), not a tuple") }
        switch (module, name) {
        case ("collections", "OrderedDict"):
            let d = PDict()
            if let first = a.first {
                // OrderedDict([(k, v), ...])
                let pairs: [PValue]
                switch first {
                case let .list(l): pairs = l.items
                case let .tuple(t): pairs = t
                default: throw fail("OrderedDict() argument is a \(first.kind)")
                }
                for p in pairs {
                    guard case let .tuple(kv) = p, kv.count == 2 else { throw fail("OrderedDict item is not a pair") }
                    d.depth = max(d.depth, depth(p))
                    d.keys.append(kv[0]); d.values.append(kv[1])
                }
            }
            return .dict(d)
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            // (storage, storage_offset, size, stride, [requires_grad, backward_hooks, metadata])
            guard a.count >= 4, case let .storage(s) = a[0], case let .int(off) = a[1] else {
                throw fail("\(name) arguments are not (storage, offset, size, stride, ...)")
            }
            let shape = try intTuple(a[2], "size", fail), stride = try intTuple(a[3], "stride", fail)
            guard shape.count == stride.count else { throw fail("size and stride have different lengths") }
            guard off >= 0, off <= Int64(Int32.max) * 64 else { throw fail("storage offset \(off) is out of range") }
            return .tensor(TensorRef(storage: s, offset: Int(off), shape: shape, stride: stride))
        case ("torch._utils", "_rebuild_parameter"):
            guard let t = a.first, case .tensor = t else { throw fail("_rebuild_parameter argument is not a tensor") }
            return t
        default:
            throw fail("\(module).\(name) cannot be called")
        }
    }

    private static func intTuple(_ v: PValue, _ what: String, _ fail: (String) -> WeightsError) throws -> [Int] {
        let items: [PValue]
        switch v {
        case let .tuple(t): items = t
        case let .list(l): items = l.items
        default: throw fail("\(what) is a \(v.kind), not a tuple of ints")
        }
        return try items.map {
            guard case let .int(i) = $0, i >= 0, i < Int64(1) << 40 else { throw fail("\(what) holds a bad dimension") }
            return Int(i)
        }
    }
}
