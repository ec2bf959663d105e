"""A newcomer's path in a real browser: `make lab`, open the tour, Run > Run All Cells.

The test starts the environment's own ``jupyter lab`` (as the Makefile's ``lab`` target does, on a free port with
a token, profile ``ci``), drives it in Debian's headless Chromium through Selenium, runs every cell of
``notebooks/00_course_tour.ipynb`` from the Run menu, and checks that every cell ran without an error and that the
plots rendered. It saves a screenshot, shuts the server down and checks that the server, its kernel and the
browser are gone.

The server serves a copy of the tour in ``tmp_path``: JupyterLab autosaves an open notebook, and the committed one
must stay free of outputs. Without Chromium or chromedriver (``make browser`` installs them) the test is skipped
with the reason.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.lock)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
TOUR = Path("notebooks") / "00_course_tour.ipynb"
JUPYTER = Path(sys.executable).parent / "jupyter"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

SERVER_START_S = 90
KERNEL_START_S = 120
RUN_ALL_S = 300  # the tour takes well under a minute on the ci profile; this leaves room on a busy CPU
SHUTDOWN_S = 30

pytestmark = pytest.mark.slow

# Every cell of the open notebook, read from JupyterLab's own model (``expose_app_in_browser``): its type,
# execution count and state, the errors among its outputs and how many PNG images it shows.
NOTEBOOK_STATE_JS = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.content || !panel.content.widgets) return null;
const session = panel.sessionContext.session;
return {
  path: panel.context.path,
  kernel: session && session.kernel ? session.kernel.status : null,
  cells: panel.content.widgets.map((cell, index) => {
    const m = cell.model;
    const outputs = m.type === "code" ? m.outputs.toJSON() : [];
    return {
      index: index,
      type: m.type,
      count: m.type === "code" ? m.executionCount : null,
      running: m.executionState === "running",
      errors: outputs.filter(o => o.output_type === "error").map(o => o.ename + ": " + o.evalue),
      images: outputs.filter(o => o.data && o.data["image/png"]).length,
      first_line: m.sharedModel.getSource().split("\\n")[0],
    };
  }),
};
"""

# The rendered size of every image in cell ``arguments[0]``, after scrolling it into view (JupyterLab renders
# cells far outside the viewport lazily).
IMAGE_SIZES_JS = """
const cell = window.jupyterapp.shell.currentWidget.content.widgets[arguments[0]];
cell.node.scrollIntoView({block: "center"});
return Array.from(cell.node.querySelectorAll(".jp-OutputArea-output img")).map(img => {
  const r = img.getBoundingClientRect();
  return {complete: img.complete, natural: [img.naturalWidth, img.naturalHeight], shown: [r.width, r.height]};
});
"""


def find_browser() -> tuple[str, str]:
    """Paths of a Chromium and of chromedriver, or skip the test saying which is missing."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    missing = [what for what, path in [("chromium", browser), ("chromedriver", driver)] if path is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found on PATH; `make browser` installs Debian's chromium and chromium-driver")
    return browser, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    """Poll ``condition()`` until it returns something truthy, and return that; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def start_lab(root: Path, log_path: Path, token: str, port: int) -> subprocess.Popen:
    """``jupyter lab`` serving ``root``, as `make lab` starts it, with its output going to ``log_path``."""
    args = [
        str(JUPYTER), "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the test reads cell states from it
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")  # as the Makefile's LAB_FLAGS
    env = {
        **os.environ,  # COURSE_CACHE_DIR (and PYTHONPATH) reach the kernel as they reach this test
        "COURSE_PROFILE": "ci",
        "JUPYTER_DATA_DIR": str(root.parent / "data"),  # the notebook-signing key, not in the user's home
        "JUPYTER_RUNTIME_DIR": str(root.parent / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root.parent / "workspaces"),
    }
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def api(port: int, token: str, path: str, method: str = "GET") -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    request.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def server_ready(server: subprocess.Popen, port: int, token: str) -> bool:
    if server.poll() is not None:
        pytest.fail(f"jupyter lab exited with status {server.returncode} before it served")
    try:
        return api(port, token, "/api/status") == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def headless_chromium(browser: str, driver: str, log_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"]:
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager is never asked to find or download anything.
    return webdriver.Chrome(service=Service(executable_path=driver, log_output=str(log_path)), options=options)


def click_menu(driver, menu: str, item: str) -> None:
    """Open the main menu ``menu`` (e.g. "Run") and click its item labelled ``item`` (e.g. "Run All Cells")."""
    bar = f"//div[@id='jp-MainMenu']//li[contains(@class,'lm-MenuBar-item')][.//div[text()='{menu}']]"
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.XPATH, bar), f"no menu {menu!r} in the menu bar").click()
    entry = f"//div[contains(@class,'lm-Menu')]//li[.//div[contains(@class,'lm-Menu-itemLabel') and text()='{item}']]"
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.XPATH, entry).is_displayed(),
                                    f"no item {item!r} in the {menu!r} menu")
    driver.find_element(By.XPATH, entry).click()


