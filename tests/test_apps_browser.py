"""End to end in a real browser: start ``streamlit run apps/Home.py`` on 127.0.0.1 and drive headless
Chromium (Debian's ``chromium`` + ``chromium-driver``) with Selenium through Classify and Similarity
search: upload files, wait for the results, assert on what the page shows, save screenshots.

Screenshots go to ``runs/screenshots/`` (or ``$APPS_SCREENSHOTS``) and to the test's tmp dir.
Needs: ``apt-get install chromium chromium-driver`` and ``pip install selenium``; skipped with the
reason when either is missing.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (see requirements.txt)")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("needs Chromium and its driver: apt-get install -y chromium chromium-driver",
                allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1700", "--force-device-scale-factor=1"]
WAIT = 240  # seconds: a cold server imports TensorFlow, loads models and builds the index


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("zoo_home")
    log = open(home / "server.log", "wb")
    env = {**os.environ, "ZOO_HOME": str(home), "ZOO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "apps" / "Home.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start: {(home / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    text = (home / "server.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    for f in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(f)
    opts.binary_location = CHROMIUM
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for downloads
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    dirs = [Path(os.environ.get("APPS_SCREENSHOTS", ROOT / "runs" / "screenshots")),
            tmp_path_factory.mktemp("screenshots")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)

    def save(driver, name):
        time.sleep(1.0)  # let images finish painting
        for d in dirs:
            driver.save_screenshot(str(d / f"{name}.png"))
        return dirs[0] / f"{name}.png"
    return save


def body(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_text(driver, *texts, timeout=WAIT):
    """Wait until every text shows, nothing runs, and the page stays the same for a second."""
    last = {"text": None}

    def settled(d):
        errors = d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert not errors, errors[0].text
        t = body(d)
        done = all(x in t for x in texts) and not running(d) and t == last["text"]
        last["text"] = t
        return done
    WebDriverWait(driver, timeout, poll_frequency=1.0).until(settled, f"never showed {texts}")
    return body(driver)


def running(driver) -> bool:
    """True while the script runs (Streamlit's status widget animates) or a spinner shows."""
    busy = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
            '[data-testid="stSpinner"]')
    return bool(driver.find_elements(By.CSS_SELECTOR, busy))


def click_label(driver, text):
    el = driver.find_element(By.XPATH, f"//label[.//*[normalize-space(text())='{text}']]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()


def upload(driver, path, index=0):
    inputs = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'input[type="file"]'))
    inputs[index].send_keys(str(path))


def errors(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]')]


def test_classify_upload_in_browser(server, browser, shots, tmp_path):
    from skimage import data

    cat = tmp_path / "my_cat.jpg"
    Image.fromarray(data.chelsea()).save(cat, quality=92)
    browser.get(f"{server}/classify")
    wait_text(browser, "Top-1:", "Grad-CAM for")  # the bundled sample is classified on arrival
    shots(browser, "classify_sample")
    click_label(browser, "Upload")
    upload(browser, cat)
    text = wait_text(browser, "Top-1:", "my_cat.jpg")
    top1 = next(line for line in text.splitlines() if line.startswith("Top-1:"))
    assert "cat" in top1 or "tabby" in top1, top1
    assert "Grad-CAM for" in text
    shots(browser, "classify_upload")
    # a corrupt file: a message on the page, nothing classified, no traceback
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    upload(browser, bad)
    WebDriverWait(browser, 60).until(lambda d: any("holiday.png" in e for e in errors(d)), "no error shown")
    assert "Top-1:" not in body(browser) and "Traceback" not in body(browser)
    shots(browser, "classify_bad_upload")


def test_similarity_search_in_browser(server, browser, shots, tmp_path):
    from zoo import data

    train = data.fashion_mnist("train")
    row = np.flatnonzero(train.labels == train.class_names.index("Trouser"))[3]
    query = tmp_path / "trousers.png"
    Image.fromarray(train.images[row]).resize((112, 112), Image.NEAREST).save(query)
    browser.get(f"{server}/search")
    text = wait_text(browser, "12 nearest", "neighbours share the query's label")
    assert "Fashion-MNIST: 2,000 test images" in text
    shots(browser, "search_collection_item")
    click_label(browser, "Upload an image")
    upload(browser, query)
    text = wait_text(browser, "12 nearest", "trousers.png")
    captions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImageCaption"]')]
    hits = [c for c in captions if " · " in c]
    assert len(hits) == 12, captions
    assert sum("Trouser" in c for c in hits) >= 9, hits
    shots(browser, "search_upload")
    browser.find_element(By.XPATH, "//*[@role='tab'][contains(normalize-space(.), 'Near-duplicates')]").click()
    wait_text(browser, "of near-duplicates")
    shots(browser, "search_duplicates")


def test_tour_of_the_other_pages(server, browser, shots):
    """Every other page opens on its bundled defaults without an error (screenshots for the README),
    the generic page of a kind with no page of its own (multilabel) among them."""
    import zoo

    n = len(zoo.list_models())
    for path, texts in [
        ("", ["Registry entries", str(n)]),
        ("models", [f"{n} of {n} models"]),
        ("multilabel", ["Multi-label classifier", "A saved multi-label classifier folder"]),
        ("fewshot", ["queries right", "Same k-NN on raw pixels"]),
        ("verify", ["Cosine similarity", "Decision", "same"]),
        ("finetune", ["Start fine-tuning"]),
        ("segment", ["Segment"]),
    ]:
        browser.get(f"{server}/{path}")
        text = wait_text(browser, *texts)
        assert not [e for e in errors(browser) if "Could not" in e], errors(browser)
        assert "Traceback" not in text
        shots(browser, f"page_{path or 'overview'}")


def test_detect_faces_and_zero_shot_in_browser(server, browser, shots):
    """The Detect page with MTCNN on the bundled astronaut photo (one face), and the Image-text
    page naming the bundled cat from typed class names with no image-text training (ConSE)."""
    browser.get(f"{server}/detect")
    wait_text(browser, "Detect")
    click_label(browser, "MTCNN faces")
    text = wait_text(browser, "1 detections at score")
    assert "Traceback" not in text
    shots(browser, "page_detect_faces")
    browser.get(f"{server}/image_text")
    text = wait_text(browser, "ConSE:", "Class names")
    assert "ConSE: cat (" in text, text
    shots(browser, "page_image_text")
