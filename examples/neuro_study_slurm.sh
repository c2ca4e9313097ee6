#!/usr/bin/env bash
# A BIDS study across a SLURM cluster with the one command a single machine runs: each array task takes
# its shard of the sorted scan list (--shard i/n); a last job, after them all, finds every scan done
# (same model, so it skips them), retries any that failed, and writes the whole volumes table and report.
#
#   jid=$(sbatch --parsable --array=0-15 examples/neuro_study_slurm.sh /data/bids)        # 16 shards
#   sbatch --dependency=afterany:$jid examples/neuro_study_slurm.sh /data/bids            # table + report
#
# Outputs: /data/bids/derivatives/torchsci/ (BIDS derivatives, volumes.tsv, report.html). A task killed
# by its time limit is resumed by submitting the same array again: finished scans are skipped.
#SBATCH --job-name=torchsci-neuro
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=torchsci-neuro-%A_%a.out
set -euo pipefail
BIDS=${1:?usage: sbatch --array=0-N examples/neuro_study_slurm.sh BIDS_ROOT}
if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
    # Two scans at a time, cpus-per-task / 2 threads each; one progress line per scan in the .out file.
    exec torchsci neuro segment "$BIDS" --jobs 2 --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
fi
exec torchsci neuro segment "$BIDS" --jobs 2 --report "$BIDS/derivatives/torchsci/report.html"
