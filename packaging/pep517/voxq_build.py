"""voxq's PEP 517 build backend: CMake builds the extension, the espeak helper
and the `voxq` command; this module packs them with the pure-Python packages
(worker, tts, voxq) into a wheel for the running interpreter.

Why its own backend: setuptools cannot build a wheel in a Debian 12 virtualenv
(no `wheel` package there, and pip is offline), and the build is CMake's anyway.

VOXQ_BUILD_DIR: a CMake build tree to use (configured and built if needed);
default `build-wheel/` in the source tree.
"""
import base64
import hashlib
import os
import pathlib
import platform
import re
import stat
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "tts", "voxq")


def _version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(voxq VERSION ([0-9][0-9.]*)", text).group(1)


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _tag():
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{py}-{py}-{plat}"


def _metadata():
    p = _project()
    return (f"Metadata-Version: 2.1\nName: {p['name']}\nVersion: {_version()}\n"
            f"Summary: {p['description']}\nRequires-Python: {p['requires-python']}\n")


def _dist_info_name():
    return f"voxq-{_version()}.dist-info"


def _build():
    build = pathlib.Path(os.environ.get("VOXQ_BUILD_DIR") or ROOT / "build-wheel")
    if not (build / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                        # -O2 as every other build, without debug info (GCC 12's -O3
                        # raises false -Wrestrict alarms in std::string).
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG", "-DVOXQ_BUILD_TESTS=OFF",
                        "-DVOXQ_BUILD_BENCH=OFF", f"-DPython_EXECUTABLE={sys.executable}"],
                       check=True, stdout=sys.stderr)
    jobs = os.environ.get("JOBS", "2")
    subprocess.run(["cmake", "--build", str(build), "-j", jobs, "--target", "voxq_python",
                    "voxq_cli"], check=True, stdout=sys.stderr)
    return build


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


class _Wheel:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, name, data, executable=False):
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        self.zip.writestr(info, data)
        self.records.append(_record_line(name, data))

    def close(self, dist_info):
        record = f"{dist_info}/RECORD"
        self.records.append(f"{record},,")
        self.zip.writestr(record, "\n".join(self.records) + "\n")
        self.zip.close()


def _write_dist_info(wheel, dist_info):
    wheel.add(f"{dist_info}/METADATA", _metadata().encode())
    wheel.add(f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: voxq_build\n"
                                     f"Root-Is-Purelib: false\nTag: {_tag()}\n").encode())
    wheel.add(f"{dist_info}/top_level.txt", ("\n".join(("_voxq",) + PACKAGES) + "\n").encode())


# --- the PEP 517 hooks ---

def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = pathlib.Path(metadata_directory) / _dist_info_name()
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(_metadata())
    return dist_info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    build = _build()
    python = build / "python"
    name = f"voxq-{_version()}-{_tag()}.whl"
    wheel = _Wheel(pathlib.Path(wheel_directory) / name)
    extension = sorted(python.glob("_voxq*.so"))
    if not extension:
        raise RuntimeError(f"no _voxq extension in {python}")
    wheel.add(extension[0].name, extension[0].read_bytes())
    # The espeak helper beside the extension, where the tts package finds it.
    wheel.add("voxq-espeak", (python / "voxq-espeak").read_bytes(), executable=True)
    for package in PACKAGES:
        for source in sorted((ROOT / "python" / package).rglob("*.py")):
            wheel.add(source.relative_to(ROOT / "python").as_posix(), source.read_bytes())
    # The voxq command into the environment's bin/ (it finds the helper through
    # VOXQ_ESPEAK_HELPER, or beside itself: shipped there too).
    scripts = f"voxq-{_version()}.data/scripts"
    wheel.add(f"{scripts}/voxq", (build / "bin" / "voxq").read_bytes(), executable=True)
    wheel.add(f"{scripts}/voxq-espeak", (python / "voxq-espeak").read_bytes(), executable=True)
    dist_info = _dist_info_name()
    _write_dist_info(wheel, dist_info)
    wheel.close(dist_info)
    return name
