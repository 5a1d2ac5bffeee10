/// torch.save files: the zip format (torch >= 1.6) and the legacy format before it.

enum TorchReader {
    // MARK: zip

    static func readZip(_ file: UnsafeRawBufferPointer) throws -> [WeightTensor] {
        let entries = try ZipReader.entries(file)
        // The archive folder is whatever torch.save chose (often "archive", but any name is legal).
        guard let pkl = entries.first(where: { e in
            let parts = e.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl"
        }) else { throw WeightsError.missingEntry("<folder>/data.pkl") }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        var byName: [String: ZipEntry] = [:]
        for e in entries where e.name.hasPrefix(prefix) { byName[e.name] = e }
        if let bo = byName[prefix + "byteorder"] {
            let b = try ZipReader.data(file, bo)
            if String(decoding: b, as: UTF8.self) != "little" {
                throw WeightsError.unsupportedDType("big-endian storages (byteorder \(String(decoding: b, as: UTF8.self)))")
            }
        }
        let pickle = try ZipReader.data(file, pkl)
        var storages: [String: StorageRef] = [:]
        let (root, _) = try PickleMachine.run(pickle) { pid in
            let ref = try storageRef(pid, storages: &storages)
            return .storage(ref)
        }
        let refs = try flatten(root)
        var bytes: [String: UnsafeRawBufferPointer] = [:]
        var out: [WeightTensor] = []
        out.reserveCapacity(refs.count)
        for (name, t) in refs {
            let key = t.storage.key
            let data: UnsafeRawBufferPointer
            if let b = bytes[key] { data = b } else {
                guard let e = byName[prefix + "data/" + key] else { throw WeightsError.missingEntry(prefix + "data/" + key) }
                data = try ZipReader.data(file, e)
                let need = t.storage.numel.multipliedReportingOverflow(by: t.storage.dtype.byteSize)
                guard !need.overflow, data.count >= need.partialValue else {
                    throw WeightsError.badTensor(name: name, reason: "storage \(key) holds \(data.count) bytes, \(t.storage.numel) elements of \(t.storage.dtype) need \(need.partialValue)")
                }
                bytes[key] = data
            }
            out.append(try Materializer.tensor(name: name, dtype: t.storage.dtype, storage: data,
                                               offset: t.offset + t.storage.elementOffset, shape: t.shape, stride: t.stride))
        }
        return out
    }

    /// ('storage', torch.XStorage, key, location, numel[, view_metadata]) → a shared StorageRef.
    static func storageRef(_ pid: PValue, storages: inout [String: StorageRef]) throws -> StorageRef {
        guard case let .tuple(t) = pid, t.count >= 5, case .string("storage") = t[0] else {
            throw WeightsError.pickle("persistent id is not ('storage', type, key, location, numel)", offset: 0)
        }
        guard case let .global(module, typeName) = t[1], module == "torch", let dtype = SafeGlobals.storageTypes[typeName] else {
            throw WeightsError.pickle("persistent id names storage type \(t[1].kind)", offset: 0)
        }
        let key: String
        switch t[2] {
        case let .string(s): key = s
        case let .int(i): key = String(i)
        default: throw WeightsError.pickle("storage key is a \(t[2].kind)", offset: 0)
        }
        guard case let .int(numel) = t[4], numel >= 0, numel < Int64(1) << 40 else {
            throw WeightsError.pickle("storage \(key) has a bad element count", offset: 0)
        }
        let root: StorageRef
        if let existing = storages[key] {
            guard existing.dtype == dtype else {
                throw WeightsError.pickle("storage \(key) is used as both \(existing.dtype) and \(dtype)", offset: 0)
            }
            root = existing
        } else {
            root = StorageRef(key: key, dtype: dtype, numel: Int(numel))
            storages[key] = root
        }
        // Legacy view metadata: (view_key, offset, view_size) into the root storage.
        if t.count >= 6, case let .tuple(view) = t[5] {
            guard view.count == 3, case let .int(off) = view[1], case let .int(size) = view[2],
                  off >= 0, size >= 0, off + size <= Int64(root.numel) else {
                throw WeightsError.pickle("bad storage view metadata for \(key)", offset: 0)
            }
            return StorageRef(key: key, dtype: dtype, numel: Int(size), elementOffset: Int(off))
        }
        return root
    }

