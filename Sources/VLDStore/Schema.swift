// Schema.swift: the queue database's tables and their migrations.
//
// The schema follows specs/ops.md 6.2, with these changes, each for a reason:
// - manifests carry the experiment `name`, its `kind` and `trial_count`, and the state of the
//   grid summary (`summary_path`), so a listing and the "publish the summary when the last trial
//   ends" rule need no JSON parsing;
// - jobs carry `step`, `total_steps` and `loss` next to `progress`, because `vldctl ls` shows
//   them and the worker reports them anyway;
// - times are integer milliseconds since the Unix epoch (not seconds), so intake latency and
//   heartbeats can be measured below one second.
//
// Migrations are numbered by `PRAGMA user_version`; each runs in its own IMMEDIATE transaction,
// after a `VACUUM INTO` copy of a database that already holds data (`<db>.v<N>.bak`).

import Foundation

enum Schema {
    /// 'vldd' in ASCII: identifies the file as a vldd queue (PRAGMA application_id).
    static let applicationID: Int64 = 0x766C_6464

    /// Migration i (0-based) takes user_version i to i+1.
    static let migrations: [String] = [
        """
        CREATE TABLE daemon_boots(
          id INTEGER PRIMARY KEY, boot_uuid TEXT NOT NULL UNIQUE, pid INTEGER NOT NULL,
          version TEXT NOT NULL, started_at INTEGER NOT NULL, stopped_at INTEGER) STRICT;
        CREATE TABLE manifests(
          id INTEGER PRIMARY KEY, source_key TEXT NOT NULL UNIQUE,
          file_name TEXT NOT NULL, submitter_uid INTEGER NOT NULL, sha256 TEXT NOT NULL,
          body TEXT NOT NULL CHECK (json_valid(body)), received_at INTEGER NOT NULL,
          name TEXT NOT NULL, kind TEXT NOT NULL, trial_count INTEGER NOT NULL,
          summary_path TEXT,
          on_failure TEXT NOT NULL DEFAULT 'continue' CHECK (on_failure IN ('continue','stop'))) STRICT;
        CREATE TABLE jobs(
          id INTEGER PRIMARY KEY, manifest_id INTEGER NOT NULL REFERENCES manifests(id),
          trial_index INTEGER NOT NULL, name TEXT NOT NULL, params TEXT NOT NULL CHECK (json_valid(params)),
          state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued','held','running','cancelling','succeeded','failed','cancelled')),
          priority INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0,
          attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
          max_failures INTEGER NOT NULL DEFAULT 3,
          cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0,1)),
          lease_owner INTEGER REFERENCES daemon_boots(id), lease_expires_at INTEGER, heartbeat_at INTEGER,
          pid INTEGER, pgid INTEGER, cpus INTEGER NOT NULL DEFAULT 1, mem_bytes INTEGER,
          progress REAL, progress_msg TEXT, eta_s INTEGER, step INTEGER, total_steps INTEGER, loss REAL,
          exit_code INTEGER, term_signal INTEGER, error TEXT,
          outbox_path TEXT, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
          updated_at INTEGER NOT NULL, UNIQUE(manifest_id, trial_index)) STRICT;
        CREATE INDEX jobs_ready ON jobs(priority DESC, id) WHERE state = 'queued';
        CREATE INDEX jobs_live ON jobs(lease_expires_at) WHERE state IN ('running','cancelling');
        CREATE INDEX jobs_hist ON jobs(finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX jobs_manifest ON jobs(manifest_id);
        CREATE TABLE job_events(
          id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id), at INTEGER NOT NULL,
          from_state TEXT, to_state TEXT NOT NULL, detail TEXT) STRICT;
        CREATE INDEX job_events_job ON job_events(job_id, id);
        CREATE TABLE metrics(
          job_id INTEGER NOT NULL REFERENCES jobs(id), name TEXT NOT NULL, step INTEGER NOT NULL,
          value REAL NOT NULL, at INTEGER NOT NULL, PRIMARY KEY(job_id, name, step)) STRICT, WITHOUT ROWID;
        """,
        // v2 (issue 12): pipelines. A job may need other jobs of its manifest (those of the stages
        // its stage needs); it is claimable only when they all succeeded. `blocked_by` names the
        // need whose failure or cancellation failed it, so that retrying that need re-queues it.
        // A job's own kind, `trial_kind` (stages of one manifest may differ; NULL: the manifest's).
        """
        ALTER TABLE jobs ADD COLUMN stage TEXT;
        ALTER TABLE jobs ADD COLUMN trial_kind TEXT;
        ALTER TABLE jobs ADD COLUMN blocked_by INTEGER REFERENCES jobs(id);
        CREATE TABLE job_needs(
          job_id INTEGER NOT NULL REFERENCES jobs(id), needs_job_id INTEGER NOT NULL REFERENCES jobs(id),
          PRIMARY KEY(job_id, needs_job_id)) STRICT, WITHOUT ROWID;
        CREATE INDEX job_needs_needed ON job_needs(needs_job_id);
        CREATE INDEX jobs_blocked ON jobs(blocked_by) WHERE blocked_by IS NOT NULL;
        """,
        // v3 (issue 16): the Slurm executor. `slurm_job_id` is the Slurm job that runs the job's
        // current (or last) attempt; a live job with one is the cluster's, not a local process,
        // and a restarted daemon adopts it instead of requeueing it. Text: Slurm ids of arrays and
        // heterogeneous jobs are not plain integers. `slurm_state`: Slurm's last word on it
        // ("PENDING (Resources)", "RUNNING"), for `vldctl show`.
        """
        ALTER TABLE jobs ADD COLUMN slurm_job_id TEXT;
        ALTER TABLE jobs ADD COLUMN slurm_state TEXT;
        CREATE INDEX jobs_slurm ON jobs(slurm_job_id) WHERE slurm_job_id IS NOT NULL;
        """,
    ]

    static var latestVersion: Int { migrations.count }

    /// Brings the database to the latest version. Refuses a file that belongs to another
    /// application or was written by a newer vldd.
    static func migrate(_ db: Connection) throws {
        let appID = try db.query("PRAGMA application_id").first?.int("application_id") ?? 0
        var version = try db.query("PRAGMA user_version").first?.int("user_version") ?? 0
        let hasTables = (try db.query("SELECT count(*) AS n FROM sqlite_schema").first?.int("n") ?? 0) > 0
        if appID != 0 && Int64(appID) != applicationID {
            throw StoreError.notQueueDatabase(path: db.path, reason: "its application_id is \(appID), not vldd's")
        }
        if appID == 0 && hasTables {
            throw StoreError.notQueueDatabase(path: db.path, reason: "it holds tables but no vldd application_id")
        }
        if version > latestVersion {
            throw StoreError.newerSchema(path: db.path, found: version, supported: latestVersion)
        }
        if version > 0 && version < latestVersion {
            let backup = db.path + ".v\(version).bak"
            try? FileManager.default.removeItem(atPath: backup)
            try db.run("VACUUM INTO ?", [backup])
        }
        while version < latestVersion {
            try db.immediate {
                // Re-read inside the lock: another process may have migrated meanwhile.
                let current = try db.query("PRAGMA user_version").first?.int("user_version") ?? 0
                guard current == version else { return }
                try db.execute(migrations[version])
                try db.execute("PRAGMA application_id = \(applicationID); PRAGMA user_version = \(version + 1)")
            }
            version = try db.query("PRAGMA user_version").first?.int("user_version") ?? 0
        }
    }
}
