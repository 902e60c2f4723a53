#!/usr/bin/env bash
# The default models and the PCL study, end to end: the exact commands behind src/pclup/pretrained/ and
# docs/results.md. Run from the repository root in the venv; about 3 hours on 2 CPU cores (two runs at a
# time, one thread each). Every run logs to runs/<name>.log and its folder; re-running a finished stage
# is skipped.
#
#   bash recipes/train_defaults.sh            # everything
#   bash recipes/train_defaults.sh stage1     # one phase: stage1 | study | stage2 | bench | ship
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${PCLUP_DATA:-../shared/data}
RUNS=runs/default
mkdir -p "$RUNS"
export OMP_NUM_THREADS=1

# run NAME CMD...: run in the background at low priority, log to runs/default/NAME.log, skip when done
run() {
    local name=$1; shift
    if [[ -f "$RUNS/$name/model/model.safetensors" ]]; then echo "skip $name (done)"; return; fi
    nice -n 5 "$@" --out "$RUNS/$name" >"$RUNS/$name.log" 2>&1 &
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

stage2() {  # the x2 and x3 defaults: PCL fine-tuning of their pretraining
    run x2-s0-pcl pclup finetune --config recipes/compact-x2-stage2-pcl.toml -m "$RUNS/x2-s0-stage1/model" --seed 0
    run x3-s0-pcl pclup finetune --config recipes/compact-x3-stage2-pcl.toml -m "$RUNS/x3-s0-stage1b/model" --seed 0
    wait
}

bench() {
    python benchmarks/pcl_study.py --scale 4 --data-dir "$DATA" \
        --group stage1=$RUNS/x4-s0-stage1,$RUNS/x4-s1-stage1 \
        --group l1=$RUNS/x4-s0-l1,$RUNS/x4-s1-l1 \
        --group pcl=$RUNS/x4-s0-pcl,$RUNS/x4-s1-pcl \
        --group pcl-no-grad=$RUNS/x4-s0-pcl-no-grad,$RUNS/x4-s1-pcl-no-grad \
        --json $RUNS/study-x4.json | tee $RUNS/study-x4.md
    for s in 2 3; do
        pclup bench -m bicubic -m "$RUNS/x$s-s0-pcl/model" --set Set5 --set Set14 --set B100 --set Urban100 -s $s \
            --data-dir "$DATA" --json "$RUNS/bench-x$s.json" --markdown | tee "$RUNS/bench-x$s.md"
    done
    pclup bench -m bicubic -m "$RUNS/x4-s0-pcl/model" --set Set5 --set Set14 --set B100 --set Urban100 -s 4 \
        --data-dir "$DATA" --json "$RUNS/bench-x4.json" --markdown | tee "$RUNS/bench-x4.md"
}

ship() {  # copy into the package with model cards (scripts/ship_model.py writes the card from the files)
    local s init
    for s in 2 3 4; do
        local steps=(--recipe "recipes/compact-x$s-stage1-l1.toml"
            --command "pclup train --config recipes/compact-x$s-stage1-l1.toml --seed 0 --out $RUNS/x$s-s0-stage1")
        init=$RUNS/x$s-s0-stage1
        if [[ $s == 3 ]]; then
            steps+=(--recipe recipes/compact-x3-stage1b-l1.toml
                --command "pclup finetune --config recipes/compact-x3-stage1b-l1.toml -m $RUNS/x3-s0-stage1/model --seed 1 --out $RUNS/x3-s0-stage1b")
            init=$RUNS/x3-s0-stage1b
        fi
        python scripts/ship_model.py "$RUNS/x$s-s0-pcl/model" "default-x$s" \
            --title "pclup's default x$s model (compact network, L1 pretraining + PCL fine-tuning)" \
            --bench "$RUNS/bench-x$s.json" --bench-name "$RUNS/x$s-s0-pcl/model" \
            --bench-command "pclup bench -m bicubic -m $RUNS/x$s-s0-pcl/model --set Set5 --set Set14 --set B100 --set Urban100 -s $s --json $RUNS/bench-x$s.json" \
            "${steps[@]}" --recipe "recipes/compact-x$s-stage2-pcl.toml" \
            --command "pclup finetune --config recipes/compact-x$s-stage2-pcl.toml -m $init/model --seed 0 --out $RUNS/x$s-s0-pcl" \
            --notes recipes/default-notes.md
    done
}

phase=${1:-all}
case $phase in
    stage1) stage1 ;; study) study ;; stage2) stage2 ;; bench) bench ;; ship) ship ;;
    all) stage1; study; stage2; bench; ship ;;
    *) echo "unknown phase '$phase' (stage1, study, stage2, bench, ship, all)" >&2; exit 2 ;;
esac