def describe(cell: dict) -> str:
    return f"cell {cell['index'] + 1} ({cell['first_line']!r})"


def command_line(process: psutil.Process) -> str | None:
    """The process's command line, or None once it has exited (browsers start and end helpers all the time)."""
    try:
        return None if process.status() == psutil.STATUS_ZOMBIE else " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return None


def still_running(processes: list[psutil.Process]) -> list[str]:
    _, alive = psutil.wait_procs(processes, timeout=SHUTDOWN_S)
    return [f"{p.pid} {line[:120]}" for p in alive if (line := command_line(p)) is not None]


def test_run_the_tour_in_jupyterlab(tmp_path):
    browser, chromedriver = find_browser()
    root = tmp_path / "course"
    (root / TOUR.parent).mkdir(parents=True)
    shutil.copy(REPO_ROOT / TOUR, root / TOUR)
    server_log = tmp_path / "jupyter-lab.log"
    token, port = os.urandom(16).hex(), free_port()

    t0 = time.perf_counter()
    server = start_lab(root, server_log, token, port)
    server_process = psutil.Process(server.pid)
    driver = None
    started: list[psutil.Process] = []  # everything the server and the driver started
    try:
        wait_for(lambda: server_ready(server, port, token), SERVER_START_S, f"jupyter lab to serve on port {port}")
        driver = headless_chromium(browser, chromedriver, tmp_path / "chromedriver.log")
        driver.get(f"http://127.0.0.1:{port}/lab/tree/{TOUR.as_posix()}?token={token}")

        def state():
            return driver.execute_script(NOTEBOOK_STATE_JS)

        wait_for(lambda: (s := state()) and s["path"] == TOUR.as_posix() and s["kernel"] == "idle",
                 KERNEL_START_S, f"JupyterLab to open {TOUR} with an idle python3 kernel")
        started += server_process.children(recursive=True)
        assert any("ipykernel" in (command_line(p) or "") for p in started), "no kernel process under the server"

        run_started = time.perf_counter()
        click_menu(driver, "Run", "Run All Cells")

        def finished():
            s = state()
            code = [c for c in s["cells"] if c["type"] == "code"]
            done = all(c["count"] is not None and not c["running"] for c in code)
            stopped = any(c["errors"] for c in code) and not any(c["running"] for c in code)
            return s if s["kernel"] == "idle" and (done or stopped) else None

        final = wait_for(finished, RUN_ALL_S, "every cell of the tour to finish (Run > Run All Cells)")
        run_s = time.perf_counter() - run_started
        code = [c for c in final["cells"] if c["type"] == "code"]
        errors = [f"{describe(c)}: {'; '.join(c['errors'])}" for c in code if c["errors"]]
        assert not errors, "cells failed:\n" + "\n".join(errors)
        not_run = [describe(c) for c in code if c["count"] is None]
        assert not not_run, f"cells without an execution count: {not_run}"
        assert [c["count"] for c in code] == list(range(1, len(code) + 1)), "cells did not run once each, in order"

        plots = [c for c in code if c["images"]]
        assert plots, "no cell of the tour shows an image output (its learning-rate and loss plots)"

        def drawn(index: int) -> list[dict] | None:
            images = driver.execute_script(IMAGE_SIZES_JS, index)
            return images if images and all(i["complete"] and min(i["natural"] + i["shown"]) > 0 for i in images) else None

        for cell in plots:
            sizes = wait_for(lambda: drawn(cell["index"]), 30, f"the image of {describe(cell)} to render with a non-zero size")
            assert len(sizes) == cell["images"], f"{describe(cell)}: {cell['images']} images in the model, {len(sizes)} drawn"

        screenshot = tmp_path / "tour.png"
        assert driver.save_screenshot(str(screenshot)), "the browser took no screenshot"
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{screenshot} is not a PNG"
        assert screenshot.stat().st_size > 10_000, f"{screenshot} is too small to show the notebook"
        started += psutil.Process(driver.service.process.pid).children(recursive=True)  # the browser's processes
        driver.quit()
        driver = None

        assert api(port, token, "/api/shutdown", method="POST") == 200  # what File > Shut Down asks for
        try:
            server.wait(timeout=SHUTDOWN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"jupyter lab still running {SHUTDOWN_S} s after /api/shutdown")
        left = still_running(started)
        assert not left, "processes left running after the shutdown:\n" + "\n".join(left)
        print(f"tour: {len(code)} code cells ran in {run_s:.1f} s; whole test {time.perf_counter() - t0:.1f} s; "
              f"screenshot {screenshot}")
    finally:
        if driver is not None:
            driver.quit()
        if server.poll() is None:
            server.kill()
            server.wait()
        for p in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        # pytest shows a test's output only when it fails: then this is the server's side of the story.
        print(f"--- {server_log} ---\n{server_log.read_text(errors='replace')[-6000:]}")
