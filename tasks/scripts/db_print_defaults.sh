# shellcheck shell=sh
# Library: print_defaults, the server's own reading of its option files (--key=value words).
# Whichever tool this server ships: my_print_defaults, else the server binary itself.
print_defaults() {
    my_print_defaults --mysqld 2>/dev/null || mariadbd --print-defaults 2>/dev/null ||
        mysqld --print-defaults 2>/dev/null || true
}
