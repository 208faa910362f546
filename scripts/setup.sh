#!/usr/bin/env bash
# Set up seqae on a Debian machine with Python 3.11: system packages, a virtual environment at
# .venv in the repository root, and the package installed editable with its extras.
# Idempotent: a second run checks and returns in seconds.
#
#   bash scripts/setup.sh            # system packages + .venv + seqae[all,dev] (every plugin)
#   SEQAE_EXTRAS=all,dev,bench bash scripts/setup.sh   # also the benchmark peers
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS="${SEQAE_EXTRAS:-all,dev}"

# --- system packages: speech synthesis (the speech corpus), a headless browser (demo tests) ---
# espeak-ng, flite and festival with its English voices and the voices recorded from speakers of
# other languages synthesize the corpus offline; chromium and chromium-driver (with a font) run
# the web demo's browser tests (selenium, headless).
APT_PACKAGES=(espeak-ng flite libsndfile1 festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
              festvox-ca-ona-hts festvox-czech-dita festvox-czech-krb festvox-czech-machac
              festvox-czech-ph festvox-suopuhe-lj festvox-suopuhe-mv festvox-italp16k
              festvox-itapc16k festvox-ru
              chromium chromium-driver fonts-dejavu-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- package lists with English descriptions: the text plugin's embedded corpus -------------
# `seqae data text` reads Debian's Translation-en index files; fetch them if they are missing.
if ! ls /var/lib/apt/lists/*_i18n_Translation-en* >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: fetching Debian's package lists with English descriptions"
  $SUDO apt-get update -qq -o Acquire::Languages=en
fi

# --- virtual environment and the package ------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: seqae needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY

# Reinstall only when the project's metadata or the chosen extras changed.
stamp=".venv/.seqae-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) extras=$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import seqae" 2>/dev/null; then
  echo "setup: installing seqae[$EXTRAS] into .venv (first time: a few minutes, ~5 GB for torch)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, seqae; print("torch", torch.__version__, "| seqae", seqae.__version__)'))"
