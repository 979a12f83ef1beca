// SlurmCheck.swift: what `vldctl doctor` checks with `executor = slurm` (issue 16), and what
// vldd logs at start: Slurm's commands are installed, the controller answers and the partition
// is up, and the state tree lies on a file system the compute nodes can see (a network or
// cluster file system, or a one-node cluster on this machine).

import CLinux
import Foundation
import VLDJSON

public struct SlurmCheck: Equatable, Sendable {
    public enum Level: String, Sendable { case ok, warn, fail }
    public var level: Level
    public var message: String
    public var fix: String

    /// Network and cluster file systems by their statfs magic numbers (linux/magic.h and the
    /// file systems' own headers).
    static let sharedFileSystems: [Int: String] = [
        0x6969: "nfs", 0xFF53_4D42: "cifs", 0xFE53_4D42: "smb2", 0x0BD0_0BD0: "lustre", 0x4750_4653: "gpfs",
        0x1983_0326: "beegfs", 0x00C3_6400: "cephfs", 0x6573_5546: "fuse (glusterfs, sshfs, ...)",
        0x0102_1997: "9p", 0x5346_414F: "afs", 0x7461_636F: "ocfs2", 0x0116_1970: "gfs2",
    ]
    static let localFileSystems: [Int: String] = [
        0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlayfs",
        0x2FC1_2FC1: "zfs", 0xF2F5_2010: "f2fs",
    ]

    /// The file system `path` lies on, and whether other machines can see it (nil: unknown).
    public static func fileSystem(of path: String) -> (name: String, shared: Bool?) {
        let type = clinux_fs_type(path)
        guard type != 0 else { return ("unknown (\(String(cString: strerror(errno))))", nil) }
        let magic = Int(UInt32(truncatingIfNeeded: type))
        if let name = sharedFileSystems[magic] { return (name, true) }
        if let name = localFileSystems[magic] { return (name, false) }
        return (String(format: "type 0x%x", magic), nil)
    }

