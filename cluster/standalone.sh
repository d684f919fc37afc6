#!/usr/bin/env bash
# A Spark standalone cluster on this machine, bound to 127.0.0.1: a master and N workers.
#
#   cluster/standalone.sh up N [--cores C] [--memory M] [--port P]   prints the master URL
#   cluster/standalone.sh down                                         stops what `up` started
#
# Logs, pids and work folders live in $STANDALONE_DIR (default cluster/run/). `down` stops
# exactly the processes whose pids `up` wrote there. The pyspark wheel has no sbin/ scripts,
# so the daemons are started with spark-class.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state=${STANDALONE_DIR:-$here/run}
venv_bin=$here/../.venv/bin
spark_class=${SPARK_CLASS:-$venv_bin/spark-class}
export SPARK_LOCAL_IP=127.0.0.1
export SPARK_CONF_DIR=${SPARK_CONF_DIR:-$here/conf}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$venv_bin/python}
export SPARK_DAEMON_JAVA_OPTS="-Dlog4j2.configurationFile=file:$here/conf/log4j2-daemons.properties"

wait_for() {  # wait_for FILE PATTERN SECONDS
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ((SECONDS > deadline)); then
            echo "standalone: '$2' did not appear in $1 within $3 s" >&2
            tail -20 "$1" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

up() {
    local workers=${1:?usage: standalone.sh up N [--cores C] [--memory M] [--port P]}
    shift
    local cores=1 memory=2g port=7077
    while (($#)); do
        case $1 in
            --cores) cores=$2; shift 2 ;;
            --memory) memory=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            *) echo "standalone: unknown flag $1" >&2; exit 2 ;;
        esac
    done
    if compgen -G "$state/*.pid" >/dev/null; then
        echo "standalone: $state already has a running cluster; run 'down' first" >&2
        exit 1
    fi
    mkdir -p "$state"
    local master=spark://127.0.0.1:$port
    "$spark_class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" \
        --webui-port 0 >"$state/master.log" 2>&1 &
    echo $! >"$state/master.pid"
    wait_for "$state/master.log" "I have been elected leader" 60
    for i in $(seq 1 "$workers"); do
        "$spark_class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores "$cores" \
            --memory "$memory" --webui-port 0 --work-dir "$state/worker-$i" "$master" \
            >"$state/worker-$i.log" 2>&1 &
        echo $! >"$state/worker-$i.pid"
    done
    for i in $(seq 1 "$workers"); do
        wait_for "$state/worker-$i.log" "Successfully registered with master" 60
    done
    echo "$master"
}

down() {
    local pid_file pid
    for pid_file in "$state"/*.pid; do
        [[ -e $pid_file ]] || continue
        pid=$(<"$pid_file")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pid_file"
    done
}

case ${1:-} in
    up) shift; up "$@" ;;
    down) down ;;
    *) echo "usage: $0 up N [--cores C] [--memory M] [--port P] | down" >&2; exit 2 ;;
esac
