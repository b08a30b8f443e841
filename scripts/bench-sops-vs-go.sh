#!/usr/bin/env bash
# Process-level comparison: `komodo-rotate sops set` vs Go `sops set` on the same 200-key
# compose.env (decrypt + MAC check + re-encrypt one value + write), N runs each.
# Uses hyperfine when installed (apt-get install -y hyperfine), else a timed loop.
# Env: N (default 30), KOMODO_ROTATE_BIN (default target/debug/komodo-rotate; build it first),
#      SOPS (default: sops on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
BIN=${KOMODO_ROTATE_BIN:-$PWD/target/debug/komodo-rotate}
SOPS=${SOPS:-$(command -v sops || true)}
[ -x "$BIN" ] || { echo "bench: $BIN missing; run: cargo build --bin komodo-rotate" >&2; exit 2; }
[ -n "$SOPS" ] || { echo "bench: sops not found; run scripts/setup-test-env" >&2; exit 2; }
KEY=${KOMODO_ROTATE_SHARED:-$PWD/../shared}/sops-vectors/fluxcd-kustomize-controller/age.txt
[ -f "$KEY" ] || { echo "bench: test key $KEY missing" >&2; exit 2; }
RECIPIENT=$(sed -n 's/^# public key: //p' "$KEY")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home"
# Isolated like the tests: own HOME, no version check, proxies to a closed loopback port.
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" SOPS_DISABLE_VERSION_CHECK=1 \
  SOPS_AGE_KEY_FILE="$KEY" HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9
unset SOPS_AGE_KEY || true

{
  echo "# Komodo compose.env (benchmark)"
  for i in $(seq 0 199); do
    [ $((i % 10)) -eq 0 ] && echo "# section $i"
    printf 'KOMODO_SETTING_%03d=value-%d\n' "$i" "$i"
  done
} > "$work/plain.env"
"$SOPS" encrypt --age "$RECIPIENT" "$work/plain.env" > "$work/ours.env"
cp "$work/ours.env" "$work/go.env"
printf 'Bench-Value-0123456789abcdefghij\n' > "$work/value.txt"
printf '"Bench-Value-0123456789abcdefghij"' > "$work/value.json"

echo "bench: $N runs each, 200 keys, $(nproc) cores; ours=$BIN go=$("$SOPS" --version --disable-version-check | head -n1)"
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 2 --runs "$N" \
    -n "komodo-rotate sops set" "sh -c '\"$BIN\" sops set \"$work/ours.env\" KOMODO_SETTING_100 < \"$work/value.txt\"'" \
    -n "go sops set" "sh -c '\"$SOPS\" set --value-stdin \"$work/go.env\" [\\\"KOMODO_SETTING_100\\\"] < \"$work/value.json\"'"
else
  run() {
    local name=$1; shift
    local start end
    start=$(date +%s%N)
    for _ in $(seq 1 "$N"); do "$@" >/dev/null 2>&1 || { echo "bench: $name failed" >&2; exit 1; }; done
    end=$(date +%s%N)
    echo "$name: $(( (end - start) / N / 1000 )) us per run (mean of $N)"
  }
  run "komodo-rotate sops set" sh -c "\"$BIN\" sops set \"$work/ours.env\" KOMODO_SETTING_100 < \"$work/value.txt\""
  run "go sops set          " sh -c "\"$SOPS\" set --value-stdin \"$work/go.env\" '[\"KOMODO_SETTING_100\"]' < \"$work/value.json\""
fi
# Both files must still decrypt with sops to the same plaintext.
diff <("$SOPS" decrypt "$work/ours.env") <("$SOPS" decrypt "$work/go.env") >/dev/null \
  && echo "bench: both results decrypt identically with Go sops"
