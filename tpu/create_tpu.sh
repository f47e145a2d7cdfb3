#!/usr/bin/env bash
# Create (or delete) a Cloud TPU VM or multi-host pod slice for jaxcompress.
# Run it from your workstation; it only calls gcloud. See tpu/README.md.
set -euo pipefail

TPU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tpu/_common.sh
source "$TPU_DIR/_common.sh"

usage() {
    cat <<EOF
Usage: $PROG --name NAME --zone ZONE [options] [-- EXTRA_GCLOUD_FLAGS...]
       $PROG --name NAME --zone ZONE --delete [--queued]
       $PROG --name NAME --zone ZONE --status [--queued]

Create a Cloud TPU VM or pod slice with the gcloud CLI, or tear it down.

Options (environment variable that sets the default in brackets):
  --name NAME              TPU name, also used by launch_pod.sh [JAXCOMPRESS_TPU_NAME]
  --zone ZONE              e.g. us-west4-a (v5e), us-central2-b (v4) [JAXCOMPRESS_TPU_ZONE]
  --project PROJECT        Google Cloud project; default: gcloud's configured one
                           [JAXCOMPRESS_TPU_PROJECT]
  --accelerator-type TYPE  v5litepod-16, v4-32, v6e-8, ... (default: v5litepod-16)
                           [JAXCOMPRESS_TPU_TYPE]
  --version VERSION        TPU software (runtime) image; default chosen from the
                           accelerator family: v4 and older tpu-ubuntu2204-base,
                           v5e v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5,
                           v6e v2-alpha-tpuv6e [JAXCOMPRESS_TPU_VERSION]
  --spot                   spot capacity: cheaper, can be preempted at any time
                           (checkpoints resume; see README) [JAXCOMPRESS_TPU_SPOT=1]
  --queued                 request through a queued resource (waits for capacity
                           instead of failing when the zone is out of it)
                           [JAXCOMPRESS_TPU_QUEUED=1]
  --valid-until DURATION   with --queued: give up the request after e.g. 6h
  --delete                 delete the TPU (with --queued: the queued resource
                           and its TPU)
  --status                 describe the TPU (or the queued resource)
  --dry-run                print the gcloud commands, run nothing
  -h, --help               this help

Everything after -- goes to gcloud's create command unchanged
(e.g. -- --network=my-net --subnetwork=my-subnet --internal-ips).

Examples:
  $PROG --name jc-v5e --zone us-west4-a --accelerator-type v5litepod-16 --dry-run
  $PROG --name jc-v4 --zone us-central2-b --accelerator-type v4-32 --spot
  $PROG --name jc-v5e --zone us-west4-a --delete
EOF
}

NAME=${JAXCOMPRESS_TPU_NAME:-}
ZONE=${JAXCOMPRESS_TPU_ZONE:-}
PROJECT=${JAXCOMPRESS_TPU_PROJECT:-}
ACCELERATOR=${JAXCOMPRESS_TPU_TYPE:-v5litepod-16}
VERSION=${JAXCOMPRESS_TPU_VERSION:-}
SPOT=${JAXCOMPRESS_TPU_SPOT:-0}
QUEUED=${JAXCOMPRESS_TPU_QUEUED:-0}
VALID_UNTIL=""
ACTION=create
EXTRA=()

while [[ $# -gt 0 ]]; do
    case $1 in
        --name|--name=*) take_value NAME "$@"; shift "$TAKEN" ;;
        --zone|--zone=*) take_value ZONE "$@"; shift "$TAKEN" ;;
        --project|--project=*) take_value PROJECT "$@"; shift "$TAKEN" ;;
        --accelerator-type|--accelerator-type=*) take_value ACCELERATOR "$@"; shift "$TAKEN" ;;
        --version|--version=*) take_value VERSION "$@"; shift "$TAKEN" ;;
        --valid-until|--valid-until=*) take_value VALID_UNTIL "$@"; shift "$TAKEN" ;;
        --spot) SPOT=1; shift ;;
        --queued) QUEUED=1; shift ;;
        --delete) ACTION=delete; shift ;;
        --status) ACTION=status; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

require "$NAME" --name JAXCOMPRESS_TPU_NAME
require "$ZONE" --zone JAXCOMPRESS_TPU_ZONE

# Flags every gcloud call here shares.
SCOPE=(--zone="$ZONE")
if [[ -n $PROJECT ]]; then
    SCOPE+=(--project="$PROJECT")
fi

# The runtime image must match the TPU generation; pick the one Google
# recommends for JAX on each family so that --accelerator-type alone is enough.
default_version() {
    case $1 in
        v6e-*) echo v2-alpha-tpuv6e ;;
        v5p-*) echo v2-alpha-tpuv5 ;;
        v5litepod-*|v5e-*) echo v2-alpha-tpuv5-lite ;;
        v2-*|v3-*|v4-*) echo tpu-ubuntu2204-base ;;
        *) return 1 ;;
    esac
}

case $ACTION in
    delete)
        # --quiet: gcloud would otherwise stop and ask for confirmation.
        if [[ $QUEUED == 1 ]]; then
            # --force also deletes the TPU the queued resource created.
            run gcloud compute tpus queued-resources delete "$NAME" "${SCOPE[@]}" --force --quiet
        else
            run gcloud compute tpus tpu-vm delete "$NAME" "${SCOPE[@]}" --quiet
        fi
        exit 0
        ;;
    status)
        if [[ $QUEUED == 1 ]]; then
            run gcloud compute tpus queued-resources describe "$NAME" "${SCOPE[@]}"
        else
            run gcloud compute tpus tpu-vm describe "$NAME" "${SCOPE[@]}"
        fi
        exit 0
        ;;
esac

if [[ -z $VERSION ]]; then
    VERSION=$(default_version "$ACCELERATOR") ||
        die "no default runtime image for accelerator type '$ACCELERATOR'; pass --version"
fi
[[ -z $VALID_UNTIL || $QUEUED == 1 ]] || die "--valid-until only applies with --queued"

CAPACITY=()
if [[ $SPOT == 1 ]]; then
    CAPACITY+=(--spot)
fi

if [[ $QUEUED == 1 ]]; then
    # The queued resource and the TPU it will create share the name, so that
    # launch_pod.sh and --delete need to know only one.
    cmd=(gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME"
         "${SCOPE[@]}" --accelerator-type="$ACCELERATOR" --runtime-version="$VERSION")
    if [[ -n $VALID_UNTIL ]]; then
        cmd+=(--valid-until-duration="$VALID_UNTIL")
    fi
    run "${cmd[@]}" ${CAPACITY[@]+"${CAPACITY[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}
    note "the TPU appears once the request is ACTIVE; check with: $PROG --name $NAME --zone $ZONE --queued --status"
else
    run gcloud compute tpus tpu-vm create "$NAME" "${SCOPE[@]}" \
        --accelerator-type="$ACCELERATOR" --version="$VERSION" \
        ${CAPACITY[@]+"${CAPACITY[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}
fi
