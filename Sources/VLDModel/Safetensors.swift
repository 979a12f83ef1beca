// Safetensors.swift: reading and writing the safetensors format (Hugging Face), float32 only.
//
// Layout: an 8-byte little-endian header length n, n bytes of JSON mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end]} (offsets relative to the byte after the header) plus
// an optional "__metadata__" object of strings, then the raw little-endian data.
//
// vld adds "vld_crc32" to the metadata: the CRC-32 of the data section, checked on load, so a
// flipped bit is reported instead of loaded. Files written by Hugging Face have no checksum; for
// those the structural checks (offsets inside the file, sizes matching shapes, no overlap) still
// catch truncation.

import Foundation
import VLDJSON
import VLDTensor

/// One float32 tensor read from or written to a safetensors file.
public struct NamedTensor: Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
        require(
            shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) does not match \(values.count) values")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// A problem with a checkpoint file; the message names the file and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum Safetensors {
    /// Serialises tensors (in the given order) with `metadata`, adding the vld_crc32 checksum.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) -> Data {
        var body = Data(capacity: tensors.reduce(0) { $0 + $1.values.count * 4 })
        var entries: [(String, JSONValue)] = []
        for t in tensors {
            let begin = body.count
            t.values.withUnsafeBufferPointer {
                body.append(
                    UnsafeBufferPointer(
                        start: UnsafeRawPointer($0.baseAddress!)
                            .assumingMemoryBound(to: UInt8.self), count: $0.count * 4))
            }
            entries.append(
                (
                    t.name,
                    .object([
                        ("dtype", .string("F32")), ("shape", .array(t.shape.map { JSONValue($0) })),
                        ("data_offsets", .array([JSONValue(begin), JSONValue(body.count)])),
                    ])
                ))
        }
        var meta = metadata
        meta["format"] = meta["format"] ?? "pt"
        meta["vld_crc32"] = String(format: "%08x", CRC32.checksum(body))
        // Keys sorted for a reproducible file, the metadata first.
        let json = JSONValue.object(
            [("__metadata__", .object(meta.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]
                + entries.sorted { $0.0 < $1.0 })
        var header = Data(json.serialized(pretty: false).utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = Data(capacity: 8 + header.count + body.count)
        var n = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(header)
        out.append(body)
        return out
    }

    /// Parses and verifies a safetensors file. `file` names it in error messages.
    public static func decode(_ data: Data, file: String) throws -> (
        tensors: [String: NamedTensor], metadata: [String: String]
    ) {
        func fail(_ why: String) -> CheckpointError { CheckpointError("\(file): \(why)") }
        guard data.count >= 8 else { throw fail("truncated: \(data.count) bytes, not even a header length") }
        let n = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(data.count - 8), n < 100_000_000 else {
            throw fail("truncated or corrupt: header length \(n) but the file has \(data.count) bytes")
        }
        let headerEnd = 8 + Int(n)
        // Trailing spaces pad the header to a multiple of 8 bytes; the JSON reader allows them.
        guard case let .object(header)? = try? JSONValue.parse(data.subdata(in: 8..<headerEnd)) else {
            throw fail("corrupt: the header is not a JSON object")
        }
        let dataLen = data.count - headerEnd
        var metadata: [String: String] = [:]
        var tensors: [String: NamedTensor] = [:]
        var spans: [(Int, Int, String)] = []
        var shapes: [String: [Int]] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard case let .object(m) = value, m.allSatisfy({ $0.1.stringValue != nil }) else {
                    throw fail("corrupt: __metadata__ is not a map of strings")
                }
                for (k, v) in m { metadata[k] = v.stringValue! }
                continue
            }
            func ints(_ v: JSONValue?) -> [Int]? {
                guard case let .array(items)? = v else { return nil }
                let values = items.compactMap(\.intValue)
                return values.count == items.count ? values : nil
            }
            guard let dtype = value["dtype"]?.stringValue, let shape = ints(value["shape"]),
                let offsets = ints(value["data_offsets"]), offsets.count == 2
            else { throw fail("corrupt: entry \(name) lacks dtype, shape or data_offsets") }
            guard dtype == "F32" else {
                throw fail("tensor \(name) has dtype \(dtype); vld loads float32 (F32) checkpoints only")
            }
            // Products are checked for overflow: shapes come from the file and may be hostile.
            var count = 1
            for dim in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: dim)
                guard dim >= 0, !overflow, p <= dataLen / 4 else {
                    throw fail("truncated or corrupt: tensor \(name) has shape \(shape), more data than the file holds")
                }
                count = p
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == count * 4
            else { throw fail("corrupt: tensor \(name) has shape \(shape) but spans bytes \(offsets)") }
            guard offsets[1] <= dataLen else {
                throw fail(
                    "truncated: tensor \(name) ends at byte \(offsets[1]) of the data, which has \(dataLen) bytes")
            }
            spans.append((offsets[0], offsets[1], name))
            shapes[name] = shape
        }
        // Check every span before copying anything, so a hostile header cannot make us allocate
        // many copies of the file; compare with the furthest end so far to catch any overlap.
        spans.sort { $0.0 < $1.0 }
        var furthest = (end: 0, name: "")
        for span in spans {
            if span.0 < furthest.end { throw fail("corrupt: tensors \(furthest.name) and \(span.2) overlap") }
            if span.1 > furthest.end { furthest = (span.1, span.2) }
        }
        for (begin, end, name) in spans {
            var values = [Float](repeating: 0, count: (end - begin) / 4)
            values.withUnsafeMutableBytes { dst in
                data.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(headerEnd + begin)..<(headerEnd + end)]))
                }
            }
            tensors[name] = NamedTensor(name: name, shape: shapes[name]!, values: values)
        }
        if let expected = metadata["vld_crc32"] {
            let actual = String(format: "%08x", CRC32.checksum(data.subdata(in: headerEnd..<data.count)))
            guard actual == expected else {
                throw fail("corrupt: data checksum is \(actual) but the file records \(expected)")
            }
        } else if let last = spans.last, last.1 != dataLen {
            throw fail("corrupt: \(dataLen - last.1) bytes after the last tensor")
        }
        return (tensors, metadata)
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as used by zlib and PNG.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
