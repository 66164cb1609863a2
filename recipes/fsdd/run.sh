#!/usr/bin/env bash
# FSDD recipe: download (or take a local copy) -> manifests -> LM -> train -> tune -> evaluate -> RESULTS.md
#
#   recipes/fsdd/run.sh --data-dir ../shared/data/fsdd/recordings
#   recipes/fsdd/run.sh --heldout-speakers george --exp-dir exp/fsdd-heldout-george
#
# Stages (each leaves a marker in EXP_DIR; a rerun skips finished stages, while --stage N
# [--stop-stage M] reruns stages N..M whatever their markers say):
#   0 data     download the FSDD archive unless --data-dir is given
#   1 prepare  split, connected-digit utterances, JSON Lines manifests
#   2 lm       3-gram LM and lexicon from the training transcripts (+ --lm-text files)
#   3 train    asr train with conf.yaml (+ KEY=VALUE overrides after --)
#   4 tune     LM weight and word score of the beam decoder on the dev set
#   5 evaluate greedy and beam (LM + lexicon) WER/CER on every test manifest
#   6 results  EXP_DIR/RESULTS.md
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
forced=""  # with --stage, the stages asked for run even when they finished before
stop_stage=6
data_dir=""
exp_dir=exp/fsdd
heldout=""
connected=1000,100,300
config=$here/conf.yaml
lm_text=()  # extra text for the LM, one sentence per line

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; echo "options: --stage N --stop-stage N --data-dir DIR --exp-dir DIR --heldout-speakers A,B --connected TRAIN,DEV,TEST --config FILE --lm-text FILE [-- KEY=VALUE ...]"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; forced=1; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --exp-dir) exp_dir=$2; shift 2 ;;
    --heldout-speakers) heldout=$2; shift 2 ;;
    --connected) connected=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --lm-text) lm_text+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
overrides=("$@")
data=$exp_dir/data
mkdir -p "$exp_dir"

# A stage runs when it is in [stage, stop_stage] and has not finished before (or --stage was given).
want() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ] && { [ -n "$forced" ] || [ ! -f "$exp_dir/.done.$1" ]; }; }
done_stage() { touch "$exp_dir/.done.$1"; }
say() { echo "[$(date +%H:%M:%S)] stage $*"; }
start=$(date +%s)

if want 0; then
  say "0: data"
  if [ -z "$data_dir" ]; then
    python -c "import sys; sys.path.insert(0, '$here'); import prepare; print(prepare.download(__import__('pathlib').Path('downloads/fsdd')))" > "$exp_dir/data_dir"
  else
    echo "$data_dir" > "$exp_dir/data_dir"
  fi
  done_stage 0
fi
[ -n "$data_dir" ] || data_dir=$(cat "$exp_dir/data_dir" 2>/dev/null || true)

if want 1; then
  say "1: prepare manifests from $data_dir"
  IFS=, read -r n_train n_dev n_test <<< "$connected"
  python "$here/prepare.py" --data-dir "$data_dir" --out-dir "$data" --heldout-speakers "$heldout" \
    --connected-train "$n_train" --connected-dev "$n_dev" --connected-test "$n_test"
  done_stage 1
fi

if want 2; then
  say "2: language model and lexicon from the training transcripts"
  asr lm build --text "$data/train.jsonl" ${lm_text[@]+"${lm_text[@]}"} --order 3 --out "$exp_dir/lm.arpa"
  python -c "import json, sys; words = {w for line in open(sys.argv[1]) for w in json.loads(line)['text'].split()}; print('\n'.join(sorted(words)))" \
    "$data/train.jsonl" > "$exp_dir/lexicon.txt"
  done_stage 2
fi

if want 3; then
  say "3: train"
  resume=(--resume)  # an interrupted training goes on from its last state; --stage 3 starts afresh
  [ -z "$forced" ] || resume=()
  asr train --config "$config" exp_dir="$exp_dir" data.train_manifest="$data/train.jsonl" \
    data.dev_manifest="$data/dev.jsonl" ${overrides[@]+"${overrides[@]}"} ${resume[@]+"${resume[@]}"}
  done_stage 3
fi

if want 4; then
  say "4: tune the beam decoder on dev"
  asr tune-decoder --model "$exp_dir/best.pt" --manifest "$data/dev.jsonl" --lm "$exp_dir/lm.arpa" \
    --lexicon "$exp_dir/lexicon.txt" --lm-weights 0,0.25,0.5,1,2 --word-scores=-1,0,1,2 | tee "$exp_dir/tune.log"
  done_stage 4
fi

if want 5; then
  say "5: evaluate"
  for manifest in "$data"/test-*.jsonl; do
    name=$(basename "$manifest" .jsonl)
    for decoder in greedy beam; do  # beam: the settings tuned in stage 4 (best.decoder.json)
      asr evaluate --model "$exp_dir/best.pt" --manifest "$manifest" --decoder "$decoder" \
        --report "$exp_dir/report-$name-$decoder.jsonl" --json > "$exp_dir/eval-$name-$decoder.json"
      python -c "import json; s = json.load(open('$exp_dir/eval-$name-$decoder.json')); print(f\"$name $decoder: WER {s['wer']:.2f}% CER {s['cer']:.2f}%\")"
    done
  done
  done_stage 5
fi

if want 6; then
  say "6: results"
  python "$here/../../scripts/results_table.py" --title "FSDD (heldout: ${heldout:-none})" \
    "$exp_dir"/eval-*.json > "$exp_dir/RESULTS.md"
  cat "$exp_dir/RESULTS.md"
  done_stage 6
fi
echo "done in $(( $(date +%s) - start )) s"
