# shellcheck shell=sh
# The first of the server's config folders that exists (where our drop-in goes).
# Generated header:
#   DIRS  the candidate folders, space-separated, in order of preference
for d in $DIRS; do
    if [ -d "$d" ]; then
        echo "$d"
        break
    fi
done
true
