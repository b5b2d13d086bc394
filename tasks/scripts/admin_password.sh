# shellcheck shell=sh
# WSO2's admin password where it lives, the JDBC user store, through this node's own admin
# services over HTTPS (RemoteUserStoreManagerService, AuthenticationAdmin). See tasks/admin.py.
# Sourced after a generated header that sets
#   NODE        this node's name, for messages
#   ROTATE      1: change the password in the (shared) user store, unless the new one already
#               logs in (node 1 only); 0: only verify
#   CHECK_OLD   1: the old password must no longer log in
#   UPDATE      curl config, base64: updateCredentialByAdmin, basic auth with the old password
#   LOGIN_NEW   curl config, base64: AuthenticationAdmin login with the new password
#   LOGIN_OLD   curl config, base64: the same with the old password
#   STATE_FILE  where the hash of the applied password is remembered (root only, 0600)
#   STATE       that hash line (never the password)
# The passwords are only inside the curl configs, which reach curl on its stdin (`-K -`):
# never in an argument or the environment of any process. Exit codes: 2 the service did not
# answer, 3 the change was refused, 4 the new password does not log in, 5 the old one still does.

# call CONFIG: the answer's body, then a last line with the HTTP status (000: no answer)
call() {
    printf '%s' "$1" | base64 -d | curl -sS -k --max-time 60 --noproxy '*' -K - \
        -w '\n%{http_code}' 2>&1
}

http_status() {
    printf '%s\n' "$1" | tail -n 1
}

# what the answer says: its SOAP faultstring, else the start of its body, on one line
answer_text() {
    _why=$(printf '%s\n' "$1" | sed '$d' | tr '\n' ' ' |
        sed -n 's:.*<faultstring>\(.*\)</faultstring>.*:\1:p')
    if [ -z "$_why" ]; then
        _why=$(printf '%s\n' "$1" | sed '$d' | tr '\n' ' ' | cut -c1-300)
    fi
    printf '%s' "$_why"
}

# login CONFIG: "yes", "no" (login false, or a SOAP fault), or "error: ..." (no real answer)
login() {
    _r=$(call "$1")
    _code=$(http_status "$_r")
    if [ "$_code" = 200 ] && printf '%s' "$_r" | grep -q 'return>true</'; then
        echo yes
    elif [ "$_code" = 200 ] && printf '%s' "$_r" | grep -q 'return>false</'; then
        echo no
    elif [ "$_code" = 500 ] && printf '%s' "$_r" | grep -q 'Fault>'; then
        echo no
    else
        echo "error: HTTP $_code: $(answer_text "$_r")"
    fi
}

if [ "$ROTATE" = 1 ]; then
    _now=$(login "$LOGIN_NEW")
    case $_now in
    yes)
        echo "ALREADY"
        ;;
    no)
        _r=$(call "$UPDATE")
        _code=$(http_status "$_r")
        if { [ "$_code" = 202 ] || [ "$_code" = 200 ]; } && ! printf '%s' "$_r" | grep -q 'Fault>'; then
            echo "CHANGED"
        else
            echo "updateCredentialByAdmin on $NODE refused (HTTP $_code): $(answer_text "$_r"); is secrets.admin_password_old the admin's current password?" >&2
            exit 3
        fi
        ;;
    *)
        echo "the admin services of $NODE did not answer: $_now" >&2
        exit 2
        ;;
    esac
fi

_new=$(login "$LOGIN_NEW")
case $_new in
yes) echo "NEW-OK" ;;
no)
    echo "login with the new admin password refused on $NODE" >&2
    exit 4
    ;;
*)
    echo "the admin services of $NODE did not answer: $_new" >&2
    exit 2
    ;;
esac

if [ "$CHECK_OLD" = 1 ]; then
    _old=$(login "$LOGIN_OLD")
    case $_old in
    no) echo "OLD-REFUSED" ;;
    yes)
        echo "the old admin password still logs in on $NODE" >&2
        exit 5
        ;;
    *)
        echo "the admin services of $NODE did not answer: $_old" >&2
        exit 2
        ;;
    esac
fi

umask 077
mkdir -p "$(dirname "$STATE_FILE")"
printf '%s\n' "$STATE" > "$STATE_FILE.tmp"
chmod 600 "$STATE_FILE.tmp"
mv -f "$STATE_FILE.tmp" "$STATE_FILE"
echo "RECORDED"