    /// The tensors of a state_dict in order; nested dicts (checkpoints) become dotted names.
    static func flatten(_ root: PValue) throws -> [(String, TensorRef)] {
        guard case let .dict(d) = root else {
            throw WeightsError.pickle("the file holds a \(root.kind), not a state_dict (a dict of tensors)", offset: 0)
        }
        var out: [(String, TensorRef)] = []
        func walk(_ d: PDict, _ prefix: String, _ depth: Int) {
            guard depth < 6 else { return }
            for (k, v) in zip(d.keys, d.values) {
                let name: String
                switch k {
                case let .string(s): name = s
                case let .int(i): name = String(i)
                default: continue
                }
                switch v {
                case let .tensor(t): out.append((prefix + name, t))
                case let .dict(sub): walk(sub, prefix + name + ".", depth + 1)
                default: continue
                }
            }
        }
        walk(d, "", 0)
        guard !out.isEmpty else { throw WeightsError.pickle("the dict holds no tensors", offset: 0) }
        return out
    }

    // MARK: legacy

    /// 0x1950a86a20f9469cfc6c, little-endian, as pickled by LONG1.
    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    static func readLegacy(_ file: UnsafeRawBufferPointer) throws -> [WeightTensor] {
        let noPersistent: PickleMachine.PersistentLoad = { _ in
            throw WeightsError.pickle("unexpected persistent id in a legacy header", offset: 0)
        }
        let (magic, p1) = try PickleMachine.run(file, from: 0, persistentLoad: noPersistent)
        guard case let .bigInt(m) = magic, m == legacyMagic else {
            throw WeightsError.unknownFormat(path: "legacy .pt", firstBytes: "pickle without torch's magic number (a plain pickle, not torch.save output)")
        }
        let (proto, p2) = try PickleMachine.run(file, from: p1, persistentLoad: noPersistent)
        guard case .int(1001) = proto else {
            throw WeightsError.pickle("legacy protocol version \(proto.kind) is not 1001", offset: p1)
        }
        let (sysInfo, p3) = try PickleMachine.run(file, from: p2, persistentLoad: noPersistent)
        if case let .dict(d) = sysInfo {
            for (k, v) in zip(d.keys, d.values) {
                if case .string("little_endian") = k, case .bool(false) = v {
                    throw WeightsError.unsupportedDType("big-endian legacy file")
                }
            }
        }
        var storages: [String: StorageRef] = [:]
        let (root, p4) = try PickleMachine.run(file, from: p3) { pid in .storage(try storageRef(pid, storages: &storages)) }
        let (keysValue, p5) = try PickleMachine.run(file, from: p4, persistentLoad: noPersistent)
        guard case let .list(keyList) = keysValue else {
            throw WeightsError.pickle("legacy storage key list is a \(keysValue.kind)", offset: p4)
        }
        // Raw storages follow, in key-list order: u64 element count, then the elements.
        var r = ByteReader(file, at: p5, what: "legacy storage data")
        var bytes: [String: UnsafeRawBufferPointer] = [:]
        for k in keyList.items {
            guard case let .string(key) = k else { throw WeightsError.pickle("legacy storage key is a \(k.kind)", offset: p4) }
            guard let s = storages[key] else { throw WeightsError.pickle("legacy storage \(key) is not used by any tensor", offset: p4) }
            let count = try r.u64()
            let (nbytes, o) = Int(clamping: count).multipliedReportingOverflow(by: s.dtype.byteSize)
            guard !o, count <= UInt64(r.remaining) else { throw WeightsError.truncated(what: "legacy storage \(key)", offset: r.pos) }
            bytes[key] = try r.take(nbytes)
        }
        let refs = try flatten(root)
        var out: [WeightTensor] = []
        out.reserveCapacity(refs.count)
        for (name, t) in refs {
            guard let data = bytes[t.storage.key] else {
                throw WeightsError.missingEntry("legacy storage \(t.storage.key) for \(name)")
            }
            out.append(try Materializer.tensor(name: name, dtype: t.storage.dtype, storage: data,
                                               offset: t.offset + t.storage.elementOffset, shape: t.shape, stride: t.stride))
        }
        return out
    }
}
