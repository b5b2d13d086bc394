# shellcheck shell=sh
# Unpack the uploaded EI zip as EI_HOME (checksum-verified). Generated header:
#   STAGED    the uploaded zip (/var/tmp/bps-deploy-<sha>.zip)
#   SHA       its expected sha256
#   ZIP_NAME  its name (for messages)
#   EI_HOME   where the zip's one top directory goes
set -e
[ "$(sha256sum "$STAGED" | cut -d' ' -f1)" = "$SHA" ] ||
    { echo "upload of $ZIP_NAME corrupted" >&2; exit 1; }
work=$(mktemp -d "$(dirname "$EI_HOME")/.bps-unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
if command -v unzip >/dev/null; then
    unzip -q "$STAGED" -d "$work"
else
    python3 -m zipfile -e "$STAGED" "$work"
fi
top=$(ls -A "$work")
[ "$(echo "$top" | wc -l)" = 1 ] || { echo 'zip must hold one top directory' >&2; exit 1; }
[ -d "$work/$top/wso2/business-process" ] ||
    { echo 'zip holds no wso2/business-process: not an EI 6.x distribution' >&2; exit 1; }
find "$work/$top" -name '*.sh' -exec chmod +x {} +
mv "$work/$top" "$EI_HOME"
rm -f "$STAGED"
