#!/usr/bin/env bash
# Register maskwork with the Linux desktop: menu entry, icons, file types, AppStream data.
#
#   packaging/linux/install.sh                      # for this user (~/.local/share)
#   PREFIX=/usr/local packaging/linux/install.sh    # for everyone (as root)
#   MASKWORK_EXEC=/opt/maskwork/maskwork packaging/linux/install.sh   # the desktop bundle
#
# The menu entry runs `maskwork` from PATH (pip install maskwork) unless
# MASKWORK_EXEC names another program, such as the bundle's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
share="${PREFIX:-$HOME/.local}/share"
app_id=io.github.maskwork.maskwork

install -d "$share/applications" "$share/mime/packages" "$share/metainfo"
sed "s|^Exec=maskwork |Exec=${MASKWORK_EXEC:-maskwork} |" "$here/$app_id.desktop" >"$share/applications/$app_id.desktop"
install -m 644 "$here/maskwork-mime.xml" "$share/mime/packages/maskwork.xml"
install -m 644 "$here/$app_id.metainfo.xml" "$share/metainfo/$app_id.metainfo.xml"
(cd "$here/../icons" && find hicolor -type f | while read -r icon; do install -D -m 644 "$icon" "$share/icons/$icon"; done)

# Each cache is optional: desktops rebuild them at login when the tools are missing.
command -v update-mime-database >/dev/null && update-mime-database "$share/mime"
command -v update-desktop-database >/dev/null && update-desktop-database "$share/applications"
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "installed $app_id under $share"
