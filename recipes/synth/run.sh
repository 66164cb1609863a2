#!/usr/bin/env bash
# Synthetic multi-voice English sentences (offline): synthesize -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/synth/install_voices.sh          # once: the speech engines and the KJV text (Debian packages)
#   recipes/synth/run.sh                     # about 3 h of training audio, 265 training voices
#   recipes/synth/run.sh --hours 1 --exp-dir exp/synth-1h
#
# Stages: 0 check the engines, 1 synthesize and write manifests (resumes: finished
# utterances are kept), then the shared stages 2-6 (recipes/stages.sh). test-heldout is
# read by 4 voices never heard in training, test-seen by training voices; both use
# sentences that neither training nor the LM saw.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hours=3
lexicon=1  # the LM's words: 1.6% of test-heldout's words are not among them, yet run 5 reads it 7 points better
lm_weights=0.5,0.75,1
word_scores=-1,0  # +1 won neither run 8's nor run 9's tuning at 256
beam_sizes=1024  # a lexicon's word trie needs a wide beam (run 8's dev: 32.95% WER at 256, 31.08 at 1024; run 5's: 39.5 at 16)
recipe_usage() { header_usage; echo "options: --hours H (training audio) --text FILE (sentences instead of the KJV)"; }
text=()
recipe_option() {
  case "$1" in
    --hours) hours=$2; taken=2 ;;
    --text) text=(--text "$2"); taken=2 ;;
  esac
}
source "$here/../stages.sh"
parse_options "$@"

if want 0; then
  say "0: speech engines"
  for program in $(python -c 'from asr.synthesis import PROGRAMS; print(*PROGRAMS.values())'); do  # every engine
    command -v "$program" > /dev/null || { echo "run.sh: $program is missing: run recipes/synth/install_voices.sh" >&2; exit 1; }
  done
  done_stage 0
fi

if want 1; then
  say "1: synthesize ${hours} h of training audio and the dev/test sets"
  python "$here/prepare.py" --out-dir "$data" --hours "$hours" ${text[@]+"${text[@]}"}
  done_stage 1
fi

# the title gives the corpus's training hours, whatever --hours this call was given
trained=$(python -c 'import json, sys; print(round(sum(json.loads(l)["duration"] for l in open(sys.argv[1])) / 3600, 1))' \
  "$data/train.jsonl" 2> /dev/null) || trained=$hours
library_stages "Synthetic voices (${trained} h of training audio)"
