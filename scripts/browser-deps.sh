#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/integration/test_ui_browser.py (Debian packages).
# A no-op when both are installed; otherwise installs them with apt-get (needs root, as in CI).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "== chromium/chromium-driver missing and cannot apt-get them here: the browser test will be skipped" >&2
  exit 0
fi
echo "== installing chromium and chromium-driver (apt-get)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
