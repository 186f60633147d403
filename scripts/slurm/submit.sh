#!/bin/bash
# Queues a sharded `relcap power` or `relcap validate` run on Slurm: an array job of SHARDS
# tasks (shard.sbatch, one shard each), then the merge (merge.sbatch), which starts only when
# every shard has succeeded (--dependency=afterok).
#
#   scripts/slurm/submit.sh power 20 --replications 400 --municipalities 98 ...
#
# Usage: submit.sh COMMAND SHARDS [arguments of relcap COMMAND]. Environment (passed on to the
# jobs): RELCAP, PARTS (default: parts), OUT (default: COMMAND-results) and THREADS (see
# shard.sbatch); run it from the folder that should hold parts/, logs/ and the results. Other
# sbatch options (account, partition, memory, time) go into SBATCH_* variables, e.g.
# SBATCH_PARTITION=normal.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage="usage: submit.sh power|validate SHARDS [arguments of relcap power|validate]"
cmd="${1:?$usage}"
n="${2:?$usage}"
shift 2
case "$cmd" in power | validate) ;; *) echo "$usage" >&2; exit 2 ;; esac
case "$n" in '' | *[!0-9]* | 0) echo "SHARDS must be a positive whole number; $usage" >&2; exit 2 ;; esac
mkdir -p logs "${PARTS:-parts}"
export SHARDS="$n"
shards=$(sbatch --parsable --array="1-$n" "$here/shard.sbatch" "$cmd" "$@")
shards="${shards%%;*}"
merge=$(sbatch --parsable --dependency="afterok:$shards" "$here/merge.sbatch" "$cmd")
merge="${merge%%;*}"
echo "submitted: shards as array job $shards (tasks 1-$n), merge as job $merge into ${OUT:-$cmd-results}"
