// StopRequest.swift: SIGINT/SIGTERM as a flag a running trial polls (RunContext.shouldStop), so
// a stop checkpoints and returns instead of killing the process mid-write.

import Foundation

nonisolated(unsafe) private var stopFlag: sig_atomic_t = 0

public enum StopRequest {
    /// True once SIGINT or SIGTERM arrived (after `install`).
    public static var requested: Bool { stopFlag != 0 }

    /// Asks for a stop from code (a parent that is gone, say).
    public static func request() { stopFlag = 1 }

    /// Handles SIGINT and SIGTERM by setting the flag, and unblocks them: a parent may have
    /// spawned this process with them blocked (the signal mask survives exec).
    public static func install() {
        signal(SIGINT) { _ in stopFlag = 1 }
        signal(SIGTERM) { _ in stopFlag = 1 }
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
