# Stages every recipe shares, sourced by recipes/<corpus>/run.sh (bash).
#
# A recipe sets only what differs from the defaults (exp_dir=exp/<recipe>, config=<recipe>/conf.yaml,
# lexicon=0, lm_order=3, the tune grids lm_weights, word_scores and beam_sizes), may define
# recipe_option (its own flags; sets `taken` to the number of words it used) and
# recipe_usage (default: its leading comment), calls parse_options "$@", runs its own stages 0 (data) and 1 (prepare
# manifests into $data: train.jsonl, dev.jsonl, test-*.jsonl, optionally lm.txt), then
# calls library_stages for the rest (corpus_stages runs 0 and 1 for a prepare.py built on
# asr.corpus.recipe_main):
#   2 lm       word n-gram LM (+ lexicon when lexicon=1) from train.jsonl, $data/lm.txt and --lm-text
#   3 train    asr train with the config (+ KEY=VALUE overrides after --); resumes an interrupted run.
#              A recipe that sets finetune=(KEY=VALUE ...) then trains again from that model's best.pt
#              into $exp_dir/finetune with those overrides, and stages 4-5 use that model
#   4 tune     LM weight, word score (and beam size) of the beam decoder on dev.jsonl, reading it with
#              the warp search --vtln X (asr.vtln; a recipe may set vtln=X; default 0: off), which
#              the tuned settings keep for stages 5 and transcription
#   5 evaluate greedy and tuned beam WER/CER on every test-*.jsonl
#   6 results  $exp_dir/RESULTS.md
# Every stage leaves a marker in $exp_dir; a rerun skips finished stages, while
# --stage N [--stop-stage M] reruns stages N..M whatever their markers say.

recipe_dir=$(cd "$(dirname "$0")" && pwd)
exp_dir=${exp_dir:-exp/$(basename "$recipe_dir")}
config=${config:-$recipe_dir/conf.yaml}
stage=0
forced=""
stop_stage=6
data_dir=""
lm_text=()
overrides=()
finetune=()
lexicon=${lexicon:-0}
lm_order=${lm_order:-3}
lm_weights=${lm_weights:-0,0.25,0.5,1,2}
word_scores=${word_scores:--1,0,1,2}
beam_sizes=${beam_sizes:-16}
vtln=${vtln:-}  # empty: the recipe's choice, else 0

# The recipe's leading comment block; a recipe with options of its own adds a line about them.
header_usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
declare -F recipe_usage > /dev/null || recipe_usage() { header_usage; }

common_usage() {
  echo "common options: --stage N --stop-stage N --data-dir DIR --exp-dir DIR --config FILE --lm-text FILE --vtln X [-- KEY=VALUE ...]"
}

parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --stage) stage=$2; forced=1; shift 2 ;;
      --stop-stage) stop_stage=$2; shift 2 ;;
      --data-dir) data_dir=$2; shift 2 ;;
      --exp-dir) exp_dir=$2; shift 2 ;;
      --config) config=$2; shift 2 ;;
      --lm-text) lm_text+=("$2"); shift 2 ;;
      --vtln)  # checked here, not first at stage 4 after the training
        awk -v v="$2" 'BEGIN { exit !(v ~ /^[0-9]*\.?[0-9]+$/ && v < 0.5) }' \
          || { echo "run.sh: --vtln: expected a number in [0, 0.5), got '$2'" >&2; exit 2; }
        vtln=$2; shift 2 ;;
      -h|--help) recipe_usage; common_usage; exit 0 ;;
      --) shift; overrides=("$@"); break ;;
      *)
        taken=0
        if declare -F recipe_option > /dev/null; then recipe_option "$@"; fi
        if [ "$taken" -eq 0 ]; then
          echo "run.sh: unknown option $1" >&2; recipe_usage >&2; common_usage >&2; exit 2
        fi
        shift "$taken" ;;
    esac
  done
  data=$exp_dir/data
  mkdir -p "$exp_dir"
  start=$(date +%s)
}

# A stage runs when it is in [stage, stop_stage] and has not finished before (or --stage was given).
want() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ] && { [ -n "$forced" ] || [ ! -f "$exp_dir/.done.$1" ]; }; }
done_stage() { touch "$exp_dir/.done.$1"; }
say() { echo "[$(date +%H:%M:%S)] stage $*"; }

