import CSQLite
import Foundation

// A small wrapper over SQLite's C API, in the spirit of GRDB.swift: a connection (`Database`),
// prepared statements with typed binding and typed column reads, a statement cache, transactions
// that roll back on throw, and errors that carry the SQL and SQLite's own message.
//
// A `Database` is one connection. Use it from one thread at a time (open one connection per
// thread: WAL mode lets readers work while a writer writes).

/// Errors of the store. Each says what happened and what to do next.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// SQLite refused a statement: result code, SQLite's message, and the SQL.
    case sqlite(code: Int32, message: String, sql: String?)
    /// The file could not be opened as a database.
    case cannotOpen(path: String, message: String)
    /// The store was written by a newer `probe` (schema version above the supported one).
    case newerSchema(path: String, found: Int, supported: Int)
    /// The file is an SQLite database, but not a probe store.
    case notAProbeStore(path: String, reason: String)
    /// A migration step failed; the store was left at `version`.
    case migrationFailed(path: String, version: Int, message: String)
    /// A vector does not have the backbone's dimension.
    case dimensionMismatch(expected: Int, got: Int, context: String)
    /// A vector holds NaN or infinity, or a value beyond half precision's range with `.f16`.
    case invalidVector(context: String, reason: String)
    /// Malformed input (e.g. a sha256 that is not 64 hex digits).
    case invalidArgument(String)
    /// A backbone, image, sample or head that is not in the store.
    case notFound(String)
    /// A file could not be written or read (export).
    case io(path: String, message: String)
    /// The store's file or directory is not writable, so `action` cannot be done (nothing was done).
    case readOnlyStore(path: String, action: String)
    /// A WAL store whose directory is not writable still has transactions in its -wal file, which
    /// SQLite cannot read without creating a -shm file beside it.
    case unreadableWAL(path: String)

    public var description: String {
        switch self {
        case let .sqlite(code, message, sql):
            let name = String(cString: sqlite3_errstr(code))
            var s = "SQLite error \(code) (\(name)): \(message)"
            if let sql { s += "\n  in: \(sql.trimmingCharacters(in: .whitespacesAndNewlines))" }
            if code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED {
                s += "\n  Another process holds the store's write lock; wait for it to finish, then retry."
            } else if code & 0xFF == SQLITE_CORRUPT || code & 0xFF == SQLITE_NOTADB {
                s += "\n  The file is damaged or is not an SQLite database: no probe command can read it. Restore it from a backup, or pass another --store PATH (`probe extract DIR --store NEW` builds a new store)."
            } else if code & 0xFF == SQLITE_FULL {
                s += "\n  The disk is full; free some space and run again (committed batches are kept)."
            } else if code & 0xFF == SQLITE_READONLY || code & 0xFF == SQLITE_CANTOPEN {
                s += "\n  Check that the store's directory exists and is writable."
            }
            return s
        case let .cannotOpen(path, message):
            return "Cannot open the store \(path): \(message). Check the path and its permissions, or pass another --store PATH."
        case let .newerSchema(path, found, supported):
            return "The store \(path) has schema version \(found), but this probe understands versions up to \(supported). "
                + "It was written by a newer probe: upgrade probe, or pass another --store PATH."
        case let .notAProbeStore(path, reason):
            return "\(path) is not a probe feature store (\(reason)). Pass another --store PATH (a new file is created when absent)."
        case let .migrationFailed(path, version, message):
            return "Migrating the store \(path) past schema version \(version) failed: \(message). "
                + "The store was left unchanged at version \(version); report this, or use another --store PATH."
        case let .dimensionMismatch(expected, got, context):
            return "Vector of dimension \(got) refused (\(context)): the backbone's features have dimension \(expected). "
                + "Nothing of this batch was stored."
        case let .invalidVector(context, reason):
            return "Vector refused (\(context)): \(reason). Nothing of this batch was stored."
        case let .invalidArgument(message):
            return "Invalid argument: \(message)"
        case let .notFound(message):
            return "Not found: \(message)"
        case let .readOnlyStore(path, action):
            return "The store \(path) is read-only (its file or its directory is not writable), so probe cannot \(action); nothing was changed. "
                + "Make the file and its directory writable, or copy the store elsewhere and pass --store COPY."
        case let .unreadableWAL(path):
            return "The store \(path) is in a directory that is not writable, and its \(path)-wal file still holds transactions: "
                + "SQLite cannot read them without creating \(path)-shm there. Make the directory writable once "
                + "(any probe command then folds the -wal file into the store), or copy the store, its -wal file and -shm file elsewhere."
        case let .io(path, message):
            return "Cannot write or read \(path): \(message). Check the directory exists and is writable."
        }
    }
}

