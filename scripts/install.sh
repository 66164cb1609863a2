#!/usr/bin/env bash
# Everything the toolkit and its whole test suite use, on a fresh machine (what CI runs too):
#   the package with all its extras (training, export, server, test tools), editable;
#   pyctcdecode, for the test that our beam search agrees with it: its metadata pins numpy < 2,
#     which the part we use does not need, so it is installed without its pins;
#   the kenlm module (reads KenLM binary LMs): no wheel, it compiles (about 80 s on 2 cores);
#   the offline speech engines of the synthetic-voice recipe (Debian packages: needs root or sudo).
# Transcription alone needs much less: pip install ".[runtime]" (see README, Deploying a model).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e ".[test]"
python3 -m pip install -q --no-deps "pyctcdecode==0.5.0"
python3 -m pip install -q "kenlm==0.3.0"
if [ "$(id -u)" = 0 ]; then
  bash recipes/synth/install_voices.sh
elif command -v sudo > /dev/null; then
  sudo bash recipes/synth/install_voices.sh
else
  echo "install.sh: not root and no sudo: the speech engines (recipes/synth/install_voices.sh) were not" \
       "installed, and the tests that speak with them will be skipped" >&2
fi
