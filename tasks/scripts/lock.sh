# shellcheck shell=sh
# Library: the deploy lock, an atomic mkdir on the LB host with its owner inside. Sourced after
# a generated header that sets
#   LOCK_DIR  /var/lib/bps-deploy/deploy.lock
#   OWNER     who takes it: `user@machine pid=N boot=ID since=TIME`

# lock_take: "ACQUIRED", or "HELD" and the holder's line
lock_take() {
    mkdir -p "$(dirname "$LOCK_DIR")"
    if mkdir "$LOCK_DIR" 2>/dev/null; then
        echo "$OWNER" > "$LOCK_DIR/owner"
        echo ACQUIRED
    else
        echo HELD
        cat "$LOCK_DIR/owner" 2>/dev/null
    fi
}

# lock_show: the holder's line (nothing when no lock is held)
lock_show() {
    cat "$LOCK_DIR/owner" 2>/dev/null || true
}

# lock_break: remove the lock, whoever holds it
lock_break() {
    rm -rf "$LOCK_DIR"
}
