// SQLite.swift: the one place that talks to libsqlite3.
//
// `Connection` owns one sqlite3 handle and `Statement` one prepared statement; both release
// them in deinit. A handle is used by one thread at a time (SQLITE_OPEN_NOMUTEX): the daemon
// gives every thread that touches the database its own connection, and WAL mode lets them read
// while one writes. Every connection gets the same pragmas (WAL, synchronous=FULL, foreign keys,
// a busy timeout), so a writer that finds the database locked waits instead of failing; all
// writes go through `immediate` transactions, which take the write lock up front (a deferred
// transaction that upgrades from read to write can fail with SQLITE_BUSY whatever the timeout).

import CSQLite
import Foundation

/// An error from SQLite with the operation that failed.
public struct SQLiteError: Error, CustomStringConvertible, Equatable {
    /// The extended result code (SQLITE_CONSTRAINT_UNIQUE, SQLITE_BUSY_TIMEOUT, ...).
    public let code: Int32
    public let message: String
    /// What was being done: "open <path>", or the SQL text.
    public let operation: String

    public var primaryCode: Int32 { code & 0xff }
    public var isBusy: Bool { primaryCode == SQLITE_BUSY || primaryCode == SQLITE_LOCKED }
    public var description: String { "sqlite: \(message) (code \(code)) in \(operation)" }
}

/// A value bound to or read from a statement.
public enum SQLValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// Swift values that bind as SQL values.
public protocol SQLValueConvertible {
    var sqlValue: SQLValue { get }
}

extension SQLValue: SQLValueConvertible { public var sqlValue: SQLValue { self } }
extension Int: SQLValueConvertible { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Int64: SQLValueConvertible { public var sqlValue: SQLValue { .integer(self) } }
extension Int32: SQLValueConvertible { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension UInt32: SQLValueConvertible { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Double: SQLValueConvertible { public var sqlValue: SQLValue { .real(self) } }
extension String: SQLValueConvertible { public var sqlValue: SQLValue { .text(self) } }
extension Bool: SQLValueConvertible { public var sqlValue: SQLValue { .integer(self ? 1 : 0) } }
extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// Column names of a result, with a name -> position map shared by all its rows.
public final class ColumnIndex: Sendable {
    public let names: [String]
    let positions: [String: Int]
    init(_ names: [String]) {
        self.names = names
        var map: [String: Int] = [:]
        for (i, n) in names.enumerated() where map[n] == nil { map[n] = i }
        positions = map
    }
}

/// One result row; columns by name.
public struct Row: Sendable {
    public let index: ColumnIndex
    public let values: [SQLValue]

    public var columns: [String] { index.names }

    public subscript(_ name: String) -> SQLValue {
        guard let i = index.positions[name] else { return .null }
        return values[i]
    }
    public func int(_ name: String) -> Int? {
        switch self[name] {
        case .integer(let v): return Int(v)
        case .real(let v): return Int(v)
        default: return nil
        }
    }
    public func double(_ name: String) -> Double? {
        switch self[name] {
        case .integer(let v): return Double(v)
        case .real(let v): return v
        default: return nil
        }
    }
    public func string(_ name: String) -> String? {
        if case .text(let s) = self[name] { return s }
        return nil
    }
}

/// One sqlite3 database handle.
public final class Connection {
    let handle: OpaquePointer
    public let path: String

    /// Opens (creating if `create`) the database at `path` and applies the connection pragmas.
    /// `busyTimeoutMilliseconds` is how long a statement waits for another connection's lock.
    public init(path: String, readOnly: Bool = false, create: Bool = true, busyTimeoutMilliseconds: Int32 = 5000) throws
    {
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0))
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: message, operation: "open \(path)")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        if !readOnly {
            try execute("PRAGMA journal_mode = WAL")
        }
        try execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
    }

    deinit { sqlite3_close_v2(handle) }

    func error(_ rc: Int32, _ operation: String) -> SQLiteError {
        SQLiteError(
            code: sqlite3_extended_errcode(handle) != 0 ? sqlite3_extended_errcode(handle) : rc,
            message: String(cString: sqlite3_errmsg(handle)), operation: operation)
    }

    /// Runs one or more statements that return no rows of interest.
    public func execute(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, sql) }
    }

    public func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, 0, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql) }
        return Statement(connection: self, handle: stmt, sql: sql)
    }

    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ arguments: [any SQLValueConvertible] = []) throws -> [Row] {
        let stmt = try prepare(sql)
        try stmt.bind(arguments)
        return try stmt.rows()
    }

    /// Runs one statement and returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: [any SQLValueConvertible] = []) throws -> Int {
        let stmt = try prepare(sql)
        try stmt.bind(arguments)
        _ = try stmt.rows()
        return Int(sqlite3_changes(handle))
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT; any error rolls back and is rethrown.
    public func immediate<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if sqlite3_get_autocommit(handle) == 0 { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Runs `body` inside a read transaction (a consistent snapshot across several queries).
    public func read<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN DEFERRED")
        defer { if sqlite3_get_autocommit(handle) == 0 { try? execute("COMMIT") } }
        return try body()
    }

    /// The SQLite library version, e.g. "3.40.1".
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}

/// A prepared statement; finalized in deinit.
public final class Statement {
    let connection: Connection
    let handle: OpaquePointer
    let sql: String

    init(connection: Connection, handle: OpaquePointer, sql: String) {
        self.connection = connection
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    public func bind(_ arguments: [any SQLValueConvertible]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard arguments.count == expected else {
            throw SQLiteError(
                code: SQLITE_RANGE, message: "\(arguments.count) arguments for \(expected) parameters",
                operation: sql)
        }
        for (i, argument) in arguments.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch argument.sqlValue {
            case .null: rc = sqlite3_bind_null(handle, index)
            case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
            case .real(let v): rc = sqlite3_bind_double(handle, index, v)
            case .text(let s): rc = sqlite3_bind_text(handle, index, s, -1, csqlite_transient())
            case .blob(let b):
                rc = b.withUnsafeBytes {
                    sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), csqlite_transient())
                }
            }
            guard rc == SQLITE_OK else { throw connection.error(rc, sql) }
        }
    }

    /// Steps to the end and collects every row.
    public func rows() throws -> [Row] {
        var result: [Row] = []
        let count = sqlite3_column_count(handle)
        let names = ColumnIndex((0..<count).map { String(cString: sqlite3_column_name(handle, $0)) })
        while true {
            let rc = sqlite3_step(handle)
            switch rc {
            case SQLITE_ROW:
                result.append(Row(index: names, values: (0..<count).map(column)))
            case SQLITE_DONE:
                sqlite3_reset(handle)
                return result
            default:
                let err = connection.error(rc, sql)
                sqlite3_reset(handle)
                throw err
            }
        }
    }

    private func column(_ i: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, i) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, i))
        case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(handle, i)))
        case SQLITE_BLOB:
            let n = Int(sqlite3_column_bytes(handle, i))
            guard n > 0, let p = sqlite3_column_blob(handle, i) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
        default: return .null
        }
    }
}
