#!/usr/bin/env bash
# The README's demo: build rrun, make a busybox bundle without network, and
# walk a container through the runc-style lifecycle. Run as root from the
# repository root: `tests/demo/demo.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! [ -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static
fi
# rrun's target (.cargo/config.toml); rustup fetches its std once.
rustup target add x86_64-unknown-linux-musl
cargo build --release --locked
# .cargo/config.toml names the target (musl): target/<tuple>/release/rrun.
RRUN=$PWD/target/x86_64-unknown-linux-musl/release/rrun

work=$(mktemp -d /tmp/rrun-demo.XXXXXX)
root=$work/state
trap '"$RRUN" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# A bundle: a root file system (static busybox and its applets) + config.json.
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$work/bundle/rootfs/bin/$applet"
done
cd "$work/bundle"
"$RRUN" spec                                  # the default config, like `runc spec`
sed -i 's/"terminal": true/"terminal": false/' config.json
sed -i 's/^      "sh"$/      "sh", "-c", "echo hello from $(hostname), pid $$; sleep 2"/' config.json

echo "== rrun run (foreground): output and exit status"
"$RRUN" --root "$root" run demo-fg; echo "exit status: $?"

echo "== create, state, start, list, kill, delete"
"$RRUN" --root "$root" create --pid-file "$work/pid" demo
"$RRUN" --root "$root" state demo
"$RRUN" --root "$root" start demo
"$RRUN" --root "$root" list
"$RRUN" --root "$root" kill demo KILL
sleep 0.2
"$RRUN" --root "$root" state demo | grep '"status"'
"$RRUN" --root "$root" delete demo
echo "== done: nothing left in $root: $(ls -A "$root")"
