#!/usr/bin/env bash
# Ship jaxcompress to every worker of a TPU VM / pod slice, install it, and run
# the same `jaxcompress train ...` on all workers at once. Run it from your
# workstation; it only calls git and gcloud. See tpu/README.md.
set -euo pipefail

TPU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tpu/_common.sh
source "$TPU_DIR/_common.sh"

usage() {
    cat <<EOF
Usage: $PROG [options] setup
       $PROG [options] train -- CONFIG [--workdir /mnt/gcs/BUCKET/RUN] [--set key=value ...]
       $PROG [options] run -- EXPERIMENT [--config FILE.py] [--out /mnt/gcs/BUCKET/RUN] [--set key=value ...]
       $PROG [options] logs [--lines N] [--follow]
       $PROG [options] stop [--force]

  setup   copy the project to every worker (a git archive of --ref, or a clone
          of --git-url) and install it there in a virtual environment:
          pip install -e . "jax[tpu]"
  train   start \`jaxcompress train ARGS\` on every worker at once, in the
          background (setsid + nohup), appending to a log file on each worker.
          ARGS is everything after --, passed through unchanged. A multi-host
          run needs a --workdir that all workers see (NFS, or a GCS bucket mounted with gcsfuse).
  run     the same for \`jaxcompress run ARGS\` (an experiment workflow such as
          large-then-compress); one host (e.g. v5litepod-8, v4-8): use --worker 0
  logs    print the end of every worker's log, each line tagged with the
          worker's host name (--follow: keep printing; best with --worker N)
  stop    send SIGTERM to the training process group on every worker (the
          trainer saves a checkpoint and exits); --force sends SIGKILL

Options (environment variable that sets the default in brackets):
  --name NAME            TPU name [JAXCOMPRESS_TPU_NAME]
  --zone ZONE            TPU zone [JAXCOMPRESS_TPU_ZONE]
  --project PROJECT      Google Cloud project [JAXCOMPRESS_TPU_PROJECT]
  --worker W             all (default), one index, or a list such as 0,2
  --ref REF              git revision to ship with setup (default: HEAD; only
                         committed changes travel)
  --git-url URL          clone URL on the workers instead of copying an archive
  --remote-dir DIR       project checkout on the workers (default: ~/jaxcompress)
  --venv DIR             virtual environment on the workers
                         (default: ~/jaxcompress-venv)
  --log-dir DIR          logs and pid file on the workers (default: ~/jaxcompress-logs)
  --python-version V     Python for the venv, installed by uv if the image lacks
                         it (default: 3.12; TPU images ship 3.10, jaxcompress
                         needs 3.11+) [JAXCOMPRESS_PYTHON_VERSION]
  --jax-spec SPEC        JAX requirement installed with the project
                         (default: "jax[tpu]"; e.g. "jax[tpu]==0.10.2")
  --env KEY=VALUE        environment variable for the training processes
                         (repeatable), e.g. --env LIBTPU_INIT_ARGS=...
  --gcloud-arg ARG       extra flag for every gcloud ssh/scp call (repeatable),
                         e.g. --gcloud-arg=--internal-ip (workers without
                         external IPs, reached from inside their VPC)
  --lines N              logs: how many lines per worker (default: 50)
  --follow               logs: keep following the logs
  --force                stop: SIGKILL instead of SIGTERM
  --dry-run              print every command, run nothing
  -h, --help             this help

Examples:
  $PROG --name jc-v5e --zone us-west4-a setup --dry-run
  $PROG --name jc-v5e --zone us-west4-a train --dry-run -- \\
      CONFIG --workdir /mnt/gcs/my-bucket/runs/v5e-16 --set steps=20000
EOF
}

NAME=${JAXCOMPRESS_TPU_NAME:-}
ZONE=${JAXCOMPRESS_TPU_ZONE:-}
PROJECT=${JAXCOMPRESS_TPU_PROJECT:-}
WORKER=all
REF=HEAD
GIT_URL=""
# Paths on the workers: the ~ is meant to reach the workers' shell unexpanded.
# shellcheck disable=SC2088
REMOTE_DIR="~/jaxcompress"
# shellcheck disable=SC2088
VENV="~/jaxcompress-venv"
# shellcheck disable=SC2088
LOG_DIR="~/jaxcompress-logs"
PYTHON_VERSION=${JAXCOMPRESS_PYTHON_VERSION:-3.12}
JAX_SPEC="jax[tpu]"
LINES=50
FOLLOW=0
FORCE=0
ACTION=""
ENV_VARS=()
GCLOUD_ARGS=()
TRAIN_ARGS=()
HAVE_TRAIN_ARGS=0
_value=""

while [[ $# -gt 0 ]]; do
    case $1 in
        setup|train|run|logs|stop)
            [[ -z $ACTION ]] || die "one action at a time (got '$ACTION' and '$1')"
            ACTION=$1; shift ;;
        --name|--name=*) take_value NAME "$@"; shift "$TAKEN" ;;
        --zone|--zone=*) take_value ZONE "$@"; shift "$TAKEN" ;;
        --project|--project=*) take_value PROJECT "$@"; shift "$TAKEN" ;;
        --worker|--worker=*) take_value WORKER "$@"; shift "$TAKEN" ;;
        --ref|--ref=*) take_value REF "$@"; shift "$TAKEN" ;;
        --git-url|--git-url=*) take_value GIT_URL "$@"; shift "$TAKEN" ;;
        --remote-dir|--remote-dir=*) take_value REMOTE_DIR "$@"; shift "$TAKEN" ;;
        --venv|--venv=*) take_value VENV "$@"; shift "$TAKEN" ;;
        --log-dir|--log-dir=*) take_value LOG_DIR "$@"; shift "$TAKEN" ;;
        --python-version|--python-version=*) take_value PYTHON_VERSION "$@"; shift "$TAKEN" ;;
        --jax-spec|--jax-spec=*) take_value JAX_SPEC "$@"; shift "$TAKEN" ;;
        --lines|--lines=*) take_value LINES "$@"; shift "$TAKEN" ;;
        --env|--env=*)
            take_value _value "$@"; shift "$TAKEN"
            [[ $_value =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs KEY=VALUE, got '$_value'"
            ENV_VARS+=("$_value") ;;
        --gcloud-arg|--gcloud-arg=*)
            take_value _value "$@"; shift "$TAKEN"
            GCLOUD_ARGS+=("$_value") ;;
        --follow) FOLLOW=1; shift ;;
        --force) FORCE=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; TRAIN_ARGS=("$@"); HAVE_TRAIN_ARGS=$#; break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ -n $ACTION ]] || die "missing action: setup, train, logs or stop (see --help)"
require "$NAME" --name JAXCOMPRESS_TPU_NAME
require "$ZONE" --zone JAXCOMPRESS_TPU_ZONE
if [[ $ACTION != train && $ACTION != run && $HAVE_TRAIN_ARGS -gt 0 ]]; then
    die "arguments after -- are for train and run only"
fi

# Remote paths are written unquoted into the command the workers' shell runs,
# so that a leading ~ expands there, not here. Allow only characters that need
# no quoting, which keeps that safe, and only absolute or ~/ paths, because
# the worker commands change directory before using some of them.
for _path in "$REMOTE_DIR" "$VENV" "$LOG_DIR"; do
    [[ $_path =~ ^(~/|/)[A-Za-z0-9_./-]+$ ]] ||
        die "remote path '$_path' must start with / or ~/ and use only letters, digits, _ . / -"
done
[[ $PYTHON_VERSION =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "--python-version must look like 3.12, got '$PYTHON_VERSION'"
[[ $LINES =~ ^[0-9]+$ ]] || die "--lines must be a number, got '$LINES'"

# gcloud flags shared by every ssh/scp call. --worker=all runs the command on
# all workers concurrently, which is what a multi-host JAX job needs: each
# worker's process waits in jax.distributed.initialize for the others.
GCLOUD=(--zone="$ZONE")
if [[ -n $PROJECT ]]; then
    GCLOUD+=(--project="$PROJECT")
fi
GCLOUD+=(${GCLOUD_ARGS[@]+"${GCLOUD_ARGS[@]}"})

on_workers() {  # on_workers REMOTE_COMMAND: run one shell command line on the workers
    run gcloud compute tpus tpu-vm ssh "$NAME" --worker="$WORKER" "${GCLOUD[@]}" --command="$1"
}

PID_FILE="$LOG_DIR/train.pid"
LOG_FILE="$LOG_DIR/train.log"
# Every line a worker prints starts with its host name (t1v-n-...-w-N), so
# that the interleaved output of many workers can be told apart. The workers'
# shell expands it, hence the single quotes here.
# shellcheck disable=SC2016
TAG='[$(hostname)]'

case $ACTION in
setup)
    if [[ -n $GIT_URL ]]; then
        # Clone on each worker (the workers need access to the repository).
        fetch="if [ -d $REMOTE_DIR/.git ]; then git -C $REMOTE_DIR fetch --quiet origin $(quote_word "$REF")"
        fetch+=" && git -C $REMOTE_DIR checkout --quiet --force FETCH_HEAD;"
        fetch+=" else git clone --quiet $(quote_word "$GIT_URL") $REMOTE_DIR"
        fetch+=" && git -C $REMOTE_DIR checkout --quiet $(quote_word "$REF"); fi"
    else
        # Ship exactly what git tracks at REF (no local venvs, caches or data)
        # as one small file: one scp per worker instead of thousands of files.
        root=$(repo_root)
        archive="${TMPDIR:-/tmp}/jaxcompress-src-$NAME.tar.gz"
        if [[ $DRY_RUN != 1 ]] && ! git -C "$root" diff --quiet "$REF" -- 2>/dev/null; then
            warn "uncommitted changes are not shipped: setup copies $REF"
        fi
        run git -C "$root" archive --format=tar.gz -o "$archive" "$REF"
        run gcloud compute tpus tpu-vm scp "$archive" "$NAME:jaxcompress-src.tar.gz" \
            --worker="$WORKER" "${GCLOUD[@]}"
        run rm -f "$archive"
        # Unpack over the previous copy: files deleted from the repository stay
        # behind, which is harmless for an editable install.
        fetch="mkdir -p $REMOTE_DIR && tar -xzf jaxcompress-src.tar.gz -C $REMOTE_DIR"
        fetch+=" && rm -f jaxcompress-src.tar.gz"
    fi
    # TPU runtime images ship Python 3.10; uv provides a newer interpreter
    # without root and builds the venv (--seed puts pip in it). An existing
    # venv is kept, so setup can be re-run after code changes.
    venv="if [ ! -x $VENV/bin/python ]; then python3 -m pip install --user --quiet --upgrade uv"
    venv+=" && python3 -m uv venv --seed --python $PYTHON_VERSION $VENV; fi"
    install="cd $REMOTE_DIR && $VENV/bin/python -m pip install --quiet -e . $(quote_word "$JAX_SPEC")"
    install+=" && echo \"$TAG \$($VENV/bin/jaxcompress --version)\""
    on_workers "set -e; $fetch; $venv; $install"
    ;;

train|run)
    [[ $HAVE_TRAIN_ARGS -gt 0 ]] || die "$ACTION needs the jaxcompress $ACTION arguments after --, e.g. train -- CONFIG --workdir /mnt/gcs/BUCKET/RUN"
    if [[ $ACTION == train && $WORKER != all ]]; then
        warn "training on --worker=$WORKER only: the processes wait for the missing workers until they time out"
    fi
    case " ${TRAIN_ARGS[*]} " in
        *" --workdir"*|*" --out"*) ;;
        *) warn "no --workdir: multi-host checkpoints need one all workers see (NFS, or a GCS bucket mounted with gcsfuse)" ;;
    esac
    train_cmd="$VENV/bin/jaxcompress $ACTION $(quote_cmd "${TRAIN_ARGS[@]}")"
    exports=""
    for kv in ${ENV_VARS[@]+"${ENV_VARS[@]}"}; do
        exports+="export ${kv%%=*}=$(quote_word "${kv#*=}"); "
    done
    # A second trainer on the same worker would fail to open the TPU (and
    # would fight over the checkpoint): refuse while the last one lives.
    guard="if [ -f $PID_FILE ] && kill -0 \"\$(cat $PID_FILE)\" 2>/dev/null; then"
    guard+=" echo \"$TAG already training (pid \$(cat $PID_FILE)); run stop first\" >&2; exit 1; fi"
    # setsid: the trainer leads its own process group, so stop can signal it
    # and everything it spawned; nohup + redirects: it outlives the ssh connection.
    start="{ setsid nohup $train_cmd >> $LOG_FILE 2>&1 < /dev/null & echo \$! > $PID_FILE; }"
    remote="set -e; cd $REMOTE_DIR; mkdir -p $LOG_DIR; $guard; $exports"
    remote+="echo \"=== \$(date -u +%Y-%m-%dT%H:%M:%SZ) start\" >> $LOG_FILE; $start; "
    remote+="echo \"$TAG started pid \$(cat $PID_FILE), log $LOG_FILE\""
    on_workers "$remote"
    ;;

logs)
    tail_opts="-n $LINES"
    if [[ $FOLLOW == 1 ]]; then
        tail_opts+=" -f"
    fi
    remote="if [ -f $LOG_FILE ]; then tail $tail_opts $LOG_FILE | sed -u \"s/^/$TAG /\";"
    remote+=" else echo \"$TAG no log at $LOG_FILE yet\"; fi"
    on_workers "$remote"
    ;;

stop)
    signal=TERM
    if [[ $FORCE == 1 ]]; then
        signal=KILL
    fi
    # The pid file stays: train's guard checks whether that process is alive.
    remote="if [ -f $PID_FILE ] && kill -0 \"\$(cat $PID_FILE)\" 2>/dev/null; then"
    remote+=" kill -$signal -- -\"\$(cat $PID_FILE)\""
    remote+=" && echo \"$TAG sent SIG$signal to process group \$(cat $PID_FILE)\";"
    remote+=" else echo \"$TAG not running\"; fi"
    on_workers "$remote"
    ;;
esac
