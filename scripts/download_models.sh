#!/usr/bin/env bash
# Download the design's model files (the `yolo` detection set and MiVOLO) into models/.
#
#   scripts/download_models.sh [MODELS_DIR]        (default: ./models)
#
# Files: yolov8x_person_face.pt (YOLO face+body), buffalo_l/w600k_r50.onnx (ArcFace), and
# mivolo_d1.pth.tar (age/gender). Each URL can be overridden (YOLO_PERSON_FACE_URL, BUFFALO_L_URL,
# MIVOLO_D1_URL), e.g. to use a mirror. A file is checked against its SHA-256 when one is pinned
# here or given in <NAME>_SHA256; otherwise its hash is printed so that you can pin it.
# Without these files, detection still works with DETECTION_BACKEND=auto/offline (packaged models).
set -uo pipefail

MODELS_DIR="${1:-models}"
mkdir -p "$MODELS_DIR"

YOLO_PERSON_FACE_URL="${YOLO_PERSON_FACE_URL:-https://huggingface.co/iitolstykh/YOLO-Face-Person-Detector/resolve/main/yolov8x_person_face.pt}"
BUFFALO_L_URL="${BUFFALO_L_URL:-https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip}"
MIVOLO_D1_URL="${MIVOLO_D1_URL:-https://huggingface.co/iitolstykh/mivolo_d1/resolve/main/mivolo_d1.pth.tar}"

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

verify() {  # verify FILE EXPECTED_SHA256_OR_EMPTY
    local actual
    actual="$(sha256_of "$1")"
    if [ -z "$2" ]; then
        echo "  ok: $1 (no checksum pinned; sha256 $actual)"
    elif [ "$actual" = "$2" ]; then
        echo "  ok: $1 (sha256 verified)"
    else
        echo "  FAILED: $1 has sha256 $actual, expected $2; removed" >&2
        rm -f "$1"
        return 1
    fi
}

download() {  # download NAME URL DEST SHA256
    local name="$1" url="$2" dest="$3" sum="$4"
    echo "$name -> $dest"
    if [ -f "$dest" ]; then
        verify "$dest" "$sum" || { failures=$((failures + 1)); return; }
        echo "  already present, skipped"
        return
    fi
    if ! fetch "$url" "$dest"; then
        rm -f "$dest.part"
        echo "  FAILED: could not download $url (set ${name}_URL to a mirror, or place the file at $dest)" >&2
        failures=$((failures + 1))
        return
    fi
    verify "$dest" "$sum" || failures=$((failures + 1))
}

download YOLO_PERSON_FACE "$YOLO_PERSON_FACE_URL" "$MODELS_DIR/yolov8x_person_face.pt" "${YOLO_PERSON_FACE_SHA256:-}"

echo "BUFFALO_L -> $MODELS_DIR/buffalo_l/w600k_r50.onnx"
if [ -f "$MODELS_DIR/buffalo_l/w600k_r50.onnx" ]; then
    echo "  already present, skipped"
else
    zip="$MODELS_DIR/buffalo_l.zip"
    if fetch "$BUFFALO_L_URL" "$zip" && verify "$zip" "${BUFFALO_L_SHA256:-}"; then
        mkdir -p "$MODELS_DIR/buffalo_l"
        # Flatten: some archives nest the files in a buffalo_l/ folder.
        python3 - "$zip" "$MODELS_DIR/buffalo_l" <<'PY'
import pathlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for member in archive.namelist():
        if member.endswith(".onnx"):
            (pathlib.Path(sys.argv[2]) / pathlib.Path(member).name).write_bytes(archive.read(member))
PY
        if [ -f "$MODELS_DIR/buffalo_l/w600k_r50.onnx" ]; then
            rm -f "$zip"
            echo "  ok: unpacked $MODELS_DIR/buffalo_l/ (ArcFace w600k_r50.onnx)"
        else
            echo "  FAILED: $zip did not contain w600k_r50.onnx" >&2
            failures=$((failures + 1))
        fi
    else
        rm -f "$zip.part"
        echo "  FAILED: could not download $BUFFALO_L_URL (set BUFFALO_L_URL, or place the file yourself)" >&2
        failures=$((failures + 1))
    fi
fi

download MIVOLO_D1 "$MIVOLO_D1_URL" "$MODELS_DIR/mivolo_d1.pth.tar" "${MIVOLO_D1_SHA256:-}"

if [ "$failures" -gt 0 ]; then
    echo "$failures model file(s) missing; DETECTION_BACKEND=auto falls back to the packaged offline models." >&2
    exit 1
fi
echo "All model files are in $MODELS_DIR. Set DETECTION_MODEL_PATH / ARCFACE_MODEL_PATH / MIVOLO_MODEL_PATH if elsewhere."
