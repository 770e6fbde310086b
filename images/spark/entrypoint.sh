#!/bin/bash
# Entrypoint of the Spark image for the pods Spark itself starts. A job's own pod (the task's
# pod, a client-mode driver) sets its command and never runs this.
#   executor          Spark's Kubernetes scheduler starts an executor pod with this argument
#                     and describes the executor in SPARK_* environment variables.
#   driver ARGS...    spark-operator's driver pod (cluster mode): spark-submit ARGS in client
#                     mode inside that pod.
#   anything else     run as given.
set -euo pipefail
spark_home=${SPARK_HOME:?SPARK_HOME is not set in the image}

case "${1:-}" in
  executor)
    shift
    # SPARK_JAVA_OPT_<n>: the executor JVM's options, in the order n gives.
    java_opts=()
    while IFS= read -r opt; do
      java_opts+=("$opt")
    done < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | cut -d= -f2-)
    # SPARK_CLASSPATH carries spark.executor.extraClassPath (the image's extra jars); leaving
    # it out fails later, with a misleading ClassCastException about SerializedLambda.
    exec java "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY:?}" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$spark_home/jars/*" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL:?}" \
      --executor-id "${SPARK_EXECUTOR_ID:?}" \
      --cores "${SPARK_EXECUTOR_CORES:?}" \
      --app-id "${SPARK_APPLICATION_ID:?}" \
      --hostname "${SPARK_EXECUTOR_POD_IP:?}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME:-$HOSTNAME}"
    ;;
  driver)
    shift
    exec "$spark_home/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}" \
      --deploy-mode client "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
