// MixtureTests.swift: packing documents of a task mixture into training rows.

import Testing
import VLDTasks

/// Rows of packed documents: each document is one run of a segment id (from 0 in each row, the
/// padding after the last one more), holds exactly that document's tokens, and no target crosses
/// from one document into the next.
@Test func packedBatchesMarkEachDocumentAndNoTargetCrossesIt() throws {
    let igsm = try IGSMTask(config: IGSMConfig(maxOps: 2, maxEdges: 8))
    let bios = try BiosTask(config: BiosConfig(people: 20))
    let mixture = try TaskMixture(tasks: [igsm, bios], weights: [1, 1])
    let B = 4, T = 480, cursor = 7
    let batch = try mixture.batch(seed: 3, cursor: cursor, B: B, T: T)
    #expect(try mixture.batch(seed: 3, cursor: cursor, B: B, T: T).segments == batch.segments)
    var next = cursor
    var documentsSeen = 0
    for b in 0..<B {
        let row = Array(batch.segments[(b * T)..<((b + 1) * T)])
        var p = 0, expectedSegment: Int32 = 0
        while p < T {
            let segment = row[p]
            #expect(segment == expectedSegment, "row \(b) position \(p)")
            var end = p
            while end < T && row[end] == segment { end += 1 }
            let isPadding =
                batch.inputs[b * T + p] == WordTokenizer.pad && end == T
                && (p..<end).allSatisfy { batch.inputs[b * T + $0] == WordTokenizer.pad }
            if !isPadding {
                let doc = try mixture.document(seed: 3, index: next)
                #expect(
                    Array(batch.inputs[(b * T + p)..<(b * T + end)]) == Array(doc.tokens.prefix(end - p)),
                    "row \(b) document \(segment)")
                next += 1
                documentsSeen += 1
            }
            p = end
            expectedSegment += 1
        }
        for q in 0..<(T - 1) where batch.targets[b * T + q] >= 0 {
            #expect(
                row[q + 1] == row[q] && batch.inputs[b * T + q + 1] == batch.targets[b * T + q],
                "row \(b): target at \(q) crosses")
        }
    }
    #expect(next == batch.nextCursor && documentsSeen == batch.documents.reduce(0, +) && documentsSeen > B)
}
