"""Run real Krita headless with a fresh profile, the packaged Paintwire plug-in
and a scenario driver (see HOST-TESTING.md for the facts this relies on).

- Krita needs an X server (offscreen platforms crash it): Xvfb with -displayfd.
- One Krita per HOME, and a clean environment (env -i): HOME and the XDG
  folders point into a temporary profile.
- Plug-ins load only when kritarc enables them by their X-KDE-Library name.
- The first start builds a resource database (about 12 s); a profile from an
  earlier successful run is copied in (without plug-ins and kritarc) so later
  starts take a few seconds.
- Several Kritas: the system's (Debian 12: 5.1) and, where they are prepared,
  those of Debian chroots (setup_chroot.sh): 5.2 (trixie), 5.3 (sid) and 6.0
  (experimental, Qt 6 and PyQt6). A chroot's Krita runs through run_chroot.sh,
  on the host's Xvfb, with its profile and every file it reads or writes inside
  the chroot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver"
DRIVER_NAME = "paintwire_test_driver"
PLUGIN_NAME = "paintwire_krita"
# The code behind Krita's Tools > Scripts > Import Python Plugin from File (Debian's path).
KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
# Krita 5.3 and later's importer imports i18n from builtins, where Krita puts it; outside
# Krita it must be supplied (untranslated) before the importer runs as its own script.
RUN_IMPORTER = (
    "import builtins, runpy, sys\n"
    "if not hasattr(builtins, 'i18n'):\n"
    "    builtins.i18n = lambda text, *args: text\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)
SCREEN = "1600x1000x24"
# Profile parts that are made fresh for every run; the rest may come from the cache.
PER_RUN = ("config/kritarc", "config/kritadisplayrc", "data/krita/pykrita")


# Not a PAINTWIRE_* name: the server reads every PAINTWIRE_* variable as one of its settings.
CHROOTS = Path(os.environ.get("HOST_CHROOTS", "/var/cache/paintwire"))


@dataclass(frozen=True)
class KritaHost:
    """One Krita to test on: the system's, or the one in a chroot (``root``).
    ``version`` is the start of its version string; it names the test ids and
    the artifacts folder."""

    version: str
    root: Path | None = None

    def missing(self) -> str | None:
        """Why this Krita cannot run here, or None."""
        if shutil.which("Xvfb") is None:
            return "Xvfb is not installed (run tests/hosts/krita/setup.sh, or .ci/run, to install Krita and Xvfb)"
        if self.root is None:
            if shutil.which("krita") is None:
                return "krita is not installed (run tests/hosts/krita/setup.sh, or .ci/run, to install Krita and Xvfb)"
            return None
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            return f"Krita {self.version} runs from a Debian chroot: Linux and root only"
        if not (self.root / ".paintwire-ready").is_file():
            return (f"Krita {self.version} chroot not prepared at {self.root}: run "
                    f"`bash tests/hosts/krita/setup_chroot.sh {self.version}` (as root; a few minutes, once)")
        for tool in ("chroot", "mount", "flock"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        return None

    def work_dir(self, fallback: Path) -> Path:
        """A fresh folder this Krita can read and write: ``fallback``, or one inside the chroot."""
        if self.root is None:
            fallback.mkdir(parents=True, exist_ok=True)
            return fallback
        path = self.root / "tmp" / f"paintwire-krita-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def inside(self, path: Path | str) -> str:
        """``path`` as this Krita sees it."""
        if self.root is None:
            return str(path)
        return "/" + str(Path(path).resolve().relative_to(self.root.resolve()))


# Every host test runs on each of these: what painters run (5.2 until 2026, 5.3 and 6.0 since).
HOSTS = (
    KritaHost("5.2", CHROOTS / "krita-trixie"),
    KritaHost("5.3", CHROOTS / "krita-sid"),
    KritaHost("6.0", CHROOTS / "krita-experimental"),  # Qt 6, PyQt6
)
# The oldest Krita the plug-in supports, Debian 12's package: the classical scenario only,
# which keeps "5.1 and later" true at the cost of one short run.
SYSTEM = KritaHost("5.1")


def missing_tools() -> str | None:
    """Why the system's Krita cannot run here, or None."""
    return SYSTEM.missing()


def profile_cache(host: KritaHost = SYSTEM) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "paintwire" / f"krita-profile-{host.version}"


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


