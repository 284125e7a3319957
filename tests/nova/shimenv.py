"""shimenv: makes the shim importable as nova.virt.powervmd for the tests, and gives the
tests a real powervmd + pvmsim stack (tests/func/stacklib.py).

The shim is installed by scripts/install-shim into a directory that is appended to
nova.virt.__path__ (nova's own package stays untouched): $PVM_SHIM_TARGET when the ctest
sets it (tests/nova.cmake installs there first), else a fresh temporary directory.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PVM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "func"))

import stacklib  # noqa: E402


def _install():
    target = os.environ.get("PVM_SHIM_TARGET")
    if not target:
        target = tempfile.mkdtemp(prefix="pvm-shim-")
        atexit.register(shutil.rmtree, target, True)
    subprocess.run([os.path.join(SRC, "scripts", "install-shim"), "--target", target],
                   check=True, stdout=subprocess.DEVNULL)
    return target


def import_shim():
    """Installs (once) and imports nova.virt.powervmd; returns the module. eventlet's
    monkey-patching comes first, as in nova-compute (nova/cmd/__init__.py)."""
    import nova.monkey_patch  # noqa: F401
    import nova.virt
    target = os.environ.get("_PVM_SHIM_INSTALLED")
    if not target:
        target = _install()
        os.environ["_PVM_SHIM_INSTALLED"] = target
    if target not in nova.virt.__path__:
        nova.virt.__path__.append(target)
    import nova.virt.powervmd as shim
    return shim


class ModeStack(stacklib.Stack):
    """A stack in a given pvmsim mode (hmc | novalink)."""

    def __init__(self, name, mode="hmc", **kw):
        super().__init__(name, **kw)
        self.mode = mode

    def up(self):
        out = self._stack("up", self.dir, "--job-ms", str(self.job_ms), "--workers",
                          str(self.workers), "--mode", self.mode)
        for line in out.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v.strip("'")
        self.sock = self.env["POWERVMD_SOCKET"]
        self.sim_url = self.env["PVMSIM_URL"]
        self.note_pids()

    def known_types(self):
        """The operation types this powervmd knows (from the 400 of an unknown one)."""
        r = self.submit({"type": "no_such_type_probe", "instance_uuid":
                         "00000000-0000-4000-8000-000000000000", "params": {}})
        msg = r.error().get("message", "")
        if "known:" not in msg:
            return set()
        return {t.strip() for t in msg.split("known:", 1)[1].rstrip(")").split(",")}
