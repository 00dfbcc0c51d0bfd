# Start and stop a headless PulseAudio server (sourced by .ci/run; usable by hand too).
# Works as root without D-Bus: the native protocol on a socket in $XDG_RUNTIME_DIR, a null
# sink as the default device so PortAudio's ALSA "pulse"/"default" devices always have one.
# The server's pid is kept in $XDG_RUNTIME_DIR/pulseaudio.pid, so stop_soundserver also works
# from another shell than the one that started it.
start_soundserver() {
    if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
        echo "start_soundserver: set XDG_RUNTIME_DIR to a private folder first"; return 1
    fi
    if pactl info >/dev/null 2>&1; then
        echo "sound server already running"; return 0
    fi
    pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit \
        --load=module-native-protocol-unix \
        --load="module-null-sink sink_name=ci_default_sink" \
        --load=module-always-sink >"${XDG_RUNTIME_DIR}/pulseaudio.log" 2>&1 &
    SOUNDSERVER_PID=$!
    echo "$SOUNDSERVER_PID" >"${XDG_RUNTIME_DIR}/pulseaudio.pid"
    for _ in $(seq 1 50); do
        pactl info >/dev/null 2>&1 && { echo "PulseAudio started (pid $SOUNDSERVER_PID)"; return 0; }
        sleep 0.2
    done
    echo "PulseAudio did not start:"; cat "${XDG_RUNTIME_DIR}/pulseaudio.log"; return 1
}
stop_soundserver() {
    local pid="${SOUNDSERVER_PID:-}"
    if [ -z "$pid" ] && [ -f "${XDG_RUNTIME_DIR:-/nonexistent}/pulseaudio.pid" ]; then
        pid=$(cat "${XDG_RUNTIME_DIR}/pulseaudio.pid")
    fi
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    rm -f "${XDG_RUNTIME_DIR:-/nonexistent}/pulseaudio.pid"
}
