#!/bin/sh
# Demo tool with two modes:
#   collect  - append an observation (time, instance, a value) to data/observations.csv
#   analyse  - read input/observations.csv, write data/summary.txt
set -eu
DATA=/usr/src/app/data
INPUT=/usr/src/app/input
mode="${1:-collect}"
case "$mode" in
  collect)
    file="$DATA/observations.csv"
    [ -f "$file" ] || echo "time,source,value" > "$file"
    value=$(( $(date +%s) % 997 ))
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    echo "$now,${SOURCE:-demo},$value" >> "$file"
    echo "collected one observation at $now from ${SOURCE:-demo}"
    ;;
  analyse)
    if [ ! -f "$INPUT/observations.csv" ]; then
      echo "no observations in the input dataset yet" >&2
      exit 1
    fi
    rows=$(($(wc -l < "$INPUT/observations.csv") - 1))
    {
      echo "observations: $rows"
      echo "latest: $(tail -n 1 "$INPUT/observations.csv")"
    } > "$DATA/summary.txt"
    echo "analysed $rows observations"
    ;;
  *)
    echo "unknown mode $mode (use collect or analyse)" >&2
    exit 2
    ;;
esac
