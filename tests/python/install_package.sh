#!/usr/bin/env bash
# Installs the retrain Python package (client/python) the way its users do:
# `pip install` into a new virtual environment of Debian's Python that sees
# Debian's packages (grpcio, protobuf, crcmod, torch, torchvision), with no
# package index at all, so that a build that needs the network fails here.
#   install_package.sh PYTHON VENV_DIR PACKAGE_DIR
# Then checks what it installed: the version, the program, the modules.
set -euo pipefail
python=$1 venv=$2 package=$3
rm -rf "$venv"
"$python" -m venv --system-site-packages "$venv"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet "$package"
version=$(sed -nE 's/^project\(retrain VERSION ([0-9.]+).*/\1/p' "$package/../../CMakeLists.txt")
"$venv/bin/python" - "$version" <<'PY'
import sys
import retrain, retrain.client, retrain.data, retrain.shards
from retrain.v1 import job_service_pb2_grpc
assert retrain.__version__ == sys.argv[1], (retrain.__version__, sys.argv[1])
assert retrain.__file__.startswith(sys.prefix), retrain.__file__
print("retrain %s installed in %s" % (retrain.__version__, sys.prefix))
PY
"$venv/bin/retrain-client" --help > /dev/null
