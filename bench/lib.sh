# Shell functions the A/B scripts share (sourced: `. "$(dirname "$0")/lib.sh"`).
# They expect SERVER_CPU (the core servers are pinned to).

# A free port on 127.0.0.1 (nobody answers on it right now).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "no free port" >&2; exit 1
}

# Starts `$@` pinned to core $SERVER_CPU, with {port} and {admin} in its
# arguments replaced by free ports; sets PID, PORT and ADMIN once it accepts
# on PORT. Gives up after 5 tries (another process may take a port first).
start_server() {
  local try cmd
  for try in 1 2 3 4 5; do
    PORT=$(free_port); ADMIN=$(free_port)
    cmd=("${@//\{port\}/$PORT}")
    cmd=("${cmd[@]//\{admin\}/$ADMIN}")
    taskset -c "$SERVER_CPU" "${cmd[@]}" 2>/dev/null &
    PID=$!
    for _ in $(seq 1 200); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        kill -0 "$PID" 2>/dev/null && return 0
      fi
      kill -0 "$PID" 2>/dev/null || break # exited: port taken, try another
      sleep 0.05 # start-up poll, bounded by the loop
    done
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  done
  echo "cannot start: $*" >&2
  exit 1
}

# Stops the processes `$@` and reaps them.
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