/// A value to bind to a statement parameter.
public enum SQLValue: Sendable, Equatable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByNilLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(nilLiteral: ()) { self = .null }
    public static func int(_ v: Int) -> SQLValue { .integer(Int64(v)) }
    public static func optionalText(_ s: String?) -> SQLValue { s.map { .text($0) } ?? .null }
    public static func optionalInt(_ v: Int64?) -> SQLValue { v.map { .integer($0) } ?? .null }
}

/// SQLITE_TRANSIENT: SQLite copies the bound bytes.
@inline(__always) private var transientDestructor: sqlite3_destructor_type {
    unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// One SQLite connection.
public final class Database {
    /// How to open a connection.
    public struct Options: Sendable {
        public var readOnly = false
        /// With `readOnly`: open with SQLite's `immutable=1` URI parameter (no locks, no -shm file).
        /// Only correct when no writer can exist (see `FeatureStore`'s read-only opening).
        public var immutable = false
        /// Create the file when it does not exist (ignored when `readOnly`).
        public var create = true
        /// How long a writer waits for another writer's lock before failing with SQLITE_BUSY.
        public var busyTimeoutSeconds: Double = 10
        /// Write-ahead logging: readers never block the writer and vice versa; a crash at any
        /// moment leaves the last committed transaction.
        public var wal = true
        public var foreignKeys = true
        /// Page size for a new file (ignored for an existing one).
        public var pageSize: Int = 32768
        /// Memory-mapped I/O (bytes); 0 disables it.
        public var mmapSize: Int64 = 1 << 36
        /// Page cache size in KiB.
        public var cacheKiB: Int = 65536
        public init() {}
    }

    public let path: String
    /// The raw sqlite3 handle, for callers that need the C API directly.
    public let handle: OpaquePointer
    private var cache: [String: Statement] = [:]

    public init(path: String, options: Options = Options()) throws {
        self.path = path
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        var target = path
        if options.readOnly {
            flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI
            target = Self.fileURI(path) + (options.immutable ? "?mode=ro&immutable=1" : "?mode=ro")
        } else {
            flags |= SQLITE_OPEN_READWRITE
            if options.create { flags |= SQLITE_OPEN_CREATE }
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(target, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw StoreError.cannotOpen(path: path, message: message)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, Int32(max(0, options.busyTimeoutSeconds) * 1000))
        // Switching a file to WAL mode (and reading a header another process is writing) can fail with
        // SQLITE_BUSY at once, without the busy handler's wait (SQLite avoids a deadlock that way):
        // several processes creating one new store at once did. Such steps are retried until the busy
        // timeout has passed.
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, options.busyTimeoutSeconds) * 1e9)
        func retryingBusy<T>(_ body: () throws -> T) throws -> T {
            var pause: UInt32 = 1000
            while true {
                do { return try body() } catch let StoreError.sqlite(code, message, sql)
                    where (code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED) {
                    guard DispatchTime.now().uptimeNanoseconds < deadline else { throw StoreError.sqlite(code: code, message: message, sql: sql) }
                    usleep(pause)
                    pause = min(pause * 2, 50_000)
                }
            }
        }
        do {
            // The file header is only read on first access: this also rejects non-databases here.
            if !options.readOnly {
                try retryingBusy { try execute("PRAGMA page_size = \(options.pageSize)") }
            }
            _ = try retryingBusy { try scalarInt("PRAGMA schema_version") }
            if options.wal && !options.readOnly {
                let mode = try retryingBusy { try scalarText("PRAGMA journal_mode = WAL") }
                if mode?.lowercased() != "wal" {
                    throw StoreError.cannotOpen(path: path, message: "cannot switch to WAL mode (got \(mode ?? "nil"))")
                }
                // NORMAL is durable across process crashes in WAL mode (only a power loss may
                // lose the last commits, never consistency).
                try execute("PRAGMA synchronous = NORMAL")
            }
            try execute("PRAGMA foreign_keys = \(options.foreignKeys ? "ON" : "OFF")")
            try execute("PRAGMA mmap_size = \(options.mmapSize)")
            try execute("PRAGMA cache_size = -\(options.cacheKiB)")
        } catch let error as StoreError {
            sqlite3_close_v2(db)
            if case let .sqlite(code, message, _) = error, code & 0xFF == SQLITE_NOTADB {
                throw StoreError.notAProbeStore(path: path, reason: message)
            }
            throw error
        }
    }

    /// A `file:` URI for `path`: characters that would end the path (`?`, `#`, `%`) are escaped.
    static func fileURI(_ path: String) -> String {
        var out = "file:"
        for b in path.utf8 {
            switch b {
            case UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "%"), 0..<0x20, 0x7F...:
                out += String(format: "%%%02X", b)
            default: out.unicodeScalars.append(Unicode.Scalar(b))
            }
        }
        return out
    }

    /// True when SQLite opened the main database read-only (asked for, or the file is not writable).
    public var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// SQLite's message for the last error on this connection.
    var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    func error(_ code: Int32, sql: String?) -> StoreError {
        .sqlite(code: code, message: lastMessage, sql: sql)
    }

    /// Runs SQL text (one or more statements) that contains no user data.
    public func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? lastMessage
            sqlite3_free(err)
            throw StoreError.sqlite(code: rc, message: message, sql: sql)
        }
    }

    /// A new prepared statement (not cached; finalized when released).
    public func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql: sql) }
        return Statement(handle: stmt, db: handle, sql: sql)
    }

    /// A prepared statement from this connection's cache, reset and with its bindings cleared.
    public func cachedStatement(_ sql: String) throws -> Statement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        let s = try prepare(sql)
        cache[sql] = s
        return s
    }

    /// Runs one statement with bound arguments; returns the number of changed rows.
    @discardableResult
    public func run(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int {
        let s = try cachedStatement(sql)
        defer { s.reset() }
        try s.bind(arguments)
        while try s.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// Runs a query and maps every row.
    public func query<T>(_ sql: String, _ arguments: [SQLValue] = [], row: (Statement) throws -> T) throws -> [T] {
        let s = try cachedStatement(sql)
        defer { s.reset() }
        try s.bind(arguments)
        var out: [T] = []
        while try s.step() { out.append(try row(s)) }
        return out
    }

    /// The first row of a query, mapped, or nil when there is none.
    public func queryFirst<T>(_ sql: String, _ arguments: [SQLValue] = [], row: (Statement) throws -> T) throws -> T? {
        let s = try cachedStatement(sql)
        defer { s.reset() }
        try s.bind(arguments)
        return try s.step() ? row(s) : nil
    }

    public func scalarInt(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int64? {
        try queryFirst(sql, arguments) { $0.isNull(0) ? nil : $0.int64(0) } ?? nil
    }

    public func scalarText(_ sql: String, _ arguments: [SQLValue] = []) throws -> String? {
        try queryFirst(sql, arguments) { $0.string(0) } ?? nil
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    /// The outermost transaction is `BEGIN IMMEDIATE` (it takes the write lock at once, waiting up
    /// to the busy timeout); nested calls use savepoints.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        if isInTransaction {
            try execute("SAVEPOINT probe_nested")
            do {
                let result = try body()
                try execute("RELEASE probe_nested")
                return result
            } catch {
                try? execute("ROLLBACK TO probe_nested")
                try? execute("RELEASE probe_nested")
                throw error
            }
        }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Runs `body` in one read transaction (a consistent snapshot; no write lock), or inside the
    /// current transaction when there is one.
    public func read<T>(_ body: () throws -> T) throws -> T {
        if isInTransaction { return try body() }
        try execute("BEGIN DEFERRED")
        defer { if isInTransaction { try? execute("COMMIT") } }
        return try body()
    }

    /// `PRAGMA integrity_check`: "ok", or the problems SQLite found.
    public func integrityCheck() throws -> [String] {
        try query("PRAGMA integrity_check") { $0.string(0) ?? "" }
    }

    /// `PRAGMA user_version`.
    public func userVersion() throws -> Int { Int(try scalarInt("PRAGMA user_version") ?? 0) }

    func setUserVersion(_ v: Int) throws { try execute("PRAGMA user_version = \(v)") }

    /// Copies the WAL into the main file and truncates it.
    public func checkpoint() throws { try execute("PRAGMA wal_checkpoint(TRUNCATE)") }
}

/// A prepared statement. Parameters are numbered from 1, columns from 0 (as in SQLite).
public final class Statement {
    let handle: OpaquePointer
    let db: OpaquePointer
    public let sql: String

    init(handle: OpaquePointer, db: OpaquePointer, sql: String) {
        self.handle = handle
        self.db = db
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    private func check(_ rc: Int32) throws {
        if rc != SQLITE_OK {
            throw StoreError.sqlite(code: rc, message: String(cString: sqlite3_errmsg(db)), sql: sql)
        }
    }

    /// Resets the statement and clears its bindings.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public func bind(_ value: Int64, at i: Int32) throws { try check(sqlite3_bind_int64(handle, i, value)) }
    public func bind(_ value: Int, at i: Int32) throws { try check(sqlite3_bind_int64(handle, i, Int64(value))) }
    public func bind(_ value: Double, at i: Int32) throws { try check(sqlite3_bind_double(handle, i, value)) }
    public func bind(_ value: String, at i: Int32) throws {
        try check(sqlite3_bind_text(handle, i, value, -1, transientDestructor))
    }
    /// Binds a copy of the bytes as a BLOB (an empty buffer binds a zero-length BLOB).
    public func bind(blob: UnsafeRawBufferPointer, at i: Int32) throws {
        if let base = blob.baseAddress, blob.count > 0 {
            try check(sqlite3_bind_blob64(handle, i, base, sqlite3_uint64(blob.count), transientDestructor))
        } else {
            try check(sqlite3_bind_zeroblob(handle, i, 0))
        }
    }
    public func bindNull(at i: Int32) throws { try check(sqlite3_bind_null(handle, i)) }

    public func bind(_ value: SQLValue, at i: Int32) throws {
        switch value {
        case let .integer(v): try bind(v, at: i)
        case let .real(v): try bind(v, at: i)
        case let .text(v): try bind(v, at: i)
        case let .blob(v): try v.withUnsafeBytes { try bind(blob: $0, at: i) }
        case .null: try bindNull(at: i)
        }
    }

    public func bind(_ values: [SQLValue]) throws {
        for (k, v) in values.enumerated() { try bind(v, at: Int32(k + 1)) }
    }

    /// Advances: true when a row is available, false when done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let message = String(cString: sqlite3_errmsg(db))
        sqlite3_reset(handle)
        throw StoreError.sqlite(code: rc, message: message, sql: sql)
    }

    public func isNull(_ c: Int32) -> Bool { sqlite3_column_type(handle, c) == SQLITE_NULL }
    public func int64(_ c: Int32) -> Int64 { sqlite3_column_int64(handle, c) }
    public func int(_ c: Int32) -> Int { Int(sqlite3_column_int64(handle, c)) }
    public func double(_ c: Int32) -> Double { sqlite3_column_double(handle, c) }
    public func string(_ c: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, c) else { return nil }
        let n = Int(sqlite3_column_bytes(handle, c))
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }
    /// The BLOB of column `c`, valid only inside `body` (no copy).
    public func withBlob<T>(_ c: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let p = sqlite3_column_blob(handle, c)
        let n = Int(sqlite3_column_bytes(handle, c))
        return try body(UnsafeRawBufferPointer(start: n > 0 ? p : nil, count: n))
    }
    public func blob(_ c: Int32) -> [UInt8] { withBlob(c) { Array($0) } }
}
