#!/bin/sh
# packaging/test-install.sh DEB: installs the package on this machine (root, no systemd as PID 1),
# checks the user, group, directories and modes, runs vldd as user vldd, has a member of group
# vldd drop a manifest and checks the published results, checks that a user outside the group
# cannot submit, then removes and purges the package and checks nothing of it is left.
# Creates and deletes the users vldtest and vldother. Exit 0 when every check passes.
set -eu
deb=${1:?usage: packaging/test-install.sh dist/vldd_VERSION_ARCH.deb}
[ "$(id -u)" = 0 ] || { echo "test-install: run as root" >&2; exit 1; }
deb=$(readlink -f "$deb")
cd /  # vldctl must find /etc/vldd/vldd.conf, not a checkout's etc/
fail() { echo "test-install: FAIL: $*" >&2; exit 1; }
check_mode() { # path mode owner:group
    got=$(stat -c '%a %U:%G' "$1") || fail "$1 is missing"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}
daemon=
cleanup() {
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    userdel -r vldtest 2>/dev/null || true
    userdel -r vldother 2>/dev/null || true
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
getent passwd vldd >/dev/null || fail "no user vldd"
getent group vldd >/dev/null || fail "no group vldd"
check_mode /var/lib/vldd 750 vldd:vldd
check_mode /var/lib/vldd/spool/incoming 1730 vldd:vldd
check_mode /var/lib/vldd/spool/tmp 1730 vldd:vldd
check_mode /var/lib/vldd/spool/rejected 2750 vldd:vldd
check_mode /var/lib/vldd/db 700 vldd:vldd
check_mode /var/lib/vldd/outbox 2750 vldd:vldd
check_mode /etc/vldd/vldd.conf 644 root:root
/usr/sbin/vldd --version | grep -q "vldd " || fail "vldd --version"
man -w vldd >/dev/null 2>&1 || [ -f /usr/share/man/man8/vldd.8.gz ] || fail "no vldd(8)"
completion=$(dpkg -L vldd | grep '/bash-completion/completions/vldctl$') || fail "no bash completion for vldctl"
words=$(bash -c "source $completion && COMP_WORDS=(vldctl run --t) COMP_CWORD=2 && _vldctl && echo \"\${COMPREPLY[*]}\"") \
    || fail "the bash completion does not load"
[ "$words" = "--threads --trials" ] || fail "bash completion of 'vldctl run --t' gave '$words'"
echo "ok: installed; user, group, directories and modes; bash completion"

if command -v systemd-analyze >/dev/null 2>&1; then
    verify=$(systemd-analyze verify --man=no /lib/systemd/system/vldd.service 2>&1) || fail "systemd-analyze verify: $verify"
    [ -z "$verify" ] || fail "systemd-analyze verify printed: $verify"
    # Exposure 2.0 or better (0 = fully sandboxed, 10 = not at all).
    score=$(systemd-analyze security --offline=true --threshold=20 /lib/systemd/system/vldd.service 2>&1 | tail -1) \
        || fail "systemd-analyze security above 2.0: $score"
    echo "ok: systemd-analyze verify is clean; $score"
fi

# systemd's RuntimeDirectory=vldd, by hand.
install -d -o vldd -g vldd -m 0750 /run/vldd
setpriv --reuid=vldd --regid=vldd --init-groups /usr/sbin/vldd --config /etc/vldd/vldd.conf 2>/tmp/vldd-test-install.log &
daemon=$!
i=0
until [ -S /run/vldd/control.sock ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "vldd did not start: $(cat /tmp/vldd-test-install.log)"
    sleep 0.1
done
echo "ok: vldd runs as user vldd"

useradd -m -G vldd vldtest
useradd -m vldother
manifest=/tmp/vld-install-test.json
cat > $manifest <<'JSON'
{"name": "install-test", "resources": {"threads": 1}, "task": {"type": "bios", "people": 20, "exposures": 10},
 "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 5, "batch": 8}}
JSON
chmod 0644 $manifest
runuser -u vldtest -- cp $manifest /var/lib/vldd/spool/incoming/install-test.json || fail "a member of vldd cannot drop a manifest"
i=0
until ls /var/lib/vldd/outbox/*-install-test/results.json >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 600 ] || fail "no results: $(tail -5 /tmp/vldd-test-install.log)"
    sleep 0.1
done
out=$(ls -d /var/lib/vldd/outbox/*-install-test)
[ "$(stat -c %U "$out")" = vldd ] || fail "$out is not owned by vldd"
runuser -u vldtest -- test -r "$out/results.json" || fail "a member of vldd cannot read the results"
runuser -u vldtest -- vldctl ls --all | grep -q "install-test.*succeeded" || fail "vldctl ls as a member"
echo "ok: a member's manifest ran; results published at $out"

if runuser -u vldother -- cp $manifest /var/lib/vldd/spool/incoming/other.json 2>/dev/null; then fail "a non-member dropped a manifest"; fi
if runuser -u vldother -- vldctl submit $manifest >/dev/null 2>&1; then fail "a non-member submitted"; fi
if runuser -u vldother -- ls /var/lib/vldd/db >/dev/null 2>&1; then fail "a non-member lists db/"; fi
if runuser -u vldtest -- ls /var/lib/vldd/db >/dev/null 2>&1; then fail "a member lists db/"; fi
if runuser -u vldtest -- ls /var/lib/vldd/spool/incoming >/dev/null 2>&1; then fail "a member lists incoming/"; fi
echo "ok: a non-member cannot submit; members cannot read db/ or list incoming/"

kill -TERM "$daemon"; wait "$daemon" || fail "vldd did not stop cleanly"
daemon=

# An upgrade (here: reinstalling the same package) keeps conffile edits, the database and results.
echo "# edited by test-install" >> /etc/vldd/vldd.conf
db_before=$(md5sum < /var/lib/vldd/db/vldd.sqlite3)
dpkg -i "$deb" >/dev/null
grep -q "edited by test-install" /etc/vldd/vldd.conf || fail "the upgrade replaced the edited conffile"
[ "$(md5sum < /var/lib/vldd/db/vldd.sqlite3)" = "$db_before" ] || fail "the upgrade changed the database"
[ -f "$out/results.json" ] || fail "the upgrade lost results"
echo "ok: an upgrade keeps the edited conffile, the database and the outbox"

dpkg -r vldd >/dev/null
[ ! -e /usr/sbin/vldd ] && [ ! -e /usr/bin/vldctl ] || fail "binaries left after remove"
[ -d /var/lib/vldd/outbox ] || fail "remove deleted the state"
[ -f /etc/vldd/vldd.conf ] || fail "remove deleted the conffile"
dpkg --purge vldd >/dev/null
for path in /var/lib/vldd /etc/vldd /usr/sbin/vldd /usr/bin/vldctl /lib/systemd/system/vldd.service \
            /usr/lib/sysusers.d/vldd.conf /usr/lib/tmpfiles.d/vldd.conf /usr/share/doc/vldd /run/vldd; do
    [ ! -e "$path" ] || fail "$path left after purge"
done
echo "ok: remove keeps data and the conffile; purge leaves nothing"
rm -f $manifest /tmp/vldd-test-install.log
