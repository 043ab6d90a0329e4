#!/bin/sh
# Stands in for adb in tests: replays the recorded outputs kept in the folder beside it.
#   error.txt     adb's own error (stderr, exit 1) for every command, if present
#   serial.txt    the one connected device's serial
#   supplies.txt  what `grep -sH . /sys/class/power_supply/*/...` prints on the device
#   readings.txt  one `cat` answer per line, values separated by commas; past the end the
#                 device is gone
#   odpm.txt, odpm.N.txt  the PowerStats HAL 2.0 dump (the N-th read's, if present)
#   calls.log     every shell command, appended
dir=$(dirname "$0")
if [ -f "$dir/error.txt" ]; then
    cat "$dir/error.txt" >&2
    exit 1
fi
serial=$(cat "$dir/serial.txt")
if [ "$1" = "-s" ]; then
    if [ "$2" != "$serial" ]; then
        echo "error: device '$2' not found" >&2
        exit 1
    fi
    shift 2
fi
case "$1" in
    get-serialno) echo "$serial"; exit 0 ;;
    shell) shift ;;
    *) echo "fake adb: unexpected command: $*" >&2; exit 1 ;;
esac
echo "$*" >> "$dir/calls.log"
case "$1" in
    grep)
        cat "$dir/supplies.txt"
        # grep exits 2 when a glob matched no file (no power_now on a phone).
        exit 2 ;;
    dumpsys)
        if [ -f "$dir/odpm.txt" ]; then cat "$dir/odpm.txt"; else echo "Can't find service: $2"; fi
        exit 0 ;;
    lshal)
        echo "fake adb: no HAL 1.0 power stats" >&2
        exit 1 ;;
    cat)
        n=$(cat "$dir/count.txt" 2>/dev/null || echo 0)
        n=$((n + 1))
        echo "$n" > "$dir/count.txt"
        line=$(sed -n "${n}p" "$dir/readings.txt")
        if [ -z "$line" ]; then
            echo "error: device '$serial' not found" >&2
            exit 1
        fi
        echo "$line" | tr ',' '\n'
        case "$*" in
            *dumpsys*)
                if [ -f "$dir/odpm.$n.txt" ]; then cat "$dir/odpm.$n.txt"; else cat "$dir/odpm.txt"; fi ;;
        esac
        exit 0 ;;
esac
echo "fake adb: unexpected shell command: $*" >&2
exit 127
