#include <systemd/sd-daemon.h>
// sd_notifyf is variadic; callers format in Swift and pass one string to sd_notify.
static inline int csystemd_notify(const char *state) { return sd_notify(0, state); }
