#!/bin/bash
# A Slurm batch script that runs one MAO step's container on the node the job got.
#
# Submitted by mao.executor.slurm with everything in its environment (sbatch --export=ALL of a
# minimal environment, none of the instance's own):
#   MAO_JOB_CLI        the container CLI with its options (docker, podman, ...), split on spaces
#   MAO_JOB_IMAGE      the tool's image; the command is this script's arguments (none: the image's)
#   MAO_JOB_NETWORK    the container's network (empty: the CLI's default)
#   MAO_JOB_LABELS     labels of the container, NAME=VALUE separated by spaces
#   MAO_JOB_ENV_NAMES  the step's variables, separated by spaces; each value in MAO_ENV_<NAME>
#   shared data: MAO_JOB_DATA (read-write) and MAO_JOB_INPUT (read-only), paths on the node
#   data by commit: MAO_JOB_DATA_URL, MAO_JOB_INPUT_URL (optional) and MAO_JOB_TOKEN, the
#     step's own token: the trees are fetched before the tool runs, and the output tree is
#     sent back (PUT) when it succeeded
#
# The container belongs to the engine, not to the job: scancel and the time limit kill this
# script and the CLI, so the EXIT trap kills and removes the container. Exit status: the
# tool's; 125 when the container could not be created or the data not fetched; 124 when the
# output could not be sent back.
set -u -o pipefail
umask 077

read -r -a CLI <<<"${MAO_JOB_CLI:-docker}"
work=$(mktemp -d "${TMPDIR:-/tmp}/mao-job-${SLURM_JOB_ID:-0}.XXXXXX") || exit 125
cid=
cleanup() {
    if [[ -n $cid ]]; then
        "${CLI[@]}" kill "$cid" >/dev/null 2>&1
        "${CLI[@]}" rm -f "$cid" >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
say() { printf '[slurm job %s] %s\n' "${SLURM_JOB_ID:-?}" "$*"; }

# fetch URL DIR: unpack the tar the instance serves at URL into DIR
fetch() {
    mkdir -p "$2" && curl -fsS --retry 3 --retry-connrefused -H @"$work/auth" "$1" -o "$work/in.tar" \
        && tar -x -f "$work/in.tar" -C "$2" && rm -f "$work/in.tar"
}

if [[ -n ${MAO_JOB_DATA_URL:-} ]]; then
    printf 'Authorization: Bearer %s\n' "${MAO_JOB_TOKEN:-}" >"$work/auth"
    unset MAO_JOB_TOKEN
    data=$work/data
    fetch "$MAO_JOB_DATA_URL" "$data" || { say "could not fetch the step's data from the instance"; exit 125; }
    input=
    if [[ -n ${MAO_JOB_INPUT_URL:-} ]]; then
        input=$work/input
        fetch "$MAO_JOB_INPUT_URL" "$input" || { say "could not fetch the step's input from the instance"; exit 125; }
    fi
else
    data=${MAO_JOB_DATA:?}
    input=${MAO_JOB_INPUT:-}
fi

: >"$work/env"
for name in ${MAO_JOB_ENV_NAMES:-}; do
    value_of=MAO_ENV_$name
    printf '%s=%s\n' "$name" "${!value_of-}" >>"$work/env"
done

args=(create --name "mao-slurm-${SLURM_JOB_ID:-0}" --label mao.executor=slurm --label "slurm.job=${SLURM_JOB_ID:-0}"
      --env-file "$work/env" -v "$data:/usr/src/app/data")
[[ -n $input ]] && args+=(-v "$input:/usr/src/app/input:ro")
[[ -n ${MAO_JOB_NETWORK:-} ]] && args+=(--network "$MAO_JOB_NETWORK")
for label in ${MAO_JOB_LABELS:-}; do args+=(--label "$label"); done
cid=$("${CLI[@]}" "${args[@]}" "$MAO_JOB_IMAGE" "$@") || { say "the container could not be created"; exit 125; }
# the first line of the job's output: the image that runs (its registry digest, else its id)
say "image $("${CLI[@]}" image inspect --format '{{if .RepoDigests}}{{index .RepoDigests 0}}{{else}}{{.Id}}{{end}}' \
    "$MAO_JOB_IMAGE" 2>/dev/null | head -n1)"
"${CLI[@]}" start -a "$cid" &   # the container's stdout and stderr: the job's output
wait $!                          # returns at once when TERM comes (scancel, time limit)
rc=$?

if [[ $rc -eq 0 && -n ${MAO_JOB_DATA_URL:-} ]]; then
    if ! tar -c -f "$work/out.tar" -C "$data" . \
        || ! curl -sS --fail-with-body --retry 3 --retry-connrefused -X PUT -H @"$work/auth" \
            -H 'Content-Type: application/x-tar' -T "$work/out.tar" "$MAO_JOB_DATA_URL" -o "$work/put.out"; then
        [[ -s $work/put.out ]] && { cat "$work/put.out"; echo; }
        say "could not send the step's output back to the instance"
        exit 124
    fi
fi
exit "$rc"
