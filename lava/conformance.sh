#!/bin/sh
# The body of lava/conformance.yaml, run on the DUT (POSIX sh; busybox is enough).
# pytest runs inside ROOT (chroot unless ROOT is /); the lava-test-* helpers of
# LAVA's overlay run here, outside it.  Its parameters come from the definition
# as environment variables.  It exits 0 whatever the cases did: the results are
# the lava-test-case calls, and a non-zero exit would end LAVA's run.sh (sh -e)
# before its ENDRUN signal.
set -u
root=${ROOT:-/}
root=${root%/}  # "" when the root is /
repo=${REPO:?REPO must name this repository on the DUT}
python=${PYTHON:-python3}
reports=${REPORTS_DIR:-/tmp/dmabuf-conformance-reports}
signals=/tmp/dmabuf-conformance-signals.$$

in_root() {
    if [ -n "$root" ]; then
        chroot "$root" env PYTHONPATH="$repo" PYTHONDONTWRITEBYTECODE=1 HOME=/tmp "$@"
    else
        env PYTHONPATH="$repo" PYTHONDONTWRITEBYTECODE=1 "$@"
    fi
}

# --basetemp: pytest's default, /tmp/pytest-of-<user>, may be a read-only share on
# an image whose /tmp entries come from elsewhere (lava/dut/init links the host's).
set -- "$repo/cases" --target=local -p no:cacheprovider --reports-dir="$reports" \
    --basetemp="${reports%/}.pytest-tmp" -q -rfE
[ -n "${MARKER:-}" ] && set -- "$@" -m "$MARKER"
[ -n "${WAIVERS:-}" ] && set -- "$@" --waivers="$WAIVERS"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words by design
set -- "$@" ${PYTEST_ARGS:-}

echo "[conformance] uname -r: $(uname -r); pytest $*"
in_root "$python" -m pytest "$@"
echo "[conformance] pytest exit status $?"

if ! in_root "$python" -m conformance.report lava --reports-dir "$reports" > "$signals"; then
    # No summary (pytest refused its command line, or the DUT lacks python3/pytest):
    # a fail LAVA shows, instead of a run with no results at all.
    lava-test-case conformance-summary --result fail
    rm -f "$signals"
    exit 0
fi

# Is this shell's terminal a kernel console?  Then the kernel's printks share the
# line with the signals, and one arriving mid-line would break a signal.
printk=/proc/sys/kernel/printk
tty=$(readlink "/proc/$$/fd/1" 2>/dev/null || true)
tty=${tty#/dev/}
shared=no
case "$tty" in
    console) shared=yes ;;
    tty*) grep -q "^$tty " /proc/consoles 2>/dev/null && shared=yes ;;
esac
saved=
case "${QUIET_CONSOLE:-auto}" in
    yes) quiet=yes ;;
    no) quiet=no ;;
    *) quiet=$shared ;;
esac
if [ "$quiet" = yes ] && [ -w "$printk" ]; then
    read -r saved _ < "$printk"
    echo 1 > "$printk"  # only KERN_EMERG still reaches the consoles
    echo "[conformance] console loglevel $saved -> 1 while signalling (console $tty)"
fi
restore() {
    if [ -n "$saved" ]; then
        echo "$saved" > "$printk"
        saved=
    fi
}
trap restore EXIT INT TERM

current=
while read -r set case result; do
    if [ "$set" != "$current" ]; then
        [ -n "$current" ] && lava-test-set stop
        lava-test-set start "$set"
        current=$set
    fi
    lava-test-case "$case" --result "$result"
done < "$signals"
[ -n "$current" ] && lava-test-set stop
restore
echo "[conformance] console loglevel restored: $(cat "$printk" 2>/dev/null)"
rm -f "$signals"
exit 0
