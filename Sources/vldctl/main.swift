// vldctl: the command-line interface of vld. This file only dispatches; each subcommand lives
// in its own file.

import Foundation
import VLDModel
import VLDTensor

BLAS.reexecWithSupportedKernelsIfNeeded()

let commands: [(name: String, abstract: String, run: ([String]) throws -> Int32)] = [
    ("run", "Run an experiment manifest in the foreground (resumable)", RunCommand.run),
    ("validate", "Check manifests and print every problem with its JSON path", ValidateCommand.run),
    ("example", "Print an annotated example manifest", ExampleCommand.run),
    ("demo", "Train a small model on sequence reversal and print a progress table", DemoCommand.run),
    ("checkpoint", "Inspect a checkpoint or print its logits (inspect, logits)", CheckpointCommand.run),
    ("version", "Print the vld version", { _ in print("vldctl \(VLD.version)"); return 0 }),
]

func printUsage() {
    print("usage: vldctl <command> [options]\n\ncommands:")
    for c in commands { print("  " + c.name.padding(toLength: 12, withPad: " ", startingAt: 0) + c.abstract) }
    print("\nRun 'vldctl <command> --help' for a command's options.")
}

var argv = Array(CommandLine.arguments.dropFirst())
guard let name = argv.first else { printUsage(); exit(64) }
if name == "-h" || name == "--help" || name == "help" { printUsage(); exit(0) }
if name == "--version" { print("vldctl \(VLD.version)"); exit(0) }
guard let command = commands.first(where: { $0.name == name }) else {
    CLI.error("unknown command '\(name)'")
    printUsage()
    exit(64)
}
do {
    exit(try command.run(Array(argv.dropFirst())))
} catch let e as UsageError {
    CLI.error(e.message)
    exit(64)
} catch {
    CLI.error("\(error)")
    exit(1)
}
