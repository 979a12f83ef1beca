// vldd: the vld daemon. The spool, queue, supervisor and control socket arrive with the daemon
// work (issue 4); today this executable reports its version and the engine it links.

import Foundation
import VLDModel
import VLDTensor

let args = Array(CommandLine.arguments.dropFirst())
if args.contains("--version") {
    print("vldd \(VLD.version)")
    exit(0)
}
if args.isEmpty || args.contains("-h") || args.contains("--help") {
    print("""
        usage: vldd --version

        vldd will run queued vld experiments under systemd. In this version only the engine and
        vldctl's foreground commands exist; run 'vldctl --help'.
        """)
    exit(args.isEmpty ? 64 : 0)
}
FileHandle.standardError.write(Data("vldd: unknown arguments \(args.joined(separator: " ")); run vldd --help\n".utf8))
exit(64)
