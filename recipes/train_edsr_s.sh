#!/usr/bin/env bash
# The built-in EDSR-S x4 PCL model (`edsr-s-pcl-x4`), end to end: the exact commands behind
# src/pclup/pretrained/edsr-s-pcl-x4/ and the EDSR-S section of docs/results.md. Run from the repository
# root in the venv. One run at a time on both cores; on a 2-core CPU stage 1 takes about 3.8 hours,
# stage 1b about 2 hours, each stage 2 about 25-35 minutes. Each phase can be stopped and continued: an
# unfinished run resumes from its last checkpoint (every 200 steps in stages 1 and 1b, every 100 in
# stage 2); a finished run is skipped.
#
#   bash recipes/train_edsr_s.sh            # everything
#   bash recipes/train_edsr_s.sh stage1     # one phase: stage1 | stage1b | stage2 | stage2-l1 | bench | bench-l1 | ship
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${PCLUP_DATA:-../shared/data}  # the test sets: $PCLUP_DATA, else this project's data layout
RUNS=runs/edsr-s
mkdir -p "$RUNS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# run NAME CMD...: log to runs/edsr-s/NAME.log; skip a finished run, resume an interrupted one
run() {
    local name=$1; shift
    if [[ -f "$RUNS/$name/model/model.safetensors" ]]; then echo "skip $name (done)"; return; fi
    if [[ -f "$RUNS/$name/checkpoint/trainer_state.pt" ]]; then
        echo "resume $name"
        pclup train --resume "$RUNS/$name" >>"$RUNS/$name.log" 2>&1
    else
        echo "start $name"
        "$@" --out "$RUNS/$name" --overwrite >"$RUNS/$name.log" 2>&1
    fi
}

stage1() {  # EDSR-S x4 from scratch with L1 (no official pretrained weights are reachable offline)
    run x4-stage1 pclup train --config recipes/edsr-s-x4-stage1-l1.toml --seed 0
}

stage1b() {  # a warm restart: stage 1 ended still improving and short of the default on three sets
    run x4-stage1b pclup finetune --config recipes/edsr-s-x4-stage1b-l1.toml -m "$RUNS/x4-stage1/model" --seed 1
}

# seed 2 in stage 2: batches are a function of (seed, step); seeds 0 and 1 would replay the first batches
# of stages 1 and 1b
stage2() {  # the paper's protocol: fine-tune the pretrained network with PCL
    run x4-pcl pclup finetune --config recipes/edsr-s-x4-stage2-pcl.toml -m "$RUNS/x4-stage1b/model" --seed 2
}

stage2_l1() {  # the comparison: the same fine-tuning with L1 alone, on the same batches (optional)
    run x4-l1 pclup finetune --config recipes/edsr-s-x4-stage2-pcl.toml -m "$RUNS/x4-stage1b/model" --seed 2 --loss l1
}

# the models to bench and compare: the L1 comparison only once it has run (and not benched on its own)
models() {
    local m=(-m "$RUNS/x4-stage1b/model")
    [[ -f "$RUNS/x4-l1/model/model.safetensors" && ! -f "$RUNS/bench-x4-l1.json" ]] && m+=(-m "$RUNS/x4-l1/model")
    m+=(-m "$RUNS/x4-pcl/model")
    echo "${m[@]}"
}

SETS=(--set Set5 --set Set14 --set B100 --set Urban100)
# the arguments of each bench, written once: the bench phases run them, the model card quotes them
bench_args() { echo "-m bicubic -m default-x4 $(models) ${SETS[*]} -s 4"; }
bench_l1_args() { echo "-m $RUNS/x4-l1/model ${SETS[*]} -s 4"; }

# shellcheck disable=SC2046  # the argument lists above split on spaces; no path here has one
bench() {  # against the shipped default-x4 and bicubic; the paper's EDSR-S rows are in the model card
    pclup bench $(bench_args) --data-dir "$DATA" --json "$RUNS/bench-x4.json" --markdown | tee "$RUNS/bench-x4.md"
}

# shellcheck disable=SC2046
bench_l1() {  # the L1 comparison alone, when stage2-l1 ran after the bench (ship reads both documents)
    pclup bench $(bench_l1_args) --data-dir "$DATA" --json "$RUNS/bench-x4-l1.json" --markdown \
        | tee "$RUNS/bench-x4-l1.md"
}

ship() {  # copy into the package with its model card (scripts/ship_model.py writes it from the files)
    local cmp=(--compare-with "$RUNS/x4-stage1b/model" --compare-with default-x4)
    local runs=(--run "$RUNS/x4-stage1" --run "$RUNS/x4-stage1b" --run "$RUNS/x4-pcl")
    if [[ -f "$RUNS/x4-l1/model/model.safetensors" ]]; then
        cmp=(--compare-with "$RUNS/x4-l1/model" "${cmp[@]}"); runs+=(--run "$RUNS/x4-l1")
    fi
    local bench=(--bench "$RUNS/bench-x4.json")
    local bench_cmd="pclup bench $(bench_args)"
    if [[ -f "$RUNS/bench-x4-l1.json" ]]; then
        bench+=(--bench "$RUNS/bench-x4-l1.json")
        bench_cmd+="; pclup bench $(bench_l1_args)"
    fi
    python scripts/ship_model.py "$RUNS/x4-pcl/model" edsr-s-pcl-x4 --published edsr-s \
        --title "EDSR-S (16 ResBlocks x 64), L1 pretraining, stage-2 fine-tune with --loss pcl" \
        --notes recipes/edsr-s-notes.md "${bench[@]}" --bench-name "$RUNS/x4-pcl/model" \
        "${cmp[@]}" --bench-command "$bench_cmd" \
        "${runs[@]}" --machine "${MACHINE:-2 CPU cores}" \
        --recipe recipes/edsr-s-x4-stage1-l1.toml --recipe recipes/edsr-s-x4-stage1b-l1.toml \
        --recipe recipes/edsr-s-x4-stage2-pcl.toml \
        --command "pclup train --config recipes/edsr-s-x4-stage1-l1.toml --seed 0 --out $RUNS/x4-stage1" \
        --command "pclup finetune --config recipes/edsr-s-x4-stage1b-l1.toml -m $RUNS/x4-stage1/model --seed 1 --out $RUNS/x4-stage1b" \
        --command "pclup finetune --config recipes/edsr-s-x4-stage2-pcl.toml -m $RUNS/x4-stage1b/model --seed 2 --out $RUNS/x4-pcl"
}

phase=${1:-all}
case $phase in
    stage1) stage1 ;; stage1b) stage1b ;; stage2) stage2 ;; stage2-l1) stage2_l1 ;; bench) bench ;; bench-l1) bench_l1 ;;
    ship) ship ;;
    all) stage1; stage1b; stage2; stage2_l1; bench; ship ;;
    *) echo "unknown phase '$phase' (stage1, stage1b, stage2, stage2-l1, bench, bench-l1, ship, all)" >&2; exit 2 ;;
esac
