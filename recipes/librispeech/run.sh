#!/usr/bin/env bash
# LibriSpeech (960 h of read English audiobooks): download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/librispeech/run.sh                                   # downloads about 60 GB
#   recipes/librispeech/run.sh --data-dir /corpora/LibriSpeech   # an existing copy
#   recipes/librispeech/run.sh --train train-clean-100 --exp-dir exp/ls100
#
# Stages: 0 download + verify + extract the parts (skipped with --data-dir), 1 manifests
# (FLAC used in place), then the shared stages 2-6 (recipes/stages.sh): LM from the
# training transcripts (+ --lm-text, e.g. LibriSpeech's librispeech-lm-norm.txt), train,
# tune on dev-clean, evaluate test-clean, test-other, dev-clean, dev-other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
train=train-clean-100,train-clean-360,train-other-500
dev=dev-clean
test=test-clean,test-other,dev-clean,dev-other
recipe_usage() { header_usage; echo "options: --train PARTS --dev PARTS --test PARTS (comma-separated)"; }
recipe_option() {
  case "$1" in
    --train) train=$2; taken=2 ;;
    --dev) dev=$2; taken=2 ;;
    --test) test=$2; taken=2 ;;
  esac
}
source "$here/../stages.sh"
parse_options "$@"
corpus_stages "$here/prepare.py" --train "$train" --dev "$dev" --test "$test"
library_stages "LibriSpeech (train: $train)"
