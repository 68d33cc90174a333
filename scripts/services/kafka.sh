#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker in KRaft combined mode (broker + controller) on 127.0.0.1,
# without Docker: the jars come from Maven Central (scripts/kafka/pom.xml) into a cache outside the
# repository, and the JVM is started the way Kafka's own bin/kafka-server-start.sh would.
#
#   scripts/services/kafka.sh start|stop|status|libs
#
# State (config, data, log, pid, bootstrap address) lives in .services/kafka/ (or
# $DXAI_SERVICES_DIR/kafka).  Each start formats a fresh, empty log directory.
# Environment: KAFKA_PORT (default 9092, another free port when taken), KAFKA_CONTROLLER_PORT
# (default 9093), KAFKA_HEAP (default 384m), KAFKA_START_TIMEOUT (seconds, default 120).
set -euo pipefail
SERVICE_NAME=kafka
# shellcheck source=scripts/services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STATE="$SERVICES_DIR/kafka"
POM="$REPO_ROOT/scripts/kafka/pom.xml"
PIDFILE="$STATE/kafka.pid"
LOGFILE="$STATE/kafka.log"
PROPS="$STATE/server.properties"
MARK="kafka.Kafka $PROPS"
PROBE_PY="${DXAI_SERVICES_PYTHON:-$REPO_ROOT/.venv/bin/python}"

# libs_dir: the jar folder for this pom (keyed by the pom's hash so a version bump re-resolves).
libs_dir() { echo "$DXAI_CACHE/kafka-libs-$(sha256sum "$POM" | cut -c1-12)"; }

# ensure_libs: download the broker's jars once (mvn dependency:copy-dependencies).
ensure_libs() {
  local libs tmp t0
  libs="$(libs_dir)"
  if [[ -f "$libs/.complete" ]]; then
    log "jars already in $libs"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: run scripts/install_system.sh"
  t0="$(now_s)"
  tmp="$libs.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    show_tail "$tmp.mvn.log" 60
    die "maven could not resolve the Kafka jars"
  fi
  rm -f "$tmp.mvn.log"
  rm -rf "$libs" && mv "$tmp" "$libs" && touch "$libs/.complete"
  log "jars downloaded to $libs in $(elapsed_s "$t0")s"
}

# java_opts: the options kafka-run-class.sh uses (heap, G1, headless, log4j2 config).
java_opts() {
  local heap="${KAFKA_HEAP:-384m}"
  printf '%s\n' "-Xmx$heap" "-Xms$heap" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$STATE/log4j2.properties" "-Dkafka.logs.dir=$STATE"
}

# write_log4j: broker logs go to $STATE/server.log (INFO; noisy loggers at WARN).
write_log4j() {
  cat >"$STATE/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $STATE/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

# write_props PORT CPORT: the KRaft combined-mode server.properties.
write_props() {
  local port="$1" cport="$2"
  cat >"$PROPS" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
num.partitions=3
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=8388608
log.retention.hours=24
num.network.threads=2
num.io.threads=4
EOF
}

# run_java MAIN ARGS...: run a Kafka main class in the foreground with the broker's class path.
run_java() {
  local libs
  libs="$(libs_dir)"
  java -Xmx256m -Djava.awt.headless=true "-Dlog4j2.configurationFile=$STATE/log4j2.properties" \
    -cp "$libs/*" "$@"
}

# format_storage: fresh log dir, new random cluster id, standalone (single voter) quorum.
format_storage() {
  local cluster_id
  rm -rf "$STATE/data"
  cluster_id="$(run_java kafka.tools.StorageTool random-uuid | tail -n 1)"
  run_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$PROPS" >&2
  echo "$cluster_id" >"$STATE/cluster_id"
}

# wait_ready BOOTSTRAP PORT T0: port opens only when the broker is ready; then a metadata request.
wait_ready() {
  local bootstrap="$1" port="$2" t0="$3" deadline
  deadline=$(($(date +%s) + ${KAFKA_START_TIMEOUT:-120}))
  until port_open "$port"; do
    pid_alive "$PIDFILE" "$MARK" || { show_tail "$LOGFILE" 60; show_tail "$STATE/server.log" 60; die "broker exited"; }
    (($(date +%s) < deadline)) || { show_tail "$STATE/server.log" 60; die "port $port not open in time"; }
    sleep 0.2
  done
  until "$PROBE_PY" "$REPO_ROOT/scripts/services/kafka_probe.py" "$bootstrap" 5 >"$STATE/probe.json"; do
    (($(date +%s) < deadline)) || { show_tail "$STATE/server.log" 60; die "no metadata answer in time"; }
    sleep 0.5
  done
  log "ready at $bootstrap in $(elapsed_s "$t0")s (metadata: $(cat "$STATE/probe.json"))"
}

cmd_start() {
  if pid_alive "$PIDFILE" "$MARK"; then
    log "already running (pid $(cat "$PIDFILE")) at $(cat "$STATE/bootstrap")"
    return 0
  fi
  command -v java >/dev/null || die "java not found: run scripts/install_system.sh"
  "$PROBE_PY" -c "import aiokafka" 2>/dev/null ||
    die "$PROBE_PY cannot import aiokafka (set DXAI_SERVICES_PYTHON to a python that can)"
  mkdir -p "$STATE"
  ensure_libs
  local port cport t0 opts
  port="$(free_port "${KAFKA_PORT:-9092}")"
  cport="$(free_port "${KAFKA_CONTROLLER_PORT:-9093}")"
  [[ "$port" != "$cport" ]] || cport="$(free_port)"
  write_log4j
  write_props "$port" "$cport"
  format_storage
  rm -f "$STATE/bootstrap" && : >"$LOGFILE"
  t0="$(now_s)"
  mapfile -t opts < <(java_opts)
  start_detached "$PIDFILE" "$LOGFILE" java "${opts[@]}" -cp "$(libs_dir)/*" kafka.Kafka "$PROPS"
  wait_ready "127.0.0.1:$port" "$port" "$t0"
  echo "127.0.0.1:$port" >"$STATE/bootstrap"
  elapsed_s "$t0" >"$STATE/ready_seconds"
  echo "127.0.0.1:$port"
}

cmd_stop() {
  if pid_alive "$PIDFILE" "$MARK"; then
    log "stopping pid $(cat "$PIDFILE")"
  fi
  stop_pid "$PIDFILE" "$MARK" "${KAFKA_STOP_TIMEOUT:-30}"
  rm -f "$STATE/bootstrap"
  log "stopped"
}

cmd_status() {
  if pid_alive "$PIDFILE" "$MARK" && [[ -s "$STATE/bootstrap" ]]; then
    echo "kafka running pid=$(cat "$PIDFILE") bootstrap=$(cat "$STATE/bootstrap")"
    return 0
  fi
  echo "kafka not running"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  libs) ensure_libs && libs_dir ;;
  *) echo "usage: $0 start|stop|status|libs" >&2; exit 2 ;;
esac