def make_profile(root: Path, plugin_zip: Path, host: KritaHost = SYSTEM) -> Profile:
    """A fresh profile under ``root`` with the plug-in zip installed as Krita's
    importer installs it (its contents unpacked into pykrita/), the test
    driver beside it, and both enabled."""
    profile = Profile(root)
    cache = profile_cache(host)
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
    install_zip(plugin_zip, root / "data" / "krita", host)
    shutil.copy2(DRIVER / f"{DRIVER_NAME}.desktop", pykrita)
    shutil.copytree(DRIVER / DRIVER_NAME, pykrita / DRIVER_NAME, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "config" / "kritarc").write_text(
        f"[python]\nenable_{PLUGIN_NAME}=true\nenable_{DRIVER_NAME}=true\n", encoding="utf-8"
    )
    (root / "config" / "kritadisplayrc").write_text("[General]\nOpenGLRenderer=none\n", encoding="utf-8")
    return profile


def install_zip(plugin_zip: Path, resources: Path, host: KritaHost = SYSTEM) -> None:
    """Install the zip as Tools > Scripts > Import Python Plugin from File does:
    with that Krita's own importer code where it is installed, else by unpacking."""
    importer = KRITA_IMPORTER if host.root is None else host.root / KRITA_IMPORTER.relative_to("/")
    if importer.exists():
        zip_path = plugin_zip
        if host.root is not None:  # the chroot's own Python and importer, on a copy of the zip inside it
            zip_path = resources / plugin_zip.name
            shutil.copy2(plugin_zip, zip_path)
        command = ["python3", "-c", RUN_IMPORTER, str(KRITA_IMPORTER), host.inside(zip_path), host.inside(resources)]
        if host.root is not None:
            command = ["chroot", str(host.root), *command]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or "Imported plugin: " not in out.stdout:
            raise RuntimeError(f"Krita's plug-in importer refused {plugin_zip}:\n{out.stdout}{out.stderr}")
        return
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(resources / "pykrita")


def save_profile_cache(profile: Profile, host: KritaHost = SYSTEM) -> None:
    """Keep this run's resource database for the next run's fast start. Safe
    when several test runs share the cache: the first one to finish keeps it."""
    cache = profile_cache(host)
    if cache.exists():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    shutil.copytree(profile.root, tmp, symlinks=True, ignore=shutil.ignore_patterns("runtime", "pykrita", "kritarc", "kritadisplayrc", "*.zip"))
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


# Krita that cannot reach its fresh Xvfb exits at once with this line (seen rarely, under load,
# with Krita in a chroot); that run never started, so it is made once more on a new X server.
NO_DISPLAY = "could not connect to display"


def run_scenario(profile: Profile, scenario: dict, out_dir: Path, timeout: float, host: KritaHost = SYSTEM) -> KritaRun:
    """Start Krita on a private X server with the driver's scenario; wait for it to quit.
    Paths in ``scenario`` are as ``host``'s Krita sees them; ``out_dir`` must be one it can write."""
    run = _run_scenario_once(profile, scenario, out_dir, timeout, host)
    if run.returncode != 0 and run.seconds < 30 and NO_DISPLAY in run.log:
        run = _run_scenario_once(profile, scenario, out_dir, timeout, host)
    return run


def _run_scenario_once(profile: Profile, scenario: dict, out_dir: Path, timeout: float, host: KritaHost) -> KritaRun:
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = dict(scenario, out_dir=host.inside(out_dir), timeout=timeout - 5)
    scenario_path = out_dir / "scenario.json"
    scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
    xvfb, display = start_xvfb()
    log_path = out_dir / "krita.log"
    t0 = time.monotonic()
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            extra = {"PAINTWIRE_KRITA_SCENARIO": host.inside(scenario_path)}
            if host.root is None:
                command, env = ["krita", "--nosplash"], profile.env(display, extra)
            else:
                command = ["bash", str(HERE / "run_chroot.sh"), str(profile.root), display, str(int(timeout))]
                command += [f"{k}={v}" for k, v in extra.items()]
                env = dict(os.environ, KRITA_HOST_CHROOT=str(host.root))
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=profile.home)
            try:
                # The chroot's wrapper stops Krita itself at ``timeout`` and then unmounts: give it the time.
                code = proc.wait(timeout if host.root is None else timeout + 30)
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
