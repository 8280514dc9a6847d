#!/usr/bin/env bash
# Set up the zamba 2.7.2 reference environment used by benchmarks/zamba_frames.py and
# benchmarks/make_zamba_fixtures.py. Idempotent: re-running it only fills in what is missing.
#
#   ZAMBA_VENV   where to create the venv (default: $HOME/.cache/kifaru-bench/zamba-venv)
#   PYTHON311    interpreter used to create it (default: python3.11)
#
# zamba's loader shells out to the ffmpeg/ffprobe CLI, so Debian's ffmpeg is installed too when
# `ffmpeg` is missing (only possible as root; otherwise install it yourself).
# Prints the venv's python path on the last line; use it as ZAMBA_PYTHON.
set -euo pipefail

ZAMBA_VENV="${ZAMBA_VENV:-$HOME/.cache/kifaru-bench/zamba-venv}"
PYTHON311="${PYTHON311:-python3.11}"
ZAMBA_SPEC='zamba[video]==2.7.2'

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ffmpeg (apt-get)..." >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y ffmpeg
    else
        echo "WARNING: ffmpeg/ffprobe not found and not root: install ffmpeg yourself" >&2
    fi
fi

if [ ! -x "$ZAMBA_VENV/bin/python" ]; then
    echo "creating venv at $ZAMBA_VENV..." >&2
    mkdir -p "$(dirname "$ZAMBA_VENV")"
    "$PYTHON311" -m venv "$ZAMBA_VENV"
fi

if ! "$ZAMBA_VENV/bin/python" -c \
    'import importlib.metadata as m, sys; sys.exit(m.version("zamba") != "2.7.2")' 2>/dev/null; then
    echo "installing $ZAMBA_SPEC into $ZAMBA_VENV (large: pulls torch)..." >&2
    "$ZAMBA_VENV/bin/pip" install "$ZAMBA_SPEC"
fi

echo "$ZAMBA_VENV/bin/python"
