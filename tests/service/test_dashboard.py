"""The dashboard in a real browser: Debian's headless Chromium (packages chromium and chromium-driver), driven by
selenium, against the API served by uvicorn with a real worker behind it. Screenshots go to the test run's folder."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from finetuning.tiny import tiny_chat_records, write_jsonl
from jobcore.models import JobKind, JobStatus
from jobcore.settings import ServiceSettings
from tests.service.api_helpers import insert_events, insert_job, make_token, new_project, sft_body

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "the dashboard's browser tests need Debian's Chromium: apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # headless, and none of the background connections a closed network refuses
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(service_root: Path) -> Path:
    folder = service_root / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def wait_until(condition: Callable[[], Any], timeout: float = 30, what: str = "the page") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the element is not there yet, or was redrawn under us
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def by_testid(driver: WebDriver, testid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def sign_in(driver: WebDriver, base_url: str, token: str) -> None:
    driver.get(f"{base_url}/ui/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{base_url}/ui/")
    wait_until(lambda: by_testid(driver, "token-input"), what="the sign-in form").send_keys(token)
    by_testid(driver, "sign-in").click()
    wait_until(lambda: driver.find_element(By.CSS_SELECTOR, "h1").text == "Jobs", what="the job list")


def test_watch_a_job_train_then_cancel_it_from_its_page(
    browser: WebDriver, base_url: str, settings: ServiceSettings, tiny_model_dir: Path, data_dir: Path, shots: Path
) -> None:
    project = new_project()
    token = make_token(settings, project)
    data = write_jsonl(tiny_chat_records(16), data_dir / "dashboard.jsonl")
    body = sft_body(tiny_model_dir, data)
    body["training_args"].update(max_steps=100000, logging_steps=1, save_strategy="no")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as api:
        job = api.post("/v1/jobs/sft", json=body, params={"name": "watched"}).json()
    sign_in(browser, base_url, token)
    rows = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-testid="job-row"]'), what="job rows")
    assert len(rows) == 1
    assert "token" not in browser.current_url.lower()
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    wait_until(lambda: browser.current_url.endswith(f"/ui/jobs/{job['id']}"), what="the job's page")

    def drawn() -> int:
        return int(by_testid(browser, "loss-chart").get_attribute("data-points") or 0)

    first = wait_until(lambda: drawn() >= 3, timeout=120, what="the loss curve") and drawn()
    grown = wait_until(lambda: drawn() > first + 3, timeout=60, what="a growing loss curve") and drawn()
    assert grown > first
    assert wait_until(lambda: "step" in by_testid(browser, "progress").text, what="the progress")
    assert wait_until(lambda: by_testid(browser, "logs").text.strip(), what="the logs")
    browser.save_screenshot(str(shots / "job-training.png"))

    by_testid(browser, "cancel").click()
    wait_until(lambda: by_testid(browser, "status").text == "cancelled", timeout=60, what="the cancel")
    assert not by_testid(browser, "resume").get_attribute("disabled")  # it saved a checkpoint: resumable
    row = wait_until(lambda: by_testid(browser, "checkpoint-row").text, what="the checkpoint the cancel saved")
    assert f"job:{job['id']}/checkpoint-" in row
    browser.save_screenshot(str(shots / "job-cancelled.png"))


def test_a_typo_is_shown_next_to_its_field(
    browser: WebDriver, base_url: str, settings: ServiceSettings, shots: Path
) -> None:
    sign_in(browser, base_url, make_token(settings, new_project()))
    browser.get(f"{base_url}/ui/submit")
    config = "\n".join(
        [
            "data_conf:",
            "  training_data:",
            "    type: CONCATENATION",
            "    datasets: [{path: /nowhere.jsonl}]",
            "training_args:",
            "  learning_rat: 0.001",
            "run_conf:",
            "  model: /nowhere",
        ]
    )
    wait_until(lambda: by_testid(browser, "config-input")).send_keys(config)
    by_testid(browser, "submit").click()
    errors = wait_until(lambda: by_testid(browser, "submit-errors").text, what="the errors")
    assert "training_args.learning_rat" in errors
    notes = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-testid="field-error"]'))
    note = next(n for n in notes if "learning_rat" in n.text)
    line = note.find_element(By.XPATH, "preceding-sibling::div[not(@data-testid)][1]")
    assert "learning_rat:" in line.text  # the message sits right under the line with the typo
    browser.save_screenshot(str(shots / "submit-typo.png"))


def test_user_text_is_shown_never_run(
    browser: WebDriver, base_url: str, settings: ServiceSettings, shots: Path
) -> None:
    project = new_project()
    job_id = insert_job(
        settings, project, kind=JobKind.SFT, status=JobStatus.FAILED, labels={"team": XSS}, config={"name": XSS}
    )
    from jobcore.db import session_scope
    from jobcore.models import Job

    with session_scope(settings.database_url) as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.name = XSS
    insert_events(settings, job_id, [("log", {"stream": "stdout", "line": XSS}), ("metrics", {"step": 1, "loss": 2.0})])
    sign_in(browser, base_url, make_token(settings, project))
    row_text = wait_until(lambda: by_testid(browser, "job-row").text, what="the job row")
    assert "<script>" in row_text  # shown as text
    browser.get(f"{base_url}/ui/jobs/{job_id}")
    wait_until(lambda: "<script>" in by_testid(browser, "logs").text, what="the log line")
    assert browser.execute_script("return window.__xss === undefined")
    browser.save_screenshot(str(shots / "escaped.png"))


def test_the_page_only_runs_its_own_script(base_url: str) -> None:
    page = httpx.get(f"{base_url}/ui/jobs/anything")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "<script" in page.text
    assert "<script>" not in page.text  # no inline script: only the file
    assert httpx.get(f"{base_url}/ui/static/../../api/main.py").status_code == 404


def test_a_hundred_thousand_points_are_drawn_downsampled_and_read_exactly(
    browser: WebDriver, base_url: str, settings: ServiceSettings, shots: Path
) -> None:
    project = new_project()
    job_id = insert_job(settings, project, kind=JobKind.SFT, status=JobStatus.SUCCEEDED)
    points = 100_000
    insert_events(settings, job_id, [("metrics", {"step": s, "loss": 5.0 / s}) for s in range(1, points + 1)])
    sign_in(browser, base_url, make_token(settings, project))
    browser.get(f"{base_url}/ui/jobs/{job_id}")
    chart = wait_until(lambda: by_testid(browser, "loss-chart"), what="the chart")

    def drawn() -> int:
        return int(chart.get_attribute("data-points") or 0)

    # every point arrived (the stream ends with the job's last event), and far fewer are drawn
    wait_until(lambda: "step 100000" in chart.text, timeout=120, what="all 100,000 points")
    assert 0 < drawn() <= 4 * 600
    chart.find_element(By.CSS_SELECTOR, "svg").click()
    readout = wait_until(lambda: chart.find_element(By.CSS_SELECTOR, ".readout").text.count("step "), what="readout")
    assert readout
    browser.save_screenshot(str(shots / "hundred-thousand.png"))
    browser.get("about:blank")
    _delete_job(settings, job_id)  # 100,000 rows less for the database the next tests share


def _delete_job(settings: ServiceSettings, job_id: str) -> None:
    from jobcore.db import session_scope
    from jobcore.models import Job

    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        if job is not None:
            session.delete(job)


def test_compare_overlays_the_loss_curves_of_several_jobs(
    browser: WebDriver, base_url: str, settings: ServiceSettings, shots: Path
) -> None:
    project = new_project()
    ids = []
    for n in range(3):
        job_id = insert_job(settings, project, kind=JobKind.SFT, status=JobStatus.SUCCEEDED)
        insert_events(settings, job_id, [("metrics", {"step": s, "loss": (n + 1.0) / s}) for s in range(1, 51)])
        ids.append(job_id)
    sign_in(browser, base_url, make_token(settings, project))
    browser.get(f"{base_url}/ui/compare?ids={','.join(ids)}")
    chart = wait_until(lambda: by_testid(browser, "compare-chart"), what="the chart")
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) == 150, what="three curves of 50 points")
    assert len(chart.find_elements(By.CSS_SELECTOR, "polyline")) == 3
    browser.save_screenshot(str(shots / "compare.png"))


def test_a_grpo_job_shows_its_reward_curve_and_its_latest_samples(
    browser: WebDriver, base_url: str, settings: ServiceSettings, shots: Path
) -> None:
    project = new_project()
    job_id = insert_job(settings, project, kind=JobKind.GRPO, status=JobStatus.SUCCEEDED)
    events: list[tuple[str, dict[str, Any]]] = []
    for step in range(1, 31):
        events.append(("metrics", {"step": step, "loss": 0.0, "extra": {"reward": step / 30}}))
        if step % 10 == 0:
            sample = {
                "prompt": f"Is the sky blue? (step {step})",
                "completion": XSS if step == 30 else "no",
                "reward": step / 30,
                "rewards": {"says_yes": step / 30},
            }
            events.append(("samples", {"step": step, "samples": [sample, {**sample, "completion": "yes"}]}))
    insert_events(settings, job_id, events)
    sign_in(browser, base_url, make_token(settings, project))
    browser.get(f"{base_url}/ui/jobs/{job_id}")
    chart = wait_until(lambda: by_testid(browser, "reward-chart"), what="the reward chart")
    wait_until(lambda: int(chart.get_attribute("data-points") or 0) == 30, what="30 reward points")
    shown = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-testid="sample"]'), what="the samples")
    assert len(shown) == 2
    assert "(step 30)" in shown[0].text  # the latest logging step's, not an earlier one
    assert "<script>" in shown[0].text  # the answer as text
    assert "says_yes 1" in shown[0].text
    assert browser.execute_script("return window.__xss === undefined")
    browser.save_screenshot(str(shots / "grpo.png"))

    sft_id = insert_job(settings, project, kind=JobKind.SFT, status=JobStatus.SUCCEEDED)
    browser.get(f"{base_url}/ui/jobs/{sft_id}")
    wait_until(lambda: by_testid(browser, "loss-chart"), what="an SFT job's page")
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="reward-chart"], [data-testid="samples"]')
    assert "false" not in browser.find_element(By.ID, "app").text.split()
