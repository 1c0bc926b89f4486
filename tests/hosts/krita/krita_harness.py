"""Run real Krita headless with a fresh profile, the packaged Paintwire plug-in
and a scenario driver (see HOST-TESTING.md for the facts this relies on).

- Krita needs an X server (offscreen platforms crash it): Xvfb with -displayfd.
- One Krita per HOME, and a clean environment (env -i): HOME and the XDG
  folders point into a temporary profile.
- Plug-ins load only when kritarc enables them by their X-KDE-Library name.
- The first start builds a resource database (about 12 s); a profile from an
  earlier successful run is copied in (without plug-ins and kritarc) so later
  starts take a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver"
DRIVER_NAME = "paintwire_test_driver"
PLUGIN_NAME = "paintwire_krita"
# The code behind Krita's Tools > Scripts > Import Python Plugin from File (Debian's path).
KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
SCREEN = "1600x1000x24"
# Profile parts that are made fresh for every run; the rest may come from the cache.
PER_RUN = ("config/kritarc", "config/kritadisplayrc", "data/krita/pykrita")


def missing_tools() -> str | None:
    """Why Krita cannot run here, or None."""
    for tool in ("krita", "Xvfb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run tests/hosts/krita/setup.sh, or .ci/run, to install Krita and Xvfb)"
    return None


def profile_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "paintwire" / "krita-profile"


@dataclass
class Profile:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, display: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "XDG_RUNTIME_DIR": str(self.root / "runtime"),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "DISPLAY": display,
            # Krita resets LANG to C; without this Python's default encoding becomes ASCII.
            "LC_ALL": "C.UTF-8",
            "KDE_DEBUG": "1",  # no crash dialog
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra)
        return env


def make_profile(root: Path, plugin_zip: Path) -> Profile:
    """A fresh profile under ``root`` with the plug-in zip installed as Krita's
    importer installs it (its contents unpacked into pykrita/), the test
    driver beside it, and both enabled."""
    profile = Profile(root)
    cache = profile_cache()
    if cache.is_dir():
        try:
            shutil.copytree(cache, root, dirs_exist_ok=True, symlinks=True)
        except (OSError, shutil.Error):  # another run is replacing the cache: start from scratch
            shutil.rmtree(root, ignore_errors=True)
    for part in PER_RUN:
        target = root / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for sub in ("home", "config", "data/krita/pykrita", "cache", "runtime"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "runtime", 0o700)
    pykrita = root / "data" / "krita" / "pykrita"
    install_zip(plugin_zip, root / "data" / "krita")
    shutil.copy2(DRIVER / f"{DRIVER_NAME}.desktop", pykrita)
    shutil.copytree(DRIVER / DRIVER_NAME, pykrita / DRIVER_NAME, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "config" / "kritarc").write_text(
        f"[python]\nenable_{PLUGIN_NAME}=true\nenable_{DRIVER_NAME}=true\n", encoding="utf-8"
    )
    (root / "config" / "kritadisplayrc").write_text("[General]\nOpenGLRenderer=none\n", encoding="utf-8")
    return profile


def install_zip(plugin_zip: Path, resources: Path) -> None:
    """Install the zip as Tools > Scripts > Import Python Plugin from File does:
    with Krita's own importer code where it is installed, else by unpacking."""
    if KRITA_IMPORTER.exists():
        out = subprocess.run(
            ["python3", str(KRITA_IMPORTER), str(plugin_zip), str(resources)], capture_output=True, text=True, timeout=60,
        )
        if out.returncode != 0 or "Imported plugin: " not in out.stdout:
            raise RuntimeError(f"Krita's plug-in importer refused {plugin_zip}:\n{out.stdout}{out.stderr}")
        return
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(resources / "pykrita")


def save_profile_cache(profile: Profile) -> None:
    """Keep this run's resource database for the next run's fast start. Safe
    when several test runs share the cache: the first one to finish keeps it."""
    cache = profile_cache()
    if cache.exists():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    shutil.copytree(profile.root, tmp, symlinks=True, ignore=shutil.ignore_patterns("runtime", "pykrita", "kritarc", "kritadisplayrc"))
    try:
        tmp.rename(cache)
    except OSError:  # another run saved it first
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class KritaRun:
    returncode: int
    seconds: float
    log: str
    report: dict


def start_xvfb() -> tuple[subprocess.Popen, str]:
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


def run_scenario(profile: Profile, scenario: dict, out_dir: Path, timeout: float) -> KritaRun:
    """Start Krita on a private X server with the driver's scenario; wait for it to quit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = dict(scenario, out_dir=str(out_dir), timeout=timeout - 5)
    scenario_path = out_dir / "scenario.json"
    scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
    xvfb, display = start_xvfb()
    log_path = out_dir / "krita.log"
    t0 = time.monotonic()
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                ["krita", "--nosplash"], env=profile.env(display, {"PAINTWIRE_KRITA_SCENARIO": str(scenario_path)}),
                stdout=log, stderr=subprocess.STDOUT, cwd=profile.home,
            )
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
    seconds = time.monotonic() - t0
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    return KritaRun(code, seconds, log_path.read_text(encoding="utf-8", errors="replace"), report)
