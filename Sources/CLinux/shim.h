// Linux interfaces that Swift's Glibc module does not expose (they need _GNU_SOURCE).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <linux/fs.h>

/// renameat2(2) with RENAME_EXCHANGE: atomically swaps two paths (used to publish a checkpoint
/// directory over an older one without a moment where neither exists).
static inline int clinux_rename_exchange(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE);
}

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing `to`.
static inline int clinux_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}


/// renameat2(2) relative to directory fds, failing with EEXIST instead of replacing `to`
/// (the spool's moves out of incoming/).
static inline int clinux_renameat_noreplace(int fromdir, const char *from, int todir, const char *to) {
    return renameat2(fromdir, from, todir, to, RENAME_NOREPLACE);
}

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/// The self-pipe of the daemon's signal handler (clinux_signal_pipe).
static int clinux_signal_write_fd = -1;

static inline void clinux_signal_to_pipe(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    ssize_t ignored = write(clinux_signal_write_fd, &byte, 1);
    (void)ignored;
    errno = saved;
}

/// Installs a handler for `signals` that writes each signal number as one byte to `writefd`
/// (non-blocking), and unblocks them in the calling thread. Unlike a signalfd this works when
/// threads that do not block the signals exist already: OpenBLAS starts its thread pool when the
/// library loads, before main, so a process-directed SIGTERM could land on one of those threads.
static inline int clinux_signal_pipe(int writefd, const int *signals, int count) {
    clinux_signal_write_fd = writefd;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = clinux_signal_to_pipe;
        sigfillset(&action.sa_mask);
        action.sa_flags = SA_RESTART | (signals[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
        sigaddset(&set, signals[i]);
    }
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/// SO_PEERCRED of a connected unix socket: the peer's pid, uid and gid at connect time.
static inline int clinux_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

#include <spawn.h>

/// pipe2(2) (needs _GNU_SOURCE): a pipe whose ends have `flags` (O_CLOEXEC, O_NONBLOCK).
static inline int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

/// posix_spawn_file_actions_addchdir_np (glibc 2.29+, needs _GNU_SOURCE): the child's cwd.
static inline int clinux_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/// accept4(2) with SOCK_CLOEXEC, no peer address (the peer is identified by SO_PEERCRED).
static inline int clinux_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

#include <sys/prctl.h>

/// prctl(PR_SET_PDEATHSIG): the kernel sends `signo` to this process when its parent dies (a
/// worker checkpoints and stops when vldd is killed, instead of running on as an orphan).
static inline int clinux_set_parent_death_signal(int signo) { return prctl(PR_SET_PDEATHSIG, (unsigned long)signo); }

#include <sys/vfs.h>

/// The statfs(2) magic number of the file system holding `path` (0 with errno set on failure):
/// `vldctl doctor` tells a shared state tree (NFS, Lustre, ...) from a local one.
static inline unsigned long clinux_fs_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return 0;
    return (unsigned long)fs.f_type;
}
