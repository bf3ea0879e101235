#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the tests marked `browser`.
# Playwright for Python drives it through executable_path, so `playwright install` (which
# downloads its own browsers) is never needed. Safe to run again: does nothing when present.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null || true
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
# DejaVu carries the Cyrillic the Russian screens need.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version 2>/dev/null
