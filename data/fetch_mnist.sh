#!/usr/bin/env bash
# fetch_mnist.sh — downloads the full MNIST data set (60,000 training + 10,000 test digits) and checks it.
#
# This is the only part of the course that uses the network. Everything else runs offline on the subset
# bundled in data/ (10,000 training digits + the official test set).
#
#   bash data/fetch_mnist.sh                  # -> data/mnist-full/ (beside this script)
#   bash data/fetch_mnist.sh --out DIR        # -> DIR/
#   bash data/fetch_mnist.sh --help
#
# Then train on it (chapter 07):
#
#   build/bin/mnist_train --data data/mnist-full
#
# What it does, for each of the four files (train/t10k images/labels, gzip'd IDX):
#   1. a file already in the folder with the right SHA-256 is kept (nothing downloaded);
#   2. the two test-set files are copied from data/ when the bundled copies have the right hash (the bundled
#      test set is the official one), so only the training files need the network;
#   3. otherwise the file is downloaded, mirror after mirror, to a temporary name, its SHA-256 checked, and
#      only then renamed to its final name: a failed or partial download never leaves a file that looks done.
#
# Mirrors, tried in this order (the first one that serves a file with the right hash wins):
#   https://ossci-datasets.s3.amazonaws.com/mnist/
#   https://storage.googleapis.com/cvdf-datasets/mnist/
#   http://yann.lecun.com/exdb/mnist/
# Override them (tests do this, with a local fake mirror) with --mirror URL (repeatable) or with the
# environment variable MNIST_MIRRORS="URL1 URL2 ..." (space-separated; --mirror wins). file:// URLs work.
# Downloads use curl, or wget when curl is missing (MNIST_DOWNLOADER=curl or wget forces one).
#
# Exit status: 0 all four files present and verified; 1 a file had the wrong SHA-256 on every mirror that
# served it; 2 usage error; 3 no mirror could be reached (offline) or no mirror had the file.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PROG=fetch_mnist.sh

DEFAULT_MIRRORS=(
    "https://ossci-datasets.s3.amazonaws.com/mnist/"
    "https://storage.googleapis.com/cvdf-datasets/mnist/"
    "http://yann.lecun.com/exdb/mnist/"
)

# The four files and their SHA-256 (the two t10k ones equal data/SHA256SUMS).
FILES=(
    train-images-idx3-ubyte.gz
    train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz
    t10k-labels-idx1-ubyte.gz
)
declare -A SHA256=(
    [train-images-idx3-ubyte.gz]=440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
    [train-labels-idx1-ubyte.gz]=3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
    [t10k-images-idx3-ubyte.gz]=8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
    [t10k-labels-idx1-ubyte.gz]=f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
)

