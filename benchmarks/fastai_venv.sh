#!/usr/bin/env bash
# The fastai side of benchmarks/book_notebook.py: a venv outside the repo with fastai 2.8.12 on
# the same torch as resnette's (2.13.0+cpu), without touching the system python.
#
#   bash benchmarks/fastai_venv.sh [/work/venv-fastai]
#
# PyPI's torchvision 0.28.0 (the release paired with torch 2.13) is a CUDA build: its _C.so
# links libtorch_cuda.so and cannot load beside the CPU torch, and its __init__ then fails on
# `operator torchvision::nms does not exist` while registering fake kernels for ops that never
# loaded. torchvision already treats a missing _C as optional (extension._has_ops() is False);
# the one edit below makes that registration conditional on it. Nothing fastai's training runs
# changes: fastai.vision uses no torchvision C++ op (no nms/roi_align/decoders; images are read
# with PIL), so the data pipeline, models and training loop are fastai's own, on torch 2.13.0.
# spacy (fastai.text only) is left out. The kernelspec is installed by book_notebook.py.
set -euo pipefail
VENV=${1:-/work/venv-fastai}
python -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q --no-deps torchvision==0.28.0 fastai==2.8.12
"$VENV/bin/pip" install -q "fastdownload<2,>=0.0.8" "fastcore>=2.2.22" "fasttransform>=0.0.3" \
    matplotlib pandas requests pyyaml "fastprogress>=0.2.4" pillow scikit-learn scipy packaging \
    "plum-dispatch<2.10" cloudpickle numpy ipykernel
INIT=$("$VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('torchvision').origin)")
"$VENV/bin/python" - "$INIT" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
old = "from torchvision import (\n    _autograd_registrations,\n    _meta_registrations,\n"
new = ("if extension._has_ops():  # resnette benchmarks: this CUDA wheel's _C.so cannot load "
       "beside a CPU torch\n    from torchvision import _autograd_registrations, "
       "_meta_registrations  # usort:skip\nfrom torchvision import (\n")
if new not in text:
    assert old in text, "torchvision's __init__ is not the one this script knows"
    open(path, "w").write(text.replace(old, new))
EOF
"$VENV/bin/python" -c "from fastai.vision.all import *; import fastai, torchvision; \
print('fastai', fastai.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
