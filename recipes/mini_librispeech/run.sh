#!/usr/bin/env bash
# Mini LibriSpeech (5 h train-clean-5, dev-clean-2; LibriSpeech's test-clean for testing):
# download -> manifests -> LM -> train -> tune -> evaluate. LibriSpeech's preparation, smaller config.
#
#   recipes/mini_librispeech/run.sh                              # downloads about 800 MB
#   recipes/mini_librispeech/run.sh --data-dir /corpora/LibriSpeech
#
# Stages as in recipes/librispeech/run.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../librispeech/run.sh" --exp-dir exp/mini_librispeech --config "$here/conf.yaml" \
  --train train-clean-5 --dev dev-clean-2 --test test-clean,dev-clean-2 "$@"
