#!/bin/sh
# packaging/build-deb.sh: builds vldd_<version>_amd64.deb from a checkout.
#
# The binaries are built with the Swift standard library and Foundation linked statically
# (--static-swift-stdlib; Swift 6.3.1, see specs/ops.md finding 0.9), stripped, into a staged
# tree that dpkg-deb packs with root ownership. Depends: is computed by dpkg-shlibdeps from the
# shared libraries the binaries actually link. Output: dist/vldd_<version>_amd64.deb.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
version=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/VLDModel/Checkpoint.swift)
[ -n "$version" ] || { echo "build-deb: cannot read the version" >&2; exit 1; }
revision=1
arch=$(dpkg --print-architecture)
scratch=.build-deb

if [ "${VLD_DEB_SKIP_BUILD:-}" != 1 ]; then
    swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product vldd
    swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product vldctl
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/vldd"
doc="$stage/usr/share/doc/vldd"
install -d "$stage/DEBIAN" "$doc/examples"
install -D -m 0755 "$scratch/release/vldd" "$stage/usr/sbin/vldd"
install -D -m 0755 "$scratch/release/vldctl" "$stage/usr/bin/vldctl"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/sbin/vldd" "$stage/usr/bin/vldctl"
install -D -m 0644 packaging/vldd.service "$stage/lib/systemd/system/vldd.service"
install -D -m 0644 packaging/sysusers.conf "$stage/usr/lib/sysusers.d/vldd.conf"
install -D -m 0644 packaging/tmpfiles.conf "$stage/usr/lib/tmpfiles.d/vldd.conf"
install -D -m 0644 packaging/vldd.conf "$stage/etc/vldd/vldd.conf"
install -D -m 0644 packaging/vldctl.bash-completion "$stage/usr/share/bash-completion/completions/vldctl"
for page in packaging/man/*.[0-9]; do
    section=${page##*.}
    install -d "$stage/usr/share/man/man$section"
    gzip -9n < "$page" > "$stage/usr/share/man/man$section/$(basename "$page").gz"
done
install -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n < packaging/debian/changelog > "$doc/changelog.Debian.gz"
install -m 0644 examples/*.json "$doc/examples/"
install -m 0644 packaging/slurm-override.conf "$doc/slurm-override.conf"
install -D -m 0644 packaging/lintian/vldd "$stage/usr/share/lintian/overrides/vldd"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
echo /etc/vldd/vldd.conf > "$stage/DEBIAN/conffiles"

# Depends from the libraries the binaries link (dpkg-shlibdeps wants a debian/control to read).
mkdir -p "$work/shlibs/debian"
printf 'Source: vld\n\nPackage: vldd\nArchitecture: any\n' > "$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$stage/usr/sbin/vldd" "$stage/usr/bin/vldctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: vldd
Version: $version-$revision
Architecture: $arch
Maintainer: vld developers <vld@example.org>
Installed-Size: $size
Depends: $depends, adduser
Section: science
Priority: optional
Homepage: https://github.com/vld-lab/vld
Description: research lab in a box for small language-model experiments
 vldd queues experiment manifests dropped into /var/lib/vldd/spool/incoming
 (or submitted with vldctl) in SQLite, trains and evaluates small transformer
 language models on its own threaded CPU engine, and publishes results, plots
 and checkpoints to /var/lib/vldd/outbox. It runs under systemd as the static
 user vldd; members of group vldd may submit.
CONTROL
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
mkdir -p dist
out="dist/vldd_${version}-${revision}_${arch}.deb"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)} \
    dpkg-deb --root-owner-group -Zxz -z6 --build "$stage" "$out" >/dev/null
echo "$root/$out"