    /// The checks, in order; the cluster ones only when the commands are there.
    public static func run(config: DaemonConfig, client: SlurmClient = SlurmClient()) -> [SlurmCheck] {
        var checks: [SlurmCheck] = []
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        func installed(_ command: String) -> Bool {
            path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(command)") }
        }
        let missing = ["sbatch", "squeue", "scontrol", "scancel"].filter { !installed($0) }
        if !missing.isEmpty {
            checks.append(
                SlurmCheck(
                    level: .fail, message: "executor = slurm, but \(missing.joined(separator: ", ")) not on PATH",
                    fix:
                        "install Slurm's client commands (Debian: apt-get install slurm-client) with this cluster's slurm.conf and munge key"
                ))
            return checks
        }
        checks.append(SlurmCheck(level: .ok, message: "Slurm's commands are installed", fix: ""))
        if !installed("sacct") {
            checks.append(
                SlurmCheck(
                    level: .warn, message: "sacct is not installed",
                    fix:
                        "install it: without accounting, a job the controller has forgotten (MinJobAge) ends as 'unknown to Slurm'"
                ))
        }
        let partition = config.slurm.partition
        do {
            let text = try client.call(
                ["sinfo", "-h", "-o", "%P|%a|%D|%N"] + (partition.map { ["-p", $0] } ?? []))
            let rows = text.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false) }
            if rows.isEmpty {
                checks.append(
                    SlurmCheck(
                        level: .fail, message: "the cluster answers but has no partition \(partition ?? "")",
                        fix: "set slurm_partition to one of 'sinfo -s', or unset it for the default partition"))
            } else if !rows.contains(where: { $0.count > 1 && $0[1] == "up" }) {
                checks.append(
                    SlurmCheck(
                        level: .fail, message: "partition \(rows[0][0]) is \(rows[0].count > 1 ? rows[0][1] : "?")",
                        fix: "ask the cluster's administrator ('scontrol update PartitionName=... State=UP')"))
            } else {
                checks.append(
                    SlurmCheck(
                        level: .ok,
                        message:
                            "the Slurm controller answers; partition \(rows.map { $0[0].replacingOccurrences(of: "*", with: " (default)") }.joined(separator: ", ")) up",
                        fix: ""))
            }
        } catch let e as SlurmError {
            checks.append(
                SlurmCheck(
                    level: .fail, message: "the Slurm controller does not answer: \(e.message)",
                    fix:
                        "check 'scontrol ping', munged, and /etc/slurm/slurm.conf; vldd submits nothing until it answers"
                ))
        } catch {}
        // The state tree: the nodes read job.json and write checkpoints, events and outboxes there.
        let fs = fileSystem(of: config.stateDirectory)
        let nodes =
            ((try? client.call(["sinfo", "-h", "-N", "-o", "%N"] + (partition.map { ["-p", $0] } ?? []))) ?? "")
            .split(separator: "\n").map(String.init)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let here = String(cString: host).split(separator: ".").first.map(String.init) ?? ""
        let onlyHere = !nodes.isEmpty && Set(nodes) == [here]
        if fs.shared == true {
            checks.append(
                SlurmCheck(
                    level: .ok, message: "state_dir \(config.stateDirectory) is on \(fs.name), shared with the nodes",
                    fix: ""))
        } else if onlyHere {
            checks.append(
                SlurmCheck(
                    level: .ok,
                    message: "state_dir is on \(fs.name), local, and the cluster's only node is this machine", fix: ""))
        } else {
            checks.append(
                SlurmCheck(
                    level: fs.shared == false ? .fail : .warn,
                    message:
                        "state_dir \(config.stateDirectory) is on \(fs.name)\(fs.shared == false ? ", local to this machine" : ""); "
                        + (nodes.isEmpty
                            ? "the compute nodes must see it at the same path"
                            : "the nodes (\(nodes.prefix(5).joined(separator: ", "))\(nodes.count > 5 ? ", ..." : "")) must see it at the same path"),
                    fix:
                        "put the state tree on NFS (or another shared file system) mounted at the same path on every node"
                ))
        }
        return checks
    }

    /// Runs a one-minute job on a compute node (srun) that reports the node's name and the inode
    /// numbers it sees for state_dir and state_dir/db; they must be this machine's: the node
    /// sees the same tree at the same path. Waits at most `timeout` seconds for the job.
    public static func probe(config: DaemonConfig, timeout: Double = 60) -> SlurmCheck {
        let root = config.stateDirectory
        var local = stat(), db = stat()
        guard stat(root, &local) == 0, stat(root + "/db", &db) == 0 else {
            return SlurmCheck(
                level: .fail, message: "cannot stat \(root) here", fix: "start vldd once to create the state tree")
        }
        var argv = ["srun", "--nodes=1", "--ntasks=1", "--time=1", "--job-name=vld-doctor-probe", "--quiet"]
        if let p = config.slurm.partition { argv.append("--partition=\(p)") }
        if let a = config.slurm.account { argv.append("--account=\(a)") }
        // The path reaches the node as an argument ($0), never as shell text.
        argv += ["sh", "-c", "hostname -s; stat -c %i \"$0\" \"$0/db\"", root]
        let r = SlurmClient.run(argv, timeout: timeout)
        if r.timedOut {
            return SlurmCheck(
                level: .warn, message: "the probe job did not run within \(Int(timeout)) s (the cluster may be busy)",
                fix: "try again later, or check 'squeue' for a job named vld-doctor-probe")
        }
        let lines = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard r.status == 0, lines.count >= 3 else {
            let said = r.stderr.split(separator: "\n").prefix(3).joined(separator: "; ")
            if lines.isEmpty {
                return SlurmCheck(
                    level: .fail,
                    message: "the probe job did not run: \(DisplayText.escaped(String(said.prefix(300))))",
                    fix: "see Slurm's message (slurm_partition, slurm_account, the partition's limits)")
            }
            return SlurmCheck(
                level: .fail,
                message: "on a compute node, \(root) cannot be read: \(DisplayText.escaped(String(said.prefix(300))))",
                fix: "mount the state tree at the same path on every node (and give the daemon's user access)")
        }
        let node = DisplayText.escaped(lines[0])
        guard lines[1] == "\(local.st_ino)", lines[2] == "\(db.st_ino)" else {
            return SlurmCheck(
                level: .fail,
                message:
                    "node \(node) has a different \(root) (inodes \(lines[1]), \(lines[2]); here \(local.st_ino), \(db.st_ino))",
                fix: "the node sees another directory at that path: mount the shared state tree there")
        }
        return SlurmCheck(level: .ok, message: "compute node \(node) sees this state tree at \(root)", fix: "")
    }
}
