# The image test's device scenario, host side (sourced by run.sh): read the guest's FKSCN lines off the
# second serial port's log, print them as a table and decide. Every step in SCENARIO_STEPS must report
# "pass"; a step the guest could not run says "notrun" with the reason and is listed, never counted as
# passed; any step that failed fails the test, listed or not.
SCENARIO_STEPS="printer.gadget setup hid.grabbed hid.scan_enter hid.scan_pause hid.unplug hid.replug ina219.read
  ina219.change clock.timedated printer.usblp usb.mount usb.replica usb.unplug usb.replug services.alive
  update.good update.broken wifi.hotspot wifi.phone wifi.online wifi.rejoin"

# scenario_lines REPORT_LOG: the last scenario's lines, start to end (nothing if it has not ended)
scenario_lines() {
  tr -d '\r' <"$1" | awk '/^FKSCN start/ { buf = ""; on = 1 } on { buf = buf $0 "\n" } /^FKSCN end/ && on { done = buf; on = 0 } END { printf "%s", done }'
}

# scenario_table LINES: one line per step: name, result (NOT RUN for notrun), seconds, detail
scenario_table() {
  sed -n 's/^FKSCN step=\([^ ]*\) result=\([^ ]*\) seconds=\([^ ]*\) detail=\(.*\)$/\1|\2|\3|\4/p' <<<"$1" \
    | while IFS='|' read -r name result secs detail; do
        [ "$result" != notrun ] || result="NOT RUN"
        printf '%-16s %-7s %6ss  %s\n' "$name" "$result" "$secs" "$detail"
      done
}

# scenario_verdict LINES: prints the steps that did not pass (and why) and returns 1, or returns 0
scenario_verdict() {
  local lines=$1 step bad=""
  for step in $SCENARIO_STEPS; do
    if ! grep -q "^FKSCN step=$step result=" <<<"$lines"; then
      bad="$bad $step(missing)"
    elif ! grep -q "^FKSCN step=$step result=pass " <<<"$lines"; then
      bad="$bad $step($(sed -n "s/^FKSCN step=$step result=\([^ ]*\) .*/\1/p" <<<"$lines" | head -1))"
    fi
  done
  for step in $(sed -n 's/^FKSCN step=\([^ ]*\) result=fail .*/\1/p' <<<"$lines"); do
    [[ " $SCENARIO_STEPS " == *[[:space:]]"$step"[[:space:]]* ]] || bad="$bad $step(fail)"
  done
  [ -z "$bad" ] && return 0
  echo "${bad# }"
  return 1
}
