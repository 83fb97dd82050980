#!/usr/bin/env bash
# Builds edgewamp's release into $DIST (make release VERSION=x.y.z):
#
#   edgewamp-VERSION-linux-ARCH             static, stripped binary
#   edgewamp-VERSION-linux-ARCH.tar.gz      binary, unit, sample configs (mesh/: the mesh's), man page, licenses
#   edgewamp_VERSION_DEBARCH.deb            Debian package (dpkg-deb)
#   SHA256SUMS
#   SHA256SUMS.sig                          with SIGN_KEY: an SSH signature of SHA256SUMS
#
# for ARCH in $ARCHES (amd64 arm64 armv7; armv7 is Debian's armhf).
#
# Reproducible: the same commit and toolchain give the same bytes.
# CGO_ENABLED=0, -trimpath, an empty build id, version/commit/date stamped
# with -X, the date and every archive timestamp from SOURCE_DATE_EPOCH
# (default: the commit's time), sorted archive members owned by root.
# The builder's Go environment does not reach the binaries: build() sets
# GOFLAGS=-buildvcs=false (no -tags, -ldflags or vcs stamp from a GOFLAGS
# exported for tests: edgewamp_testhooks would compile the test hooks in),
# GOAMD64=v1 and GOARM64=v8.0 (the baseline CPUs: an x86-64 v3 build dies
# with SIGILL on the Atoms and older Celerons of many edge boxes),
# GOFIPS140=off, and unsets GOEXPERIMENT; a GOEXPERIMENT set in go env's
# file (go env -w) is refused, since an empty variable does not override it.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022 # modes of staged files and directories do not depend on the caller

version=${1:?usage: release.sh VERSION}
GO=${GO:-go}
DIST=${DIST:-dist}
ARCHES=${ARCHES:-amd64 arm64 armv7}
DEB_MAINTAINER=${DEB_MAINTAINER:-edgewamp developers <edgewamp@users.noreply.github.com>}
# One line: a newline would start a field of its own in the control file.
if [[ $DEB_MAINTAINER == *$'\n'* || $DEB_MAINTAINER == *$'\r'* ]]; then
  echo "release: DEB_MAINTAINER must be one line (\"Name <email>\")" >&2
  exit 2
fi
# SIGN_KEY: an SSH private key (ed25519, say), or the public key of one an
# ssh-agent holds, that signs SHA256SUMS (ssh-keygen -Y sign, namespace
# sigNamespace); unset: the release is not signed.
SIGN_KEY=${SIGN_KEY:-}
# DEB_XZ_LEVEL: the .deb's xz level (dpkg-deb -z), 6 as dpkg's default.
# The tests build six packages and lower it to 1 (about 3 s of CPU per
# package instead of 23 on a 28 MiB binary); a release keeps 6.
DEB_XZ_LEVEL=${DEB_XZ_LEVEL:-6}
[[ $DEB_XZ_LEVEL =~ ^[0-9]$ ]] || { echo "release: DEB_XZ_LEVEL must be a digit 0-9, not $DEB_XZ_LEVEL" >&2; exit 2; }
sigNamespace=edgewamp-release

# Debian versions: upstream versions start with a digit; no hyphen here
# (the package is native, built from this tree).
if [[ ! $version =~ ^[0-9]+(\.[0-9]+)*([~+.][0-9A-Za-z.~+]*)?$ ]]; then
  echo "release: VERSION must look like 1.2.3 (digits and dots; ~rc1 or +git suffixes allowed), not \"$version\"" >&2
  exit 2
fi
for tool in git dpkg-deb sha256sum tar gzip; do
  command -v "$tool" >/dev/null || { echo "release: $tool is required" >&2; exit 2; }
done
# The signing key is checked before anything is built, not after.
if [[ -n $SIGN_KEY ]]; then
  command -v ssh-keygen >/dev/null || { echo "release: SIGN_KEY needs ssh-keygen (apt-get install openssh-client)" >&2; exit 2; }
  [[ -r $SIGN_KEY ]] || { echo "release: SIGN_KEY $SIGN_KEY is not a readable file" >&2; exit 2; }
fi

# GOEXPERIMENT: build() unsets the variable, but go env's file (go env -w)
# would still apply, and an empty variable does not override it.
goexp=$(env -u GOEXPERIMENT "$GO" env GOEXPERIMENT)
if [[ -n $goexp ]]; then
  echo "release: GOEXPERIMENT=$goexp is set in $(env -u GOEXPERIMENT "$GO" env GOENV) (go env -w): a release is built without experiments; go env -u GOEXPERIMENT" >&2
  exit 2
fi

commit=$(git rev-parse HEAD)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
  commit+="-dirty"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -buildid= -X main.version=$version -X main.commit=$commit -X main.date=$date"

mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Reproducible archives: fixed mtimes, root ownership, sorted names.
tarflags=(--sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

# licenses BINARY [deb]: the Go distribution's license and that of every
# module linked into BINARY, from the module cache (MIT and BSD ask for
# their notices to travel with binaries). For the .deb, the full text of
# the Apache License 2.0 is replaced by Debian's common copy (lintian),
# keeping the module's own copyright notice.
licenses() {
  local bin=$1 mode=${2:-} modcache goroot
  modcache=$("$GO" env GOMODCACHE)
  goroot=$("$GO" env GOROOT)
  echo "The edgewamp binary includes the Go standard library and these modules."
  echo
  echo "==== Go ($("$GO" env GOVERSION)) ===="
  cat "$goroot/LICENSE"
  "$GO" version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r mod ver; do
    # Module cache paths escape upper-case letters as !lower-case.
    local dir f found=
    dir="$modcache/$(sed -E 's/([A-Z])/!\L\1/g' <<<"$mod")@$ver"
    echo
    echo "==== $mod $ver ===="
    for f in LICENSE LICENSE.txt LICENSE.md COPYING LICENCE; do
      [[ -f $dir/$f ]] || continue
      found=1
      if [[ $mode == deb ]] && grep -q 'TERMS AND CONDITIONS FOR USE' "$dir/$f"; then
        # The full Apache text: keep the notice filled in after it.
        awk '/END OF TERMS AND CONDITIONS/ { after = 1; next }
             after && /Copyright/ { show = 1 }
             show { print }' "$dir/$f"
      else
        cat "$dir/$f"
      fi
      break
    done
    [[ -n $found ]] || echo "(no license file found in the module)"
    [[ -f $dir/NOTICE ]] && { echo; echo "NOTICE:"; cat "$dir/NOTICE"; }
    if [[ $mode == deb ]] && grep -qs 'Apache License' "$dir/$f" "$dir/NOTICE"; then
      echo
      echo "On Debian systems, the complete text of the Apache License 2.0 is in"
      echo "/usr/share/common-licenses/Apache-2.0."
    fi
  done
}

build() { # build ARCH → $DIST/edgewamp-$version-linux-$ARCH
  local arch=$1 goarch goarm=
  case $arch in
    amd64) goarch=amd64 ;;
    arm64) goarch=arm64 ;;
    armv7) goarch=arm goarm=7 ;;
    *) echo "release: unknown architecture $arch (amd64, arm64, armv7)" >&2; exit 2 ;;
  esac
  echo "release: building linux/$arch"
  # -buildvcs=false whatever GOFLAGS says: the commit is stamped with -X;
  # the go command's vcs.* settings would change the bytes with the
  # builder's GOFLAGS and with any untracked file (vcs.modified). GOFLAGS
  # itself is replaced, and the CPU levels pinned (the header says why).
  env -u GOEXPERIMENT CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm GOAMD64=v1 GOARM64=v8.0 GOFIPS140=off \
    GOFLAGS=-buildvcs=false \
    "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$DIST/edgewamp-$version-linux-$arch" ./cmd/edgewamp
}

debarch() {
  case $1 in amd64) echo amd64 ;; arm64) echo arm64 ;; armv7) echo armhf ;; esac
}

# The mesh's samples (README, "Mesh"), in examples/mesh of the package and
# mesh/ of the tarball.
meshSamples=(deploy/mesh/README.md deploy/mesh/cluster-node.yaml deploy/mesh/hub.yaml deploy/mesh/edge-leaf.yaml)

# stage ARCH DIR: the files of the package, as they are installed.
stage() {
  local arch=$1 root=$2 doc
  doc=$root/usr/share/doc/edgewamp
  install -D -m 0755 "$DIST/edgewamp-$version-linux-$arch" "$root/usr/bin/edgewamp"
  install -D -m 0644 deploy/edgewamp.service "$root/usr/lib/systemd/system/edgewamp.service"
  install -D -m 0644 deploy/debian/sysusers.conf "$root/usr/lib/sysusers.d/edgewamp.conf"
  install -D -m 0644 deploy/edgewamp.yaml "$root/etc/edgewamp/edgewamp.yaml"
  install -d -m 0755 "$doc/examples"
  install -m 0644 deploy/small-board.yaml deploy/secure.yaml deploy/edgewamp-notify-reload.conf "$doc/examples/"
  install -d -m 0755 "$doc/examples/mesh"
  install -m 0644 "${meshSamples[@]}" "$doc/examples/mesh/"
  install -m 0644 README.md "$doc/README.md"
  gzip -9n <"$doc/README.md" >"$doc/README.md.gz" && rm "$doc/README.md"
  { cat deploy/debian/copyright; echo; licenses "$DIST/edgewamp-$version-linux-$arch" deb; } >"$doc/copyright"
  chmod 0644 "$doc/copyright"
  # Go binaries are static by design (CGO_ENABLED=0); lintian knows that
  # only when it sees a Go source package.
  install -D -m 0644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/edgewamp"
  printf 'edgewamp (%s) unstable; urgency=medium\n\n  * Release %s (commit %s).\n\n -- %s  %s\n' \
    "$version" "$version" "$commit" "$DEB_MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" |
    gzip -9n >"$doc/changelog.gz"
  install -d -m 0755 "$root/usr/share/man/man1"
  sed -e "s/@VERSION@/$version/" -e "s/@DATE@/${date%%T*}/" deploy/debian/edgewamp.1 |
    gzip -9n >"$root/usr/share/man/man1/edgewamp.1.gz"
  chmod 0644 "$doc/changelog.gz" "$root/usr/share/man/man1/edgewamp.1.gz"
}

