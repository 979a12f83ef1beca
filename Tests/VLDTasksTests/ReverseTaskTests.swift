// ReverseTaskTests.swift: the reversal stream is deterministic and masks what it should.

import Testing
import VLDTasks

@Test func examplesAreDeterministicAndReversed() {
    let task = ReverseTask(vocab: 10, length: 4)
    #expect(task.symbols(seed: 3, index: 7) == task.symbols(seed: 3, index: 7))
    #expect(task.symbols(seed: 3, index: 7) != task.symbols(seed: 3, index: 8))
    let s = task.symbols(seed: 1, index: 0)
    #expect(s.allSatisfy { $0 >= 2 && $0 < 10 })
    let e = task.example(s)
    #expect(e.inputs == s + [ReverseTask.sep] + s.reversed().prefix(3))
    #expect(e.targets == [-1, -1, -1, -1] + s.reversed())
    let b = task.batch(seed: 1, cursor: 5, batch: 3)
    #expect(b.inputs.count == 3 * task.sequenceLength)
    #expect(Array(b.inputs.prefix(8)) == task.example(task.symbols(seed: 1, index: 5)).inputs)
}
