# shellcheck shell=bash
# Helpers shared by the launch scripts in this folder. Sourced, never run.
#
# Written for bash 3.2 as well as 4/5, because the TPU scripts are usually run
# from a laptop (macOS still ships bash 3.2): no associative arrays, no
# mapfile, and arrays that may be empty are expanded as ${a[@]+"${a[@]}"}
# (bash < 4.4 treats "${a[@]}" of an empty array as unbound under set -u).

# Name used in messages: the script that sourced us.
PROG=$(basename "${0:-launch}")
# 1: print commands instead of running them. Only --dry-run sets it (not the
# environment), so that a stray variable can never turn a run into a preview.
DRY_RUN=0

# One clear line on stderr and a non-zero exit (2, like other usage errors).
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

warn() {
    printf '%s: warning: %s\n' "$PROG" "$*" >&2
}

# Informational line that is not a command. Dry runs print commands as "+ ..."
# on stdout; notes go to stderr so that stdout stays a clean list of commands.
note() {
    printf '# %s\n' "$*" >&2
}

# Quote one word for a POSIX shell, as lightly as is still safe, so that the
# printed commands can be read and pasted back into a terminal.
#   plain words stay bare          jaxcompress  --zone=us-west4-a
#   no $ ` " \ ! inside -> "..."   "jax[tpu]"   "two words"
#   anything else -> '...'         'echo "$HOME"'  (a ' becomes '\'')
quote_word() {
    local word=$1 flag
    # --flag=value: quote only the value, which reads better in long lines.
    if [[ $word =~ ^(--[A-Za-z0-9][A-Za-z0-9-]*=)(.*)$ ]]; then
        flag=${BASH_REMATCH[1]}
        printf '%s' "$flag"
        quote_word "${BASH_REMATCH[2]}"
        return
    fi
    if [[ -n $word && $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
        printf '%s' "$word"
    elif [[ -n $word && ! $word =~ [\$\`\"\\!] ]]; then
        printf '"%s"' "$word"
    else
        printf "'%s'" "${word//\'/\'\\\'\'}"
    fi
}

# Quote every argument and join them with spaces: a command line.
quote_cmd() {
    local out="" word
    for word in "$@"; do
        out+="${out:+ }$(quote_word "$word")"
    done
    printf '%s' "$out"
}

# Run a command, or with DRY_RUN=1 only print it. Either way the command is
# shown as "+ cmd" (like bash -x): on stdout for a dry run, where it is the
# output, and on stderr for a real run, next to the command's own output.
run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf '+ %s\n' "$(quote_cmd "$@")"
        return 0
    fi
    printf '+ %s\n' "$(quote_cmd "$@")" >&2
    "$@"
}

# Option parsing helper: accepts both "--flag value" and "--flag=value".
#   --zone|--zone=*) take_value ZONE "$@"; shift "$TAKEN" ;;
# stores the value in the named variable and sets TAKEN to how many
# arguments it consumed.
# shellcheck disable=SC2034  # TAKEN is read by the scripts that source this file
TAKEN=1
# shellcheck disable=SC2034
take_value() {
    local var=$1 flag=$2
    if [[ $flag == *=* ]]; then
        printf -v "$var" '%s' "${flag#*=}"
        TAKEN=1
    else
        [[ $# -ge 3 ]] || die "$flag needs a value"
        printf -v "$var" '%s' "$3"
        TAKEN=2
    fi
}

# require VALUE "--flag" [ENV_VAR]: fail with one line when a value is missing.
require() {
    local value=$1 flag=$2 env_var=${3:-}
    if [[ -z $value ]]; then
        if [[ -n $env_var ]]; then
            die "missing required $flag (or set $env_var)"
        fi
        die "missing required $flag"
    fi
}

# First host name of a SLURM node list such as "gpu[01-04,07],gpu-b3".
slurm_first_host() {
    if command -v scontrol >/dev/null 2>&1; then
        # sed reads to the end (head would not, and under pipefail a long
        # list could then fail with SIGPIPE).
        scontrol show hostnames "$1" | sed -n 1p
        return
    fi
    # No SLURM commands here (a dry run on a laptop): the first name of a compact list
    # is its prefix plus the first number inside the brackets, if any.
    local list=$1 prefix rest
    prefix=${list%%[\[,]*}
    rest=${list#"$prefix"}
    if [[ $rest == \[* ]]; then
        rest=${rest#\[}
        printf '%s%s\n' "$prefix" "${rest%%[-,\]]*}"
    else
        printf '%s\n' "$prefix"
    fi
}

# Absolute path of the repository that holds these scripts.
repo_root() {
    (cd "$TPU_DIR/.." && pwd)
}