usage() {    # prints the comment block at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die_usage() {
    echo "$PROG: $1 (see: bash data/fetch_mnist.sh --help)" >&2
    exit 2
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# has_right_hash FILE NAME: true when FILE exists and its SHA-256 is the one expected for NAME.
has_right_hash() {
    [ -f "$1" ] && [ "$(sha256_of "$1")" = "${SHA256[$2]}" ]
}

# download URL DEST: copies one URL to DEST with curl or wget. On failure prints the tool's last error line
# and returns its exit status.
download() {
    local url=$1 dest=$2 rc=0 message
    if [ "$DOWNLOADER" = curl ]; then
        message=$(curl --fail --silent --show-error --location --connect-timeout 15 --retry 2 \
                       --output "$dest" "$url" 2>&1) || rc=$?
    elif [[ $url == file://* ]]; then
        message=$(cp -- "${url#file://}" "$dest" 2>&1) || rc=$?     # wget cannot read file:// URLs
    else
        message=$(wget --quiet --tries=3 --timeout=15 --output-document="$dest" "$url" 2>&1) || rc=$?
        [ "$rc" -eq 0 ] || message="wget: exit status $rc (4: network failure, 8: server error)${message:+: $message}"
    fi
    [ "$rc" -eq 0 ] || printf '%s\n' "${message##*$'\n'}"
    return "$rc"
}

# unreachable RC: true when a download's exit status means "could not connect" rather than "no such file"
# (curl: 6 host not resolved, 7 no connection, 28 timeout; wget: 4 network failure).
unreachable() {
    if [ "$DOWNLOADER" = curl ]; then
        [ "$1" -eq 6 ] || [ "$1" -eq 7 ] || [ "$1" -eq 28 ]
    else
        [ "$1" -eq 4 ]
    fi
}
declare -A UNREACHABLE=()   # mirrors that could not be reached once are not tried again

# fetch_one NAME: makes $OUT/NAME a verified copy. Returns 0 done, 1 wrong hash everywhere, 3 not downloadable.
fetch_one() {
    local name=$1 final="$OUT/$1" part="$OUT/.$1.part.$$"
    local expected=${SHA256[$name]} got mirror errors="" mismatch=0

    if has_right_hash "$final" "$name"; then
        echo "  $name: already present, SHA-256 ok"
        return 0
    fi
    if [ -f "$final" ]; then
        echo "  $name: present but its SHA-256 is wrong; fetching it again"
    fi
    if [[ $name == t10k-* ]] && has_right_hash "$SCRIPT_DIR/$name" "$name"; then
        cp -- "$SCRIPT_DIR/$name" "$part"
        if has_right_hash "$part" "$name"; then
            mv -f -- "$part" "$final"
            echo "  $name: copied from the bundled data/ (official test set), SHA-256 ok"
            return 0
        fi
        rm -f -- "$part"
    fi

    for mirror in "${MIRRORS[@]}"; do
        [[ $mirror == */ ]] || mirror="$mirror/"
        if [ -n "${UNREACHABLE[$mirror]:-}" ]; then
            errors+="      $mirror: not tried again (unreachable before)"$'\n'
            continue
        fi
        rm -f -- "$part"
        local message rc=0
        message=$(download "$mirror$name" "$part") || rc=$?
        if [ "$rc" -ne 0 ]; then
            rm -f -- "$part"
            unreachable "$rc" && UNREACHABLE[$mirror]=1
            errors+="      $mirror$name: ${message:-download failed}"$'\n'
            continue
        fi
        got=$(sha256_of "$part")
        if [ "$got" = "$expected" ]; then
            mv -f -- "$part" "$final"
            echo "  $name: downloaded from $mirror, SHA-256 ok"
            return 0
        fi
        rm -f -- "$part"
        mismatch=1
        echo "$PROG: $name from $mirror has the wrong SHA-256" >&2
        echo "      expected $expected" >&2
        echo "      got      $got" >&2
        echo "      (the file was deleted; trying the next mirror)" >&2
    done

    if [ "$mismatch" = 1 ]; then
        echo "$PROG: no mirror served $name with the expected SHA-256 $expected" >&2
        return 1
    fi
    echo "$PROG: could not download $name from any mirror:" >&2
    printf '%s' "$errors" >&2
    return 3
}

offline_help() {
    cat >&2 <<'EOF'

No mirror could serve the files above: this machine seems to be offline (or the mirrors are down or moved).
What you can do instead:
  - the bundled MNIST subset in data/ works offline and is every program's default
    (10,000 training digits + the official 10,000-digit test set);
  - Fashion-MNIST, full size and in the same format, installs from Debian packages:
        apt-get install dataset-fashion-mnist
        build/bin/mnist_train --data /usr/share/datasets/fashion-mnist
  - or run this script again on a machine with network access and copy the folder over.
EOF
}

# ---- arguments ------------------------------------------------------------------------------------------------
OUT="$SCRIPT_DIR/mnist-full"
cli_mirrors=()
while [ $# -gt 0 ]; do
    case $1 in
        --out)
            [ $# -ge 2 ] || die_usage "--out needs a folder"
            OUT=$2
            shift 2 ;;
        --mirror)
            [ $# -ge 2 ] || die_usage "--mirror needs a URL"
            cli_mirrors+=("$2")
            shift 2 ;;
        -h | --help)
            usage
            exit 0 ;;
        *)
            die_usage "unknown argument '$1'" ;;
    esac
done

if [ ${#cli_mirrors[@]} -gt 0 ]; then
    MIRRORS=("${cli_mirrors[@]}")
elif [ -n "${MNIST_MIRRORS:-}" ]; then
    read -r -a MIRRORS <<<"$MNIST_MIRRORS"
else
    MIRRORS=("${DEFAULT_MIRRORS[@]}")
fi

if [ -n "${MNIST_DOWNLOADER:-}" ]; then
    DOWNLOADER=$MNIST_DOWNLOADER
    [[ $DOWNLOADER == curl || $DOWNLOADER == wget ]] || die_usage "MNIST_DOWNLOADER must be curl or wget"
    command -v "$DOWNLOADER" >/dev/null 2>&1 || { echo "$PROG: MNIST_DOWNLOADER=$DOWNLOADER is not installed" >&2; exit 3; }
elif command -v curl >/dev/null 2>&1; then
    DOWNLOADER=curl
elif command -v wget >/dev/null 2>&1; then
    DOWNLOADER=wget
else
    echo "$PROG: neither curl nor wget is installed (Debian: apt-get install curl)" >&2
    exit 3
fi
command -v sha256sum >/dev/null 2>&1 || { echo "$PROG: sha256sum is missing (coreutils)" >&2; exit 3; }

mkdir -p -- "$OUT" || { echo "$PROG: cannot create the folder $OUT" >&2; exit 3; }
# Remove this run's temporary files however it ends (error, Ctrl-C).
trap 'rm -f -- "$OUT"/.*.part.$$' EXIT

# ---- the four files -------------------------------------------------------------------------------------------
echo "fetching full MNIST into $OUT (with $DOWNLOADER)"
status=0
for name in "${FILES[@]}"; do
    rc=0
    fetch_one "$name" || rc=$?
    if [ "$rc" -ne 0 ] && { [ "$status" -eq 0 ] || [ "$rc" -lt "$status" ]; }; then
        status=$rc     # a hash mismatch (1) is the more serious finding, so it wins over "offline" (3)
    fi
done

if [ "$status" -eq 3 ]; then
    offline_help
elif [ "$status" -eq 0 ]; then
    echo "done: full MNIST is in $OUT"
    echo "train on it: build/bin/mnist_train --data $OUT"
fi
exit "$status"
