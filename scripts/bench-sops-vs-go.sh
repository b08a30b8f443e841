#!/usr/bin/env bash
# Process-level comparison on the same 200-key compose.env, N runs each, side by side:
# `sops decrypt` and `sops set` (decrypt + MAC check + re-encrypt one value + durable write),
# ours and Go's, with the ratios (ours/Go for each, and our set / our decrypt).
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
# The four commands are measured side by side in one run: decrypt and set, ours and Go's.
ours_decrypt="\"$BIN\" sops decrypt \"$work/ours.env\""
go_decrypt="\"$SOPS\" decrypt \"$work/go.env\""
ours_set="\"$BIN\" sops set \"$work/ours.env\" KOMODO_SETTING_100 < \"$work/value.txt\""
go_set="\"$SOPS\" set --value-stdin \"$work/go.env\" '[\"KOMODO_SETTING_100\"]' < \"$work/value.json\""
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 2 --runs "$N" \
    -n "komodo-rotate sops decrypt" "sh -c '$ours_decrypt >/dev/null'" \
    -n "go sops decrypt" "sh -c '$go_decrypt >/dev/null'" \
    -n "komodo-rotate sops set" "sh -c '$ours_set'" \
    -n "go sops set" "sh -c '$go_set'"
else
  declare -A us
  run() {
    local name=$1 cmd=$2 start end
    sh -c "$cmd" >/dev/null 2>&1 || { echo "bench: $name failed" >&2; exit 1; }  # warm-up
    start=$(date +%s%N)
    for _ in $(seq 1 "$N"); do sh -c "$cmd" >/dev/null 2>&1 || { echo "bench: $name failed" >&2; exit 1; }; done
    end=$(date +%s%N)
    us[$name]=$(( (end - start) / N / 1000 ))
    printf '%-28s %8d us per run (mean of %d)\n' "$name" "${us[$name]}" "$N"
  }
  run "komodo-rotate sops decrypt" "$ours_decrypt"
  run "go sops decrypt" "$go_decrypt"
  run "komodo-rotate sops set" "$ours_set"
  run "go sops set" "$go_set"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  echo "ratio ours/go decrypt: $(ratio "${us[komodo-rotate sops decrypt]}" "${us[go sops decrypt]}")"
  echo "ratio ours/go set:     $(ratio "${us[komodo-rotate sops set]}" "${us[go sops set]}")"
  echo "ratio our set/our decrypt: $(ratio "${us[komodo-rotate sops set]}" "${us[komodo-rotate sops decrypt]}") (target <= 1.5)"
fi
# Both files must still decrypt with sops to the same plaintext.
diff <("$SOPS" decrypt "$work/ours.env") <("$SOPS" decrypt "$work/go.env") >/dev/null \
  && echo "bench: both results decrypt identically with Go sops"
