# shellcheck shell=sh
# Debian's default site on the LB: describe it (probe) or disable it (disable).
# Sourced after a generated header that sets
#   ACTION        probe | disable
#   SITE          /etc/nginx/sites-enabled/default
#   PACKAGE_SITE  /etc/nginx/sites-available/default, nginx-common's conffile
#   BACKUP        disable: where the link is moved (put back if nginx -t then fails). Not a
#                 backups.sh backup on purpose: a run manifest lists files that `fab rollback`
#                 rewrites, and this is a link (Debian's), which no file write may follow.
# probe prints: "link <target>" | file | absent; "md5 <md5 of what SITE resolves to>";
# "pkg <the md5 dpkg recorded for PACKAGE_SITE>". Only the planner decides what it means.

case "$ACTION" in
probe)
    if [ -L "$SITE" ]; then
        echo "link $(readlink -f "$SITE")"
    elif [ -e "$SITE" ]; then
        echo file
    else
        echo absent
    fi
    echo "md5 $({ md5sum < "$SITE"; } 2>/dev/null | cut -d' ' -f1)"
    # ${Conffiles} is dpkg-query's field, not a shell variable
    # shellcheck disable=SC2016
    echo "pkg $(dpkg-query -W -f='${Conffiles}\n' nginx-common 2>/dev/null |
        awk -v f="$PACKAGE_SITE" '$1 == f { print $2 }')"
    ;;
disable)
    set -e
    umask 077
    mkdir -p "$(dirname "$BACKUP")"
    chmod 700 "$(dirname "$BACKUP")"
    mv -f -- "$SITE" "$BACKUP"
    if ! vout=$(nginx -t 2>&1); then
        mv -f -- "$BACKUP" "$SITE"
        echo "$vout" >&2
        echo 'validation failed: default site restored' >&2
        exit 3
    fi
    echo "disabled $SITE"
    ;;
*)
    echo "nginx_default_site.sh: unknown ACTION $ACTION" >&2
    exit 2
    ;;
esac
