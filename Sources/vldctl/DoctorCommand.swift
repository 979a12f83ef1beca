// DoctorCommand.swift: `vldctl doctor` checks what a user needs to run experiments through
// vldd and says how to fix each problem.

import Foundation
import VLDJSON
import VLDCore
import VLDStore
import VLDTensor

enum DoctorCommand {
    static func run(_ args: [String]) throws -> Int32 {
        if DaemonCommands.help(
            args,
            "usage: vldctl doctor [--probe]\n\nChecks the configuration, the state tree and its modes, group membership, the control socket,\nBLAS and SQLite, and with executor = slurm the cluster (commands, controller, partition, a state\ntree the nodes can see; --probe runs a one-minute job on a node that checks it sees the same\nstate tree), and prints each problem with its fix. Exit 1 if any check fails."
        ) {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--probe"])
        let target = DaemonTarget.resolve(p.values)
        var problems = 0
        func ok(_ s: String) { print("ok    \(s)") }
        func warn(_ s: String, _ fix: String) { print("warn  \(s)\n      fix: \(fix)") }
        func bad(_ s: String, _ fix: String) {
            problems += 1
            print("FAIL  \(s)\n      fix: \(fix)")
        }

        let config: DaemonConfig
        do {
            config = try DaemonConfig.load(target.configPath)
            ok("config \(target.configPath) parses")
        } catch {
            bad(
                "config: \(error)",
                "edit the file (every key is documented in it and in vldd.conf(5)), or pass --config")
            return 1
        }
        let tree = StateTree(root: config.stateDirectory)
        for (path, mode) in tree.directories {
            var st = stat()
            if lstat(path, &st) != 0 {
                bad(
                    "\(path) is missing",
                    "start vldd once (it creates the tree), or 'systemd-tmpfiles --create' for the package")
                continue
            }
            if st.st_mode & 0o7777 != mode, access(path, R_OK) == 0 || getuid() == 0 {
                warn(
                    "\(path) has mode \(String(st.st_mode & 0o7777, radix: 8)), expected \(String(mode, radix: 8))",
                    "chmod \(String(mode, radix: 8)) \(path) (vldd restores it at start)")
            }
        }
        if access(tree.incoming, W_OK | X_OK) == 0 {
            ok("you can drop manifests into \(tree.incoming)")
        } else {
            let group = config.submitGroup.isEmpty ? "the daemon's group" : config.submitGroup
            bad(
                "you cannot write to \(tree.incoming)",
                "an administrator adds you to \(group): 'usermod -aG \(config.submitGroup.isEmpty ? "vldd" : config.submitGroup) \(NSUserName())', then log in again"
            )
        }
        if !config.submitGroup.isEmpty {
            if let g = getgrnam(config.submitGroup) {
                let gid = g.pointee.gr_gid
                var groups = [gid_t](repeating: 0, count: 256)
                let n = getgroups(Int32(groups.count), &groups)
                if getuid() == 0 || getgid() == gid || groups.prefix(Int(max(0, n))).contains(gid) {
                    ok("you may submit (root or a member of \(config.submitGroup))")
                } else {
                    bad(
                        "you are not in group \(config.submitGroup)",
                        "'usermod -aG \(config.submitGroup) \(NSUserName())', then log in again")
                }
            } else {
                bad(
                    "submit_group \(config.submitGroup) does not exist",
                    "create it ('groupadd --system \(config.submitGroup)') or unset submit_group")
            }
        }
        do {
            let r = try ControlClient.request(path: target.socket, ["op": "status"], timeout: 10)
            if r["ok"]?.boolValue == true {
                let counts = r["counts"] ?? [:]
                ok(
                    "vldd \(shown(r["version"])) answers on \(target.socket): \(counts["queued"]?.intValue ?? 0) queued, \(counts["running"]?.intValue ?? 0) running"
                )
            } else {
                bad("vldd refuses you: \(shown(r["error"]))", "see the reason above")
            }
        } catch {
            bad(
                "\(error)",
                "start the daemon: 'systemctl start vldd' (package) or 'vldd --config \(target.configPath)' (checkout); 'vldctl submit' still spools while it is down"
            )
        }
        let core = BLAS.coreName
        if let better = BLAS.betterCoreType(chosen: core, supported: BLAS.supportedCoreType()) {
            warn(
                "OpenBLAS uses \(core) kernels; this CPU supports \(better)",
                "vld re-executes with OPENBLAS_CORETYPE=\(better) automatically; set it yourself if VLD_NO_BLAS_REEXEC is set"
            )
        } else {
            ok("OpenBLAS \(core) kernels")
        }
        let version = Connection.libraryVersion
        let parts = version.split(separator: ".").compactMap { Int($0) }
        if parts.count >= 2, parts[0] > 3 || (parts[0] == 3 && parts[1] >= 38) {
            ok("SQLite \(version)")
        } else {
            bad(
                "SQLite \(version) is older than 3.38 (STRICT tables, RETURNING)",
                "install a newer libsqlite3 (Debian 12 has 3.40)")
        }
        var fs = statvfs()
        if statvfs(config.stateDirectory, &fs) == 0 {
            let free = Double(fs.f_bavail) * Double(fs.f_frsize) / Double(1 << 30)
            if free < 1 {
                warn(
                    String(format: "%.1f GiB free under %@", free, config.stateDirectory),
                    "free some space; checkpoints and outboxes need room")
            } else {
                ok(String(format: "%.1f GiB free under the state tree", free))
            }
        }
        if config.executor == .slurm {
            var checks = SlurmCheck.run(config: config)
            if p.flags.contains("--probe") { checks.append(SlurmCheck.probe(config: config)) }
            for check in checks {
                switch check.level {
                case .ok: ok(check.message)
                case .warn: warn(check.message, check.fix)
                case .fail: bad(check.message, check.fix)
                }
            }
        }
        if config.executor == .slurm && !p.flags.contains("--probe") {
            print("note  'vldctl doctor --probe' runs a job on a compute node to check that it sees the state tree")
        }
        print(problems == 0 ? "\nno problems found" : "\n\(problems) problem(s) found")
        return problems == 0 ? 0 : 1
    }
}