# control ARCH SIZE: the package's DEBIAN/control, from control.in. The
# maintainer goes in as it is: in sed's replacement a & (a team, "Smith &
# Jones") stood for the placeholder, a | ended the command and a backslash
# was lost. (The replacement is quoted: bash 5.2's patsub_replacement
# makes an unquoted & the match there too.)
control() {
  local c
  c=$(sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$(debarch "$1")/" -e "s/@SIZE@/$2/" deploy/debian/control.in)
  printf '%s\n' "${c//@MAINTAINER@/"$DEB_MAINTAINER"}"
}

deb() { # deb ARCH
  local arch=$1 root size
  root=$work/deb-$arch
  stage "$arch" "$root"
  install -d -m 0755 "$root/DEBIAN"
  install -m 0755 deploy/debian/preinst deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
  install -m 0644 deploy/debian/conffiles "$root/DEBIAN/conffiles"
  (cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
    LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
  chmod 0644 "$root/DEBIAN/md5sums"
  # Installed-Size in KiB as dpkg-gencontrol counts it (each file rounded
  # up, one per directory), not du's blocks: the same on any filesystem.
  size=$(cd "$root" && find . -path ./DEBIAN -prune -o \( -type f -printf '%s\n' \) -o \( -type d -printf '1024\n' \) |
    awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
  control "$arch" "$size" >"$root/DEBIAN/control"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz -z"$DEB_XZ_LEVEL" --build "$root" "$DIST/edgewamp_${version}_$(debarch "$arch").deb" >/dev/null
  echo "release: $DIST/edgewamp_${version}_$(debarch "$arch").deb"
}

tarball() { # tarball ARCH
  local arch=$1 name dir
  name=edgewamp-$version-linux-$arch
  dir=$work/tar-$arch/$name
  install -d "$dir"
  install -m 0755 "$DIST/$name" "$dir/edgewamp"
  install -m 0644 deploy/edgewamp.service deploy/edgewamp-notify-reload.conf deploy/edgewamp.yaml \
    deploy/small-board.yaml deploy/secure.yaml README.md "$dir/"
  install -m 0644 deploy/debian/sysusers.conf "$dir/edgewamp.sysusers.conf"
  install -d -m 0755 "$dir/mesh"
  install -m 0644 "${meshSamples[@]}" "$dir/mesh/"
  sed -e "s/@VERSION@/$version/" -e "s/@DATE@/${date%%T*}/" deploy/debian/edgewamp.1 >"$dir/edgewamp.1"
  { cat deploy/debian/copyright; echo; licenses "$DIST/$name"; } >"$dir/LICENSES"
  tar "${tarflags[@]}" -C "$work/tar-$arch" -cf - "$name" | gzip -9n >"$DIST/$name.tar.gz"
  echo "release: $DIST/$name.tar.gz"
}

for arch in $ARCHES; do
  build "$arch"
  tarball "$arch"
  deb "$arch"
done

# This version's artifacts in $DIST (of this run's ARCHES and any built
# before into the same directory), by their exact names: not those of
# other versions (1.2.3~rc1 and 1.2.3.1 both contain 1.2.3).
(cd "$DIST" && for a in amd64 arm64 armv7; do
  for f in "edgewamp-$version-linux-$a" "edgewamp-$version-linux-$a.tar.gz" "edgewamp_${version}_$(debarch "$a").deb"; do
    if [[ -f $f ]]; then printf '%s\n' "$f"; fi
  done
done | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "release: $DIST/SHA256SUMS"
cat "$DIST/SHA256SUMS"

# A signature left by an earlier run does not sign this SHA256SUMS: it goes,
# signed again or not, so that no stale signature is ever published.
rm -f "$DIST/SHA256SUMS.sig"
if [[ -n $SIGN_KEY ]]; then
  ssh-keygen -Y sign -q -f "$SIGN_KEY" -n "$sigNamespace" "$DIST/SHA256SUMS"
  echo "release: $DIST/SHA256SUMS.sig (ssh-keygen -Y sign, namespace $sigNamespace)"
fi
