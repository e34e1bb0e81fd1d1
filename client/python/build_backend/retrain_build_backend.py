"""The build backend of the retrain Python package (PEP 517).

It has no requirements, so `pip install ./client/python` works without a
network: pip's isolated build environment would otherwise have to download
setuptools. It builds a pure-Python wheel of retrain/ with the API's stubs
generated from this checkout's proto/ by protoc and grpc_python_plugin
(Debian's protobuf-compiler and protobuf-compiler-grpc), and tf.Example's
descriptors for reading TFRecord shards. Its metadata comes from
pyproject.toml's [project] table, the version from the project's
CMakeLists.txt. The same files in give the same wheel bytes out.

Hooks: build_wheel and prepare_metadata_for_build_wheel (pip install);
no sdist or editable install: the package is built from a checkout.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import zipfile

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKOUT = os.path.dirname(os.path.dirname(PACKAGE_DIR))
PROTO_DIR = os.path.join(CHECKOUT, "proto")
# The API's protos, relative to PROTO_DIR; their stubs go to retrain/v1/.
API_PROTO_DIR = "retrain/v1"
# tf.Example's protos, compiled into one descriptor set that retrain.shards
# loads into a pool of its own (no module named tensorflow is installed).
EXAMPLE_PROTO = "tensorflow/core/example/example.proto"
EXAMPLE_DESCRIPTORS = "retrain/tf_example.binpb"
# Every file a wheel holds gets this time, so that its bytes depend on the
# contents alone.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """What stops a build; the message says what to do."""


def _project():
    with open(os.path.join(PACKAGE_DIR, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _version():
    """The project's version, from CMakeLists.txt's project() call."""
    path = os.path.join(CHECKOUT, "CMakeLists.txt")
    try:
        with open(path, encoding="utf-8") as f:
            match = re.search(r"project\(retrain\s+VERSION\s+([0-9.]+)", f.read())
    except OSError as error:
        raise BuildError("%s: %s; build the package from a checkout of retrain "
                         "(pip install ./client/python)" % (path, error.strerror)) from error
    if not match:
        raise BuildError("%s names no project(retrain VERSION x.y.z)" % path)
    return match.group(1)


def _tool(name, package):
    path = shutil.which(name)
    if path is None:
        raise BuildError("%s is not installed: install Debian's %s (scripts/install-deps "
                         "does)" % (name, package))
    return path


def _protoc(*args):
    run = subprocess.run([_tool("protoc", "protobuf-compiler"), "-I", PROTO_DIR, *args],
                         cwd=PROTO_DIR, capture_output=True, text=True)
    if run.returncode != 0:
        raise BuildError("protoc %s failed:\n%s" % (" ".join(args), run.stderr))


def _api_protos():
    """(all of the API's .proto files, those that define services)."""
    folder = os.path.join(PROTO_DIR, API_PROTO_DIR)
    if not os.path.isdir(folder):
        raise BuildError("%s is missing; build the package from a checkout of retrain" % folder)
    protos, services = [], []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".proto"):
            continue
        proto = API_PROTO_DIR + "/" + name
        protos.append(proto)
        with open(os.path.join(PROTO_DIR, proto), encoding="utf-8") as f:
            if re.search(r"^service\s", f.read(), re.MULTILINE):
                services.append(proto)
    return protos, services


def stage(dest):
    """Writes the package's files under `dest`: retrain/*.py as they are, the
    generated retrain/v1/ stubs, retrain/_version.py and the descriptors of
    tf.Example."""
    shutil.copytree(os.path.join(PACKAGE_DIR, "retrain"), os.path.join(dest, "retrain"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    protos, services = _api_protos()
    _protoc("--python_out=" + dest, *protos)
    plugin = _tool("grpc_python_plugin", "protobuf-compiler-grpc")
    _protoc("--plugin=protoc-gen-grpc_python=" + plugin, "--grpc_python_out=" + dest, *services)
    with open(os.path.join(dest, API_PROTO_DIR, "__init__.py"), "w", encoding="utf-8") as f:
        f.write('"""Stubs generated from proto/%s by protoc."""\n' % API_PROTO_DIR)
    _protoc("--include_imports", "--descriptor_set_out=" + os.path.join(dest, EXAMPLE_DESCRIPTORS),
            EXAMPLE_PROTO)
    with open(os.path.join(dest, "retrain", "_version.py"), "w", encoding="utf-8") as f:
        f.write('"""Written by the build."""\n__version__ = "%s"\n' % _version())


def _metadata():
    """The dist-info files but RECORD: {name: bytes}."""
    project = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + project["name"], "Version: " + _version(),
             "Summary: " + project["description"],
             "Requires-Python: " + project["requires-python"]]
    lines += ["Requires-Dist: " + d for d in project.get("dependencies", [])]
    for extra, requirements in sorted(project.get("optional-dependencies", {}).items()):
        lines.append("Provides-Extra: " + extra)
        lines += ['Requires-Dist: %s; extra == "%s"' % (r, extra) for r in requirements]
    wheel = ["Wheel-Version: 1.0", "Generator: retrain_build_backend", "Root-Is-Purelib: true",
             "Tag: py3-none-any"]
    scripts = ["[console_scripts]"] + ["%s = %s" % item
                                       for item in sorted(project.get("scripts", {}).items())]
    return {"METADATA": "\n".join(lines) + "\n", "WHEEL": "\n".join(wheel) + "\n",
            "entry_points.txt": "\n".join(scripts) + "\n"}


def _dist_info():
    return "%s-%s.dist-info" % (_project()["name"], _version())


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def _write_wheel(path, files):
    """A wheel at `path` of `files` ({archive name: bytes}) and their RECORD."""
    record_name = _dist_info() + "/RECORD"
    record = "".join(_record_line(n, d) + "\n" for n, d in sorted(files.items()))
    record += record_name + ",,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in sorted(files.items()) + [(record_name, record.encode())]:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    folder = os.path.join(metadata_directory, _dist_info())
    os.makedirs(folder, exist_ok=True)
    for name, text in _metadata().items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    return _dist_info()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    with tempfile.TemporaryDirectory(prefix="retrain-wheel-") as tree:
        stage(tree)
        for folder, _, names in os.walk(tree):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, tree).replace(os.sep, "/")] = f.read()
    for name, text in _metadata().items():
        files[_dist_info() + "/" + name] = text.encode()
    wheel_name = "%s-%s-py3-none-any.whl" % (_project()["name"], _version())
    _write_wheel(os.path.join(wheel_directory, wheel_name), files)
    return wheel_name
