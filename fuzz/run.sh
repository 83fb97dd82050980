#!/usr/bin/env bash
# make fuzz: runs every Fuzz* target of each package in FUZZPKGS for FUZZTIME.
#
# A target that fails without writing a crasher under
# <pkg>/testdata/fuzz/<target>/ hit the Go fuzz coordinator's race at the
# -fuzztime deadline ("context deadline exceeded", golang/go#75804, fixed in
# Go 1.27): that is reported as a flake and run once more; a second such
# failure, or any crasher, fails the run.
set -uo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZFLAGS=${FUZZFLAGS:--fuzzminimizetime 2s}
FUZZPKGS=${FUZZPKGS:-./proto ./loop ./route ./edge ./gateway ./fuzz}

fail=0
for pkg in $FUZZPKGS; do
  targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz') || { echo "cannot list $pkg"; exit 1; }
  for t in $targets; do
    dir=$pkg/testdata/fuzz/$t
    for attempt in 1 2; do
      before=$(ls "$dir" 2>/dev/null | sort)
      echo "== $pkg $t ($FUZZTIME)"
      # shellcheck disable=SC2086 # FUZZFLAGS is a list of flags
      if $GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" $FUZZFLAGS "$pkg"; then
        break
      fi
      after=$(ls "$dir" 2>/dev/null | sort)
      if [[ $before != "$after" ]]; then
        echo "FAIL: $t wrote a crasher:" $(comm -13 <(echo "$before") <(echo "$after"))
        fail=1
        break
      fi
      if ((attempt == 2)); then
        echo "FAIL: $t failed twice without writing a crasher"
        fail=1
      else
        echo "flake: $t failed without writing a crasher (golang/go#75804); running it once more"
      fi
    done
  done
done
exit $fail
