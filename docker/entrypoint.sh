#!/bin/sh
# Entry point of the orchestrator and executor images.
#
# Started as root (the compose file's default), it hands what the container needs to the
# image's user and drops to it before starting maoctl:
#   - the settings file $MAO_CONFIG (it holds secrets: 0600, root's on the host) is copied
#     to the user's home and MAO_CONFIG points there;
#   - the SSH key directory mounted read-only at $MAO_KEYS_MOUNT (default /keys), whatever
#     its owner on the host, is copied to the user's home (0700/0600) and MAO_SSH_KEY_DIR
#     points there;
#   - the data directory $MAO_DATA_DIR (if set) is given to the user when root owns it;
#   - the engine socket $MAO_ENGINE_SOCKET (if set) adds its group to the user's groups.
# Started as any other user (docker run --user), it runs maoctl as that user unchanged.
set -eu

user=${MAO_RUN_AS:-mao}
keys=${MAO_KEYS_MOUNT:-/keys}

if [ "$(id -u)" != 0 ] || [ "$user" = root ]; then
    exec maoctl "$@"
fi

home=$(getent passwd "$user" | cut -d: -f6)
if [ -d "$keys" ]; then
    copy="$home/.mao-keys"
    rm -rf "$copy"
    mkdir -m 0700 "$copy"
    for file in "$keys"/*; do
        [ -f "$file" ] && cp "$file" "$copy/" || true
    done
    chmod 0600 "$copy"/* 2>/dev/null || true
    chown -R "$user:" "$copy"
    export MAO_SSH_KEY_DIR="$copy"
fi

if [ -n "${MAO_CONFIG:-}" ] && [ -f "$MAO_CONFIG" ]; then
    install -m 0600 -o "$user" -g "$(id -g "$user")" "$MAO_CONFIG" "$home/.mao-config.yaml"
    export MAO_CONFIG="$home/.mao-config.yaml"
fi

if [ -n "${MAO_DATA_DIR:-}" ]; then
    mkdir -p "$MAO_DATA_DIR"
    if [ "$(stat -c %u "$MAO_DATA_DIR")" = 0 ]; then
        chown "$user:" "$MAO_DATA_DIR"
    fi
fi

groups=$(id -g "$user")
if [ -n "${MAO_ENGINE_SOCKET:-}" ] && [ -S "$MAO_ENGINE_SOCKET" ]; then
    groups="$groups,$(stat -c %g "$MAO_ENGINE_SOCKET")"
fi

export HOME="$home"
exec setpriv --reuid="$user" --regid="$user" --groups="$groups" --inh-caps=-all -- maoctl "$@"
