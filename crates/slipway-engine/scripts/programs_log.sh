# Prints the last LINES lines of each process log of PROGRAM (a read; changes nothing).
found=
for log in "$LOG_DIR"/"$PROGRAM"_*.log; do
    [ -e "$log" ] || continue
    found=yes
    tail -n "$LINES" "$log"
done
[ -n "$found" ] || true
