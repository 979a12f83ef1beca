// WorkerEventTests.swift: the worker-to-daemon wire format (WorkerEvent) and job.json (WorkerJob).

import Foundation
import Testing
@testable import VLDCore
import VLDExperiments

struct WorkerEventTests {
    @Test(arguments: [
        WorkerEvent.progress(
            done: 120, total: 800, unit: "steps", loss: 1.93, evalLoss: nil, etaSeconds: 41.5, rate: 52000),
        .progress(done: 800, total: 800, unit: "steps", loss: nil, evalLoss: 1.25, etaSeconds: nil, rate: nil),
        .heartbeat, .started(restart: nil), .started(restart: 2),
        .stopped(done: 400),
        .published(path: "/var/lib/vldd/outbox/17-vld-quick-001-schedule=cyc(1)-seed1"),
        .failed(message: "diverged at step 12: loss is nan\nsecond line \"quoted\"", retryable: false),
        .failed(message: "No space left on device", retryable: true),
    ])
    func everyEventReadsBackAsWritten(event: WorkerEvent) throws {
        let line = event.line
        #expect(!line.contains("\n"), "one event is one line: \(line)")
        #expect(WorkerEvent(line: Array(line.utf8)) == event)
    }

    @Test func theWireFormatIsTheDocumentedOne() {
        #expect(
            WorkerEvent.progress(done: 1, total: 2, unit: "steps", loss: 0.5, evalLoss: nil, etaSeconds: 3, rate: nil)
                .line
                == #"{"event":"progress","done":1,"total":2,"unit":"steps","loss":0.5,"eta":3}"#)
        #expect(
            WorkerEvent.failed(message: "m", retryable: true).line
                == #"{"event":"failed","message":"m","retryable":true}"#)
    }

    @Test func aNonFiniteLossIsLeftOutNotWrittenAsInvalidJSON() throws {
        let line = WorkerEvent.progress(
            done: 3, total: 9, unit: "steps", loss: .nan, evalLoss: .infinity, etaSeconds: nil, rate: nil
        ).line
        #expect((try? JSONValue.parse(line)) != nil)
        #expect(
            WorkerEvent(line: Array(line.utf8))
                == .progress(done: 3, total: 9, unit: "steps", loss: nil, evalLoss: nil, etaSeconds: nil, rate: nil))
    }

    @Test(arguments: [
        "", "not json", "[]", #"{"event":"progress","done":1}"#, #"{"event":"failed","message":"x"}"#,
        #"{"event":"failed","message":"x","retryable":"no"}"#, #"{"event":"published","path":7}"#,
        #"{"event":"future-event"}"#,
        #"{"event":"stopped","done":1.5}"#,
    ])
    func linesThatAreNotEventsAreIgnored(line: String) {
        #expect(WorkerEvent(line: Array(line.utf8)) == nil)
    }

    @Test func jobFileRoundTripsAndNamesAMissingField() throws {
        let job = WorkerJob(
            job: 17, name: "vld-quick/001", trialIndex: 1, manifest: "{\"name\": \"x\"}\n", params: "{}", threads: 2,
            outboxName: WorkerJob.outboxName(job: 17, name: "vld-quick/001"), groupID: 998, heartbeatSeconds: 20)
        #expect(try WorkerJob(json: JSONValue.parse(job.json.serialized())) == job)
        var plain = job
        plain.groupID = nil
        plain.heartbeatSeconds = nil
        #expect(try WorkerJob(json: JSONValue.parse(plain.json.serialized())) == plain)
        var broken = job.json
        broken.remove(key: "threads")
        #expect(throws: TrialError.self) { try WorkerJob(json: broken) }
        do { _ = try WorkerJob(json: broken) } catch { #expect("\(error)".contains("threads")) }
    }
}
