#!/usr/bin/env bash
# Register maskwork with the Linux desktop: menu entry, icons, file types, AppStream data.
#
#   packaging/linux/install.sh                      # for this user (~/.local/share)
#   PREFIX=/usr/local packaging/linux/install.sh    # for everyone (as root)
#   MASKWORK_EXEC=/opt/maskwork/maskwork packaging/linux/install.sh   # the desktop bundle
#
# The menu entry runs the `maskwork` found on PATH now (pip install maskwork; a
# virtual environment's is written with its whole path, since the desktop does not
# see that PATH) unless MASKWORK_EXEC names another program, such as the bundle's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
share="${PREFIX:-$HOME/.local}/share"
app_id=io.github.maskwork.maskwork

program="${MASKWORK_EXEC:-$(command -v maskwork || true)}"
if [ -z "$program" ]; then
    echo "install.sh: maskwork is not on PATH: install it first (pip install maskwork)," \
         "or name the program with MASKWORK_EXEC=/path/to/maskwork" >&2
    exit 1
fi
case "$program" in
    /*) ;;
    *) program="$(cd "$(dirname "$program")" && pwd)/$(basename "$program")" ;;
esac
if [ ! -f "$program" ] || [ ! -x "$program" ]; then
    echo "install.sh: $program is not a program that can be run" >&2
    exit 1
fi
# The Desktop Entry spec quotes an argument with "..." and escapes " ` $ \ inside it
# (and \ again in the file) and % as %%, which GLib then looks for on disk as it is:
# such names are refused rather than written into an entry that never launches.
case "$program" in
    *[\"\`\$\\%]* | *$'\n'*)
        echo "install.sh: the menu entry cannot name a program whose path holds \" \` \$ \\ % or a line break: $program" >&2
        exit 1 ;;
esac
quoted="\"$program\""

install -d "$share/applications" "$share/mime/packages" "$share/metainfo"
entry="$share/applications/$app_id.desktop"
# Written beside the entry and renamed: a failure leaves no half-written entry.
while IFS= read -r line; do
    case "$line" in
        "Exec=maskwork "*) printf 'Exec=%s %s\n' "$quoted" "${line#Exec=maskwork }" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$here/$app_id.desktop" >"$entry.tmp"
mv "$entry.tmp" "$entry"
install -m 644 "$here/maskwork-mime.xml" "$share/mime/packages/maskwork.xml"
install -m 644 "$here/$app_id.metainfo.xml" "$share/metainfo/$app_id.metainfo.xml"
(cd "$here/../icons" && find hicolor -type f | while read -r icon; do install -D -m 644 "$icon" "$share/icons/$icon"; done)

# Each cache is optional: desktops rebuild them at login when the tools are missing.
command -v update-mime-database >/dev/null && update-mime-database "$share/mime"
command -v update-desktop-database >/dev/null && update-desktop-database "$share/applications"
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "installed $app_id under $share, running $program"
