#!/usr/bin/env bash
# Make Debian's bcc (python3-bpfcc) importable from the virtualenv. A venv cannot see it through
# --system-site-packages with this Python, so a .pth file names a folder holding only a symlink
# to the bcc package (see ../shared/reference/platform.md).
set -euo pipefail
py=$1
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ -d /usr/lib/python3/dist-packages/bcc ]; then
    link_dir="$site/../sreagent-system-bcc"
    mkdir -p "$link_dir"
    ln -sfn /usr/lib/python3/dist-packages/bcc "$link_dir/bcc"
    (cd "$link_dir" && pwd) > "$site/sreagent-system-bcc.pth"
fi
