#!/bin/sh
# run-suite.sh STACK_MODE IO [unprivileged]
#
# Runs every Check binary of the suite ($CHECK_BINS, set by make check) in
# one mode of the matrix: GORO_STACK_MODE=STACK_MODE and GORO_IO=IO, where
# "auto" leaves the runtime to choose.  With "unprivileged" the binaries run
# as the user nobody (no CAP_SYS_PTRACE, no /dev/userfaultfd: the runtime
# must fall back to user-mode-only userfaultfd).  A binary that exits 77
# is skipped; the script exits 77 if all were skipped.
set -u
stack=$1
io=$2
who=${3:-root}
unset GORO_STACK_MODE GORO_IO
[ "$stack" = auto ] || export GORO_STACK_MODE="$stack"
[ "$io" = auto ] || export GORO_IO="$io"
: "${CK_DEFAULT_TIMEOUT:=60}"
export CK_DEFAULT_TIMEOUT

bindir=.
runner=""
if [ "$who" = unprivileged ]; then
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
		echo "SKIP: needs root and setpriv to drop to nobody"
		exit 77
	fi
	# The build tree may not be readable by nobody (a checkout under
	# /root): run copies of the binaries from a private folder.
	bindir=$(mktemp -d /tmp/goro-nobody.XXXXXX)
	for t in $CHECK_BINS; do
		mkdir -p "$bindir/$(dirname "$t")"
		cp "$t" "$bindir/$t"
	done
	chmod -R a+rX "$bindir"
	runner="setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --"
fi

rc=0
ran=0
for t in $CHECK_BINS; do
	echo "== $t (stack=$stack io=$io user=$who)"
	if [ "$who" = unprivileged ]; then (cd /tmp && $runner "$bindir/$t"); else "./$t"; fi
	r=$?
	case $r in
	0) ran=$((ran + 1)) ;;
	77) echo "   skipped" ;;
	*) echo "   FAILED with status $r"; rc=1; ran=$((ran + 1)) ;;
	esac
done
[ "$who" = unprivileged ] && rm -rf "$bindir"
[ $rc = 0 ] && [ $ran = 0 ] && exit 77
exit $rc
