#!/usr/bin/env bash
# The table and the checks of a runtime-tools run (see runtime-tools.sh).
#
#   bash conformance/runtime-tools-report.sh RESULTS KNOWN TABLE.md RUNTIME…
#
# RESULTS/RUNTIME/PROGRAM.tap holds each program's output and a last line
# `exit N`. KNOWN lists the programs husk may fail although runc or crun pass
# them: `PROGRAM WHERE REASON…`, WHERE being `host` (this machine's doing;
# the cgroup v2 guest runs them) or `suite` (the suite asks for what the
# spec and runc do not). Exits 1 when a check fails.
set -euo pipefail
results=$1
known=$2
table=$3
shift 3
runtimes=("$@")

# One line per program and runtime: PROGRAM RUNTIME PASS OK NOTOK EXIT
summary=$(for rt in "${runtimes[@]}"; do
  for f in "$results/$rt"/*.tap; do
    awk -v prog="$(basename "$f" .tap)" -v rt="$rt" '
      /^ok /     { ok++ }
      /^not ok / { notok++ }
      /^exit /   { code = $2 }
      END {
        pass = (code == 0 && ok > 0 && notok == 0) ? "pass" : "FAIL"
        printf "%s %s %s %d %d %d\n", prog, rt, pass, ok, notok, code
      }' "$f"
  done
done)

{
  printf '| program |'
  for rt in "${runtimes[@]}"; do printf ' %s |' "$rt"; done
  printf '\n|---|'
  for rt in "${runtimes[@]}"; do printf -- '---|'; done
  printf '\n'
  echo "$summary" | awk -v n="${#runtimes[@]}" -v order="${runtimes[*]}" '
    BEGIN { split(order, rts, " ") }
    {
      cell = $3 == "pass" ? "pass (" $4 ")" : "FAIL (" $4 " ok, " $5 " not ok" ($6 != 0 ? ", exit " $6 : "") ")"
      c[$1, $2] = cell
      if (!($1 in seen)) { seen[$1] = 1; progs[++m] = $1 }
      if ($3 == "pass") passed[$2]++
      oks[$2] += $4; notoks[$2] += $5
    }
    END {
      for (i = 1; i <= m; i++) {
        printf "| %s |", progs[i]
        for (j = 1; j <= n; j++) printf " %s |", c[progs[i], rts[j]]
        printf "\n"
      }
      printf "| **programs passed** (of %d) |", m
      for (j = 1; j <= n; j++) printf " **%d** |", passed[rts[j]]
      printf "\n| assertions ok / not ok |"
      for (j = 1; j <= n; j++) printf " %d / %d |", oks[rts[j]], notoks[rts[j]]
      printf "\n"
    }'
} > "$table"
cat "$table"

status=0
listed() { grep -E "^$1[[:space:]]" "$known" 2>/dev/null | head -1 || true; }
get() { echo "$summary" | awk -v p="$1" -v r="$2" -v k="$3" '$1 == p && $2 == r { print $k }'; }
for prog in $(echo "$summary" | awk '{print $1}' | sort -u); do
  [ "$(get "$prog" husk 3)" = pass ] && {
    if [ -n "$(listed "$prog")" ]; then
      echo "runtime-tools: $prog passes now: take it out of $known" >&2
      status=1
    fi
    continue
  }
  others=""
  for rt in "${runtimes[@]}"; do
    [ "$rt" != husk ] && [ "$(get "$prog" "$rt" 3)" = pass ] && others="$others $rt"
  done
  if [ -n "$others" ] && [ -z "$(listed "$prog")" ]; then
    echo "runtime-tools: husk fails $prog, which passes under$others (see target/runtime-tools/results/husk/$prog.tap)" >&2
    status=1
  fi
done
# Not-ok assertions, compared over the programs not listed (a listed one is
# explained: husk's count there says nothing about the others').
# (awk, not grep: an empty list must not end the script under pipefail)
listed_names=$(awk '!/^[[:space:]]*(#|$)/ {print $1}' "$known" 2>/dev/null | tr '\n' ' ')
total() {
  echo "$summary" | awk -v r="$1" -v skip=" $listed_names" '
    $2 == r && index(skip, " " $1 " ") == 0 { s += $5 } END { print s + 0 }'
}
for rt in "${runtimes[@]}"; do
  [ "$rt" = husk ] && continue
  echo "runtime-tools: not-ok assertions outside the listed programs: husk $(total husk), $rt $(total "$rt")"
  if [ "$(total husk)" -gt "$(total "$rt")" ]; then
    echo "runtime-tools: husk has more not-ok assertions than $rt" >&2
    status=1
  fi
done
passed() { echo "$summary" | awk -v r="$1" '$2 == r && $3 == "pass"' | wc -l; }
line="runtime-tools:"
for rt in "${runtimes[@]}"; do line="$line $rt $(passed "$rt")/$(echo "$summary" | awk -v r="$rt" '$2 == r' | wc -l)"; done
echo "$line programs passed; $( [ $status = 0 ] && echo 'husk meets the bar' || echo 'husk does NOT meet the bar')"
exit $status
