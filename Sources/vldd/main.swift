// vldd: the vld daemon. This file only parses arguments and wires VLDCore; see Daemon.swift for
// the behaviour and vldd(8) for the manual.

import Foundation
import VLDCore
import VLDModel
import VLDTensor

let usage = """
    usage: vldd [--config FILE] [--exit-when-idle] [--debug]
           vldd worker --job N --state DIR [--nice K] [--events FILE]
           vldd --version

    Runs queued vld experiments: watches <state>/spool/incoming for manifests, queues them in
    <state>/db/vldd.sqlite3, runs each trial as a worker process, and publishes results to
    <state>/outbox. vldctl talks to it through its control socket.

      --config FILE      configuration (default ./etc/vldd/vldd.conf if it exists, else
                         /etc/vldd/vldd.conf); see vldd.conf(5)
      --exit-when-idle   exit 0 once nothing is queued or running (scripts, the README's main job)
      --debug            log debug lines too

    Signals: SIGTERM/SIGINT stop (running jobs checkpoint and are requeued), SIGHUP reloads the
    limits and concurrency, SIGUSR1 rescans the spool.
    """

func fail(_ message: String, _ status: Int32) -> Never {
    FileHandle.standardError.write(Data("vldd: \(message)\n".utf8))
    exit(status)
}

var args = Array(CommandLine.arguments.dropFirst())
if args.contains("--version") {
    print("vldd \(VLD.version)")
    exit(0)
}
if args.contains("-h") || args.contains("--help") {
    print(usage)
    exit(0)
}

if args.first == "worker" {
    BLAS.reexecWithSupportedKernelsIfNeeded()
    var job: Int?, state: String?, niceness = 0, events: String?
    var i = 1
    while i < args.count {
        guard i + 1 < args.count else { fail("\(args[i]) needs a value\n\(usage)", 64) }
        switch args[i] {
        case "--job": job = Int(args[i + 1])
        case "--state": state = args[i + 1]
        case "--nice": niceness = Int(args[i + 1]) ?? 0
        case "--events": events = args[i + 1]
        default: fail("unknown worker option \(args[i])", 64)
        }
        i += 2
    }
    guard let job, job > 0, let state else { fail("worker needs --job N and --state DIR", 64) }
    if niceness > 0 { _ = nice(Int32(min(niceness, 19))) }
    // Events go to fd 3 (a pipe from the local supervisor) or, on Slurm, appended to a file in the
    // shared run directory that the daemon follows.
    var progressFD: Int32 = 3
    if let events {
        progressFD = open(events, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard progressFD >= 0 else { fail("cannot open \(events): \(String(cString: strerror(errno)))", 74) }
        // A run killed part way through a line leaves it unfinished: end it, so that this run's
        // first event is a line of its own.
        var last: UInt8 = 0x0A
        let size = lseek(progressFD, 0, SEEK_END)
        if size > 0, pread(progressFD, &last, 1, size - 1) == 1, last != 0x0A {
            _ = write(progressFD, [UInt8(0x0A)], 1)
        }
    }
    exit(Worker.run(job: job, tree: StateTree(root: state), progressFD: progressFD))
}

var configPath: String?
var exitWhenIdle = false
var level = Logger.Level.info
var i = 0
while i < args.count {
    switch args[i] {
    case "--config":
        guard i + 1 < args.count else { fail("--config needs a file", 64) }
        configPath = args[i + 1]
        i += 2
    case "--exit-when-idle":
        exitWhenIdle = true
        i += 1
    case "--debug":
        level = .debug
        i += 1
    default:
        fail("unknown argument \(args[i])\n\(usage)", 64)
    }
}
let path =
    configPath
    ?? (FileManager.default.fileExists(atPath: "etc/vldd/vldd.conf") ? "etc/vldd/vldd.conf" : "/etc/vldd/vldd.conf")
let log = Logger.standardError(minimum: level)
do {
    let daemon = try Daemon(options: Daemon.Options(configPath: path, exitWhenIdle: exitWhenIdle), log: log)
    exit(try daemon.run())
} catch {
    log.error("vldd: cannot start: \(error)")
    exit(1)
}
