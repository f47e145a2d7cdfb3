#!/usr/bin/env bash
# Submit tpu/slurm_gpu.sbatch with the node and GPU counts as flags, so that
# the batch file itself needs no editing. Run it on a SLURM login node with the
# jaxcompress virtual environment active. See tpu/README.md.
set -euo pipefail

TPU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tpu/_common.sh
source "$TPU_DIR/_common.sh"

usage() {
    cat <<EOF
Usage: $PROG [options] -- CONFIG --workdir SHARED_DIR [TRAIN_ARGS...]

Submit a multi-node GPU training job: sbatch tpu/slurm_gpu.sbatch, which runs
one \`jaxcompress train\` per GPU (or per node with --per-node) with srun.

Options (environment variable that sets the default in brackets):
  --nodes N            nodes (default: 2) [JAXCOMPRESS_SLURM_NODES]
  --gpus-per-node G    GPUs on each node (default: 8) [JAXCOMPRESS_SLURM_GPUS_PER_NODE]
  --per-node           one process per node driving all its GPUs, instead of
                       one process per GPU
  --cpus-per-task C    CPU cores for each process (input pipeline)
  --partition P        [JAXCOMPRESS_SLURM_PARTITION]
  --account A          [JAXCOMPRESS_SLURM_ACCOUNT]
  --time T             wall-clock limit, e.g. 04:00:00 or 2-00:00:00
  --job-name NAME      (default: jaxcompress)
  --sbatch-arg ARG     any other sbatch flag (repeatable), e.g.
                       --sbatch-arg=--qos=high --sbatch-arg=--exclusive
  --dry-run            print the sbatch command, run nothing
  -h, --help           this help

Everything after -- goes to \`jaxcompress train\` unchanged. The job log is
written to JOBNAME-JOBID.out in the directory you submit from.

Example:
  $PROG --nodes 2 --gpus-per-node 8 --dry-run -- CONFIG --workdir /shared/runs/2x8
EOF
}

NODES=${JAXCOMPRESS_SLURM_NODES:-2}
GPUS_PER_NODE=${JAXCOMPRESS_SLURM_GPUS_PER_NODE:-8}
PARTITION=${JAXCOMPRESS_SLURM_PARTITION:-}
ACCOUNT=${JAXCOMPRESS_SLURM_ACCOUNT:-}
PER_NODE=0
CPUS_PER_TASK=""
TIME_LIMIT=""
JOB_NAME=jaxcompress
SBATCH_ARGS=()
TRAIN_ARGS=()
_value=""

while [[ $# -gt 0 ]]; do
    case $1 in
        --nodes|--nodes=*) take_value NODES "$@"; shift "$TAKEN" ;;
        --gpus-per-node|--gpus-per-node=*) take_value GPUS_PER_NODE "$@"; shift "$TAKEN" ;;
        --cpus-per-task|--cpus-per-task=*) take_value CPUS_PER_TASK "$@"; shift "$TAKEN" ;;
        --partition|--partition=*) take_value PARTITION "$@"; shift "$TAKEN" ;;
        --account|--account=*) take_value ACCOUNT "$@"; shift "$TAKEN" ;;
        --time|--time=*) take_value TIME_LIMIT "$@"; shift "$TAKEN" ;;
        --job-name|--job-name=*) take_value JOB_NAME "$@"; shift "$TAKEN" ;;
        --sbatch-arg|--sbatch-arg=*)
            take_value _value "$@"; shift "$TAKEN"
            SBATCH_ARGS+=("$_value") ;;
        --per-node) PER_NODE=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; TRAIN_ARGS=("$@"); break ;;
        *) die "unknown option '$1' (see --help; train arguments go after --)" ;;
    esac
done

[[ ${#TRAIN_ARGS[@]} -gt 0 ]] || die "missing train arguments after --, e.g. -- CONFIG --workdir /shared/runs/NAME"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer, got '$NODES'"
[[ $GPUS_PER_NODE =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node must be a positive integer, got '$GPUS_PER_NODE'"
case " ${TRAIN_ARGS[*]} " in
    *" --workdir"*) ;;
    *) warn "no --workdir: every node must write checkpoints to the same shared directory" ;;
esac

TASKS_PER_NODE=$GPUS_PER_NODE
if [[ $PER_NODE == 1 ]]; then
    TASKS_PER_NODE=1
fi

# Flags on the command line override the #SBATCH defaults in the batch file.
cmd=(sbatch --job-name="$JOB_NAME" --nodes="$NODES" --ntasks-per-node="$TASKS_PER_NODE"
     --gpus-per-node="$GPUS_PER_NODE")
if [[ -n $CPUS_PER_TASK ]]; then cmd+=(--cpus-per-task="$CPUS_PER_TASK"); fi
if [[ -n $PARTITION ]]; then cmd+=(--partition="$PARTITION"); fi
if [[ -n $ACCOUNT ]]; then cmd+=(--account="$ACCOUNT"); fi
if [[ -n $TIME_LIMIT ]]; then cmd+=(--time="$TIME_LIMIT"); fi
# sbatch runs a copy of the batch file, which then cannot find its helpers by
# its own location; tell it where this folder is. ALL keeps the caller's
# environment (the activated venv's PATH) for the job.
[[ $TPU_DIR != *,* ]] || die "the path of this folder contains a comma, which sbatch --export cannot pass: $TPU_DIR"
cmd+=("--export=ALL,JAXCOMPRESS_TPU_DIR=$TPU_DIR")
cmd+=(${SBATCH_ARGS[@]+"${SBATCH_ARGS[@]}"})
run "${cmd[@]}" "$TPU_DIR/slurm_gpu.sbatch" -- "${TRAIN_ARGS[@]}"
