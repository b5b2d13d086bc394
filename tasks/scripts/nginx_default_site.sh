# shellcheck shell=sh
# Debian's default site on the LB: describe it (probe) or disable it (disable).
# Sourced after a generated header that sets
#   ACTION        probe | disable
#   SITE          /etc/nginx/sites-enabled/default
#   PACKAGE_SITE  /etc/nginx/sites-available/default, nginx-common's conffile
# and, for disable, after backups.sh (the link is moved to a backup, restored if nginx -t fails).
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
    bak=$(backup_name "$SITE")
    mv -f -- "$SITE" "$bak"
    if ! vout=$(nginx -t 2>&1); then
        mv -f -- "$bak" "$SITE"
        echo "$vout" >&2
        echo 'validation failed: default site restored' >&2
        exit 3
    fi
    prune_backups "$bak"
    echo "disabled $SITE"
    ;;
*)
    echo "nginx_default_site.sh: unknown ACTION $ACTION" >&2
    exit 2
    ;;
esac
