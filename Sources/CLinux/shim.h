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
