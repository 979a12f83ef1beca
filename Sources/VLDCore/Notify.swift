// Notify.swift: the sd_notify(3) protocol through libsystemd.
//
// READY=1 after the first full rescan, STATUS= with queue counts, WATCHDOG=1 when the watchdog
// is enabled (at half its period, only after a full loop iteration and a database query),
// STOPPING=1 and RELOADING=1. Without NOTIFY_SOCKET (not under systemd) every call is a no-op.
// Workers never see NOTIFY_SOCKET: their environment is built from scratch.

import CSystemd
import Foundation

public struct ServiceNotifier {
    /// Microseconds between WATCHDOG=1 pings, or nil when the watchdog is off.
    public let watchdogInterval: Double?

    public init() {
        var usec: UInt64 = 0
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 {
            watchdogInterval = Double(usec) / 1e6 / 2
        } else {
            watchdogInterval = nil
        }
    }

    public func send(_ state: String) {
        _ = csystemd_notify(state)
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    public func status(_ text: String) { send("STATUS=\(text)") }
    public func stopping() { send("STOPPING=1\nSTATUS=stopping") }
    public func watchdog() { send("WATCHDOG=1") }

    /// RELOADING=1 needs MONOTONIC_USEC (systemd 253+ checks it for Type=notify-reload).
    public func reloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        send("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// Asks systemd for more time to stop or start (e.g. while workers flush checkpoints).
    public func extendTimeout(seconds: Double) { send("EXTEND_TIMEOUT_USEC=\(UInt64(seconds * 1e6))") }
}