# Stages 0-1 for a prepare.py built on asr.corpus.recipe_main; extra arguments go to it.
corpus_stages() {
  local prepare=$1; shift
  local download=(--download-dir "downloads/$(basename "$(dirname "$prepare")")")
  if want 0; then
    say "0: data"
    if [ -z "$data_dir" ]; then python "$prepare" "${download[@]}" --download-only "$@"; fi
    done_stage 0
  fi
  if want 1; then
    say "1: manifests"
    local source=("${download[@]}")
    [ -z "$data_dir" ] || source=(--data-dir "$data_dir")
    python "$prepare" "${source[@]}" --out-dir "$data" "$@"
    done_stage 1
  fi
}

library_stages() {
  local title=$1
  local model=$exp_dir/best.pt
  [ ${#finetune[@]} -eq 0 ] || model=$exp_dir/finetune/best.pt
  if want 2; then
    say "2: language model from the training-side text"
    local text=("$data/train.jsonl")
    [ ! -f "$data/lm.txt" ] || text+=("$data/lm.txt")
    local lex=()
    [ "$lexicon" != 1 ] || lex=(--lexicon "$exp_dir/lexicon.txt")
    asr lm build --text "${text[@]}" ${lm_text[@]+"${lm_text[@]}"} --order "$lm_order" --out "$exp_dir/lm.arpa" \
      ${lex[@]+"${lex[@]}"}
    done_stage 2
  fi

  if want 3; then
    say "3: train${overrides[*]+ ${overrides[*]}}"
    local resume=(--resume)  # an interrupted training goes on from its last state; --stage 3 starts afresh
    [ -z "$forced" ] || resume=()
    asr train --config "$config" exp_dir="$exp_dir" data.train_manifest="$data/train.jsonl" \
      data.dev_manifest="$data/dev.jsonl" ${overrides[@]+"${overrides[@]}"} ${resume[@]+"${resume[@]}"}
    if [ ${#finetune[@]} -gt 0 ]; then
      say "3: fine-tune ${finetune[*]}"
      asr train --config "$exp_dir/config.yaml" exp_dir="$exp_dir/finetune" init_from="$exp_dir/best.pt" \
        "${finetune[@]}" ${resume[@]+"${resume[@]}"}
    fi
    done_stage 3
  fi

  if want 4; then
    say "4: tune the beam decoder on dev"
    local lex=()
    [ "$lexicon" != 1 ] || lex=(--lexicon "$exp_dir/lexicon.txt")
    asr tune-decoder --model "$model" --manifest "$data/dev.jsonl" --lm "$exp_dir/lm.arpa" \
      ${lex[@]+"${lex[@]}"} --lm-weights "$lm_weights" --word-scores="$word_scores" --beam-sizes "$beam_sizes" \
      --vtln "${vtln:-0}" | tee "$exp_dir/tune.log"
    done_stage 4
  fi

  if want 5; then
    say "5: evaluate"
    local manifest name decoder
    for manifest in "$data"/test-*.jsonl; do
      name=$(basename "$manifest" .jsonl)
      for decoder in greedy beam; do  # beam: the settings tuned in stage 4 (best.decoder.json); both read with its vtln
        asr evaluate --model "$model" --manifest "$manifest" --decoder "$decoder" \
          --report "$exp_dir/report-$name-$decoder.jsonl" --json > "$exp_dir/eval-$name-$decoder.json"
        python -c "import json, sys; s = json.load(open(sys.argv[1])); print(f\"$name $decoder: WER {s['wer']:.2f}% CER {s['cer']:.2f}%\")" \
          "$exp_dir/eval-$name-$decoder.json"
      done
    done
    done_stage 5
  fi

  if want 6; then
    say "6: results"
    # through a temporary file, so a failure leaves the last table as it was
    python "$recipes/../scripts/results_table.py" --title "$title" "$exp_dir"/eval-*.json > "$exp_dir/RESULTS.md.tmp" \
      || { rm -f "$exp_dir/RESULTS.md.tmp"; exit 1; }
    mv "$exp_dir/RESULTS.md.tmp" "$exp_dir/RESULTS.md"
    cat "$exp_dir/RESULTS.md"
    done_stage 6
  fi
  echo "done in $(( $(date +%s) - start )) s"
}

recipes=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
