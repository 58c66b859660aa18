#!/usr/bin/env bash
# Download the design's model files (the `yolo` detection set, MiVOLO and MobileCLIP-S2) into MODELS_DIR.
#
#   scripts/download_models.sh [MODELS_DIR]
#
# MODELS_DIR defaults to what PhotoDB itself uses, so that DETECTION_BACKEND=auto finds the files
# wherever you run a command later: the MODELS_DIR setting (environment or .env), else
# $PHOTODB_HOME/models, else the platform's data folder (~/.local/share/photodb/models on Linux).
#
# Files, URLs and SHA-256 pins come from src/photodb/ml/model_files.json, the one place PhotoDB
# keeps them (Python checks the same pins before loading a file). A URL can be overridden with
# <NAME>_URL (YOLO_PERSON_FACE_URL, BUFFALO_L_URL, MIVOLO_D1_URL, MOBILECLIP_S2_URL), e.g. for a
# mirror; a pin with the setting PhotoDB reads (DETECTION_MODEL_SHA256, BUFFALO_L_SHA256,
# ARCFACE_MODEL_SHA256, MIVOLO_MODEL_SHA256, CLIP_MODEL_SHA256). A file whose hash does not match is
# removed. A file with no pin (none is published for mivolo_d1.pth.tar or MobileCLIP-S2's
# open_clip_model.safetensors) is kept and its hash printed: PhotoDB loads such a torch checkpoint
# only once you pin it; the safetensors file (plain tensors, no code) loads and logs its hash.
# Without these files, detection still works with DETECTION_BACKEND=auto/offline (packaged models).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="$SCRIPT_DIR/../src/photodb/ml/model_files.json"
PYTHON="${PYTHON:-python3}"

default_models_dir() {
    # Ask PhotoDB when it is importable (it reads .env too), else follow the same rules here.
    local resolved
    if resolved="$("$PYTHON" -c 'from photodb.config import load_settings; print(load_settings().models_root)' 2>/dev/null)" && [ -n "$resolved" ]; then
        echo "$resolved"
    elif [ -n "${MODELS_DIR:-}" ]; then
        echo "$MODELS_DIR"
    elif [ -n "${PHOTODB_HOME:-}" ]; then
        echo "$PHOTODB_HOME/models"
    elif [ "$(uname -s)" = "Darwin" ]; then
        echo "$HOME/Library/Application Support/photodb/models"
    else
        echo "${XDG_DATA_HOME:-$HOME/.local/share}/photodb/models"
    fi
}

manifest() {  # manifest FILE FIELD -> the field's value, empty for null
    "$PYTHON" -c 'import json, sys
value = json.load(open(sys.argv[1]))["files"][sys.argv[2]][sys.argv[3]]
print("" if value is None else value)' "$MANIFEST" "$1" "$2"
}

MODELS_DIR="${1:-$(default_models_dir)}"
mkdir -p "$MODELS_DIR" || { echo "cannot create $MODELS_DIR" >&2; exit 1; }

failures=0

fetch() {  # fetch URL DEST
    if command -v curl >/dev/null 2>&1; then
        curl -fL --retry 3 --progress-bar -o "$2.part" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q --show-progress -O "$2.part" "$1"
    else
        echo "  neither curl nor wget is installed" >&2
        return 1
    fi && mv "$2.part" "$2"
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

verify() {  # verify FILE EXPECTED_SHA256_OR_EMPTY PIN_SETTING [downloaded]
    # Only a file this run downloaded is removed on a mismatch: a file that was already there may be
    # the user's own, pinned in .env, which this script does not read.
    local actual
    actual="$(sha256_of "$1")"
    if [ -z "$2" ]; then
        echo "  ok: $1 (no published checksum; sha256 $actual). Check it, then set $3=$actual"
    elif [ "$actual" = "$2" ]; then
        echo "  ok: $1 (sha256 verified)"
    elif [ "${4:-}" = downloaded ]; then
        echo "  FAILED: $1 has sha256 $actual, expected $2; removed" >&2
        rm -f "$1"
        return 1
    else
        echo "  FAILED: $1 has sha256 $actual, expected $2; kept (your own file? pin it with $3=$actual)" >&2
        return 1
    fi
}

download() {  # download MANIFEST_NAME URL_OVERRIDE_VARIABLE
    local name="$1" url_var="$2" url sum pin_setting dest
    url="${!url_var:-$(manifest "$name" url)}"
    pin_setting="$(manifest "$name" pin_setting)"
    sum="${!pin_setting:-$(manifest "$name" sha256)}"
    dest="$MODELS_DIR/$(manifest "$name" path)"
    echo "$name -> $dest"
    if [ -f "$dest" ]; then
        verify "$dest" "$sum" "$pin_setting" || { failures=$((failures + 1)); return 1; }
        echo "  already present, skipped"
        return 0
    fi
    if ! fetch "$url" "$dest"; then
        rm -f "$dest.part"
        echo "  FAILED: could not download $url (set $url_var to a mirror, or place the file at $dest)" >&2
        failures=$((failures + 1))
        return 1
    fi
    verify "$dest" "$sum" "$pin_setting" downloaded || { failures=$((failures + 1)); return 1; }
}

download yolov8x_person_face.pt YOLO_PERSON_FACE_URL

ARCFACE="$MODELS_DIR/$(manifest w600k_r50.onnx path)"
ARCFACE_SUM="${ARCFACE_MODEL_SHA256:-$(manifest w600k_r50.onnx sha256)}"
if [ -f "$ARCFACE" ]; then
    echo "w600k_r50.onnx -> $ARCFACE"
    if verify "$ARCFACE" "$ARCFACE_SUM" ARCFACE_MODEL_SHA256; then echo "  already present, skipped"; else failures=$((failures + 1)); fi
elif download buffalo_l.zip BUFFALO_L_URL; then
    zip="$MODELS_DIR/$(manifest buffalo_l.zip path)"
    mkdir -p "$(dirname "$ARCFACE")"
    # Flatten: some archives nest the files in a buffalo_l/ folder.
    "$PYTHON" - "$zip" "$(dirname "$ARCFACE")" <<'PY'
import pathlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for member in archive.namelist():
        if member.endswith(".onnx"):
            (pathlib.Path(sys.argv[2]) / pathlib.Path(member).name).write_bytes(archive.read(member))
PY
    if [ -f "$ARCFACE" ] && verify "$ARCFACE" "$ARCFACE_SUM" ARCFACE_MODEL_SHA256 downloaded; then
        rm -f "$zip"
        echo "  ok: unpacked $(dirname "$ARCFACE")/ (ArcFace w600k_r50.onnx)"
    else
        echo "  FAILED: $zip did not contain the expected w600k_r50.onnx" >&2
        failures=$((failures + 1))
    fi
fi

download mivolo_d1.pth.tar MIVOLO_D1_URL
download mobileclip_s2.safetensors MOBILECLIP_S2_URL

if [ "$failures" -gt 0 ]; then
    echo "$failures model file(s) missing; DETECTION_BACKEND=auto falls back to the packaged offline models," >&2
    echo "and without MobileCLIP-S2 the scene analysis stage skips photos." >&2
    exit 1
fi
echo "All model files are in $MODELS_DIR (PhotoDB looks there by default; MODELS_DIR changes it)."
