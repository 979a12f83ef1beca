// vldctl: the command-line interface of vld. This file only dispatches; each subcommand lives
// in its own file.

import Foundation
import VLDExperiments
import VLDModel
import VLDTensor

BLAS.reexecWithSupportedKernelsIfNeeded()
setvbuf(stdout, nil, _IOLBF, 0)  // lines appear in order with stderr's, also through a pipe

let commands: [(name: String, abstract: String, run: ([String]) throws -> Int32)] = [
    ("submit", "Queue manifests with vldd (spooled if the daemon is down)", DaemonCommands.submit),
    ("ls", "List jobs: ID, NAME, KIND, STATE, PROGRESS, ETA, LOSS, AGE", DaemonCommands.ls),
    ("show", "Everything about one job, with its event history", DaemonCommands.show),
    ("cancel", "Cancel jobs (running ones checkpoint and stop)", { try DaemonCommands.change("cancel", $0) }),
    ("hold", "Keep a queued job from starting", { try DaemonCommands.change("hold", $0) }),
    ("release", "Let a held job run", { try DaemonCommands.change("release", $0) }),
    ("retry", "Queue a failed or cancelled job again", { try DaemonCommands.change("retry", $0) }),
    ("logs", "Print (or follow with -f) a job's output", DaemonCommands.logs),
    ("results", "A finished job's metrics (--json, --csv for the grid summary)", DaemonCommands.results),
    ("status", "The daemon's version, uptime, queue counts, running jobs, limits", DaemonCommands.status),
    ("watch", "Live view of running and queued jobs", DaemonCommands.watch),
    ("doctor", "Check paths, permissions, group, socket, BLAS and config", DoctorCommand.run),
    ("run", "Run an experiment manifest in the foreground (resumable)", RunCommand.run),
    ("validate", "Check manifests and print every problem with its JSON path", ValidateCommand.run),
    ("example", "Print an annotated example manifest", ExampleCommand.run),
    ("task", "Print generated documents of a task (task sample SPEC)", TaskCommand.run),
    ("demo", "Train a small model on sequence reversal and print a progress table", DemoCommand.run),
    ("checkpoint", "Inspect a checkpoint or print its logits (inspect, logits)", CheckpointCommand.run),
    (
        "version", "Print the vld version",
        { _ in
            print("vldctl \(VLD.version)"); return 0
        }
    ),
]

func printUsage() {
    print("usage: vldctl <command> [options]\n\ncommands:")
    for c in commands { print("  " + c.name.padding(toLength: 12, withPad: " ", startingAt: 0) + c.abstract) }
    print("\nRun 'vldctl <command> --help' for a command's options.")
}

/// The commands that talk to the daemon take --config and --socket; like git's and kubectl's
/// global options, these may also come before the command name.
let daemonCommands: Set<String> = [
    "submit", "ls", "show", "cancel", "hold", "release", "retry", "logs", "results", "status",
    "watch", "doctor",
]
var argv = Array(CommandLine.arguments.dropFirst())
var global: [String] = []
while let first = argv.first,
    first == "--config" || first == "--socket" || first.hasPrefix("--config=") || first.hasPrefix("--socket=")
{
    if first.contains("=") {
        let parts = first.split(separator: "=", maxSplits: 1).map(String.init)
        global += [parts[0], parts.count > 1 ? parts[1] : ""]
        argv.removeFirst()
    } else {
        guard argv.count >= 2 else { CLI.error("\(first) needs a value"); exit(64) }
        global += [argv[0], argv[1]]
        argv.removeFirst(2)
    }
}
guard let name = argv.first else {
    if !global.isEmpty {
        CLI.error("\(global[0]) is given but no command; e.g. vldctl \(global.joined(separator: " ")) status")
    }
    printUsage()
    exit(64)
}
if !global.isEmpty && !daemonCommands.contains(name) && !["-h", "--help", "help", "--version"].contains(name) {
    CLI.error(
        "\(global[0]) applies to the commands that talk to vldd (\(daemonCommands.sorted().joined(separator: ", "))), not to '\(DisplayText.escaped(name))'"
    )
    exit(64)
}
argv = [name] + global + argv.dropFirst()
if name == "-h" || name == "--help" || name == "help" { printUsage(); exit(0) }
if name == "--version" { print("vldctl \(VLD.version)"); exit(0) }
guard let command = commands.first(where: { $0.name == name }) else {
    CLI.error("unknown command '\(DisplayText.escaped(name))'")
    printUsage()
    exit(64)
}
do {
    exit(try command.run(Array(argv.dropFirst())))
} catch let e as DaemonDown {
    CLI.error(e.message)
    exit(1)
} catch let e as UsageError {
    CLI.error(e.message)
    exit(64)
} catch {
    CLI.error("\(error)")
    exit(1)
}
