"""Accessibility of the sidebar, its Actions menu and its dialogs, in a real JupyterLab and a
real Chromium, in the light and the dark theme: axe-core finds no serious or critical
violation in our DOM, Escape gives the focus back to the menu's button, every button has a
name, and what a version does not offer is shown greyed with why."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _lab import (
    SIDEBAR,
    SIDEBAR_TAB,
    open_lab,
    our_errors,
    our_tracebacks,
    screenshot,
    start_lab,
    stop_lab,
    use_dark_theme,
)
from _lab import browser as browser  # the fixture, for the tests below
from conftest import FAST_SAVE
from playwright.sync_api import expect

from jupyter_sparkserve.config import Settings
from jupyter_sparkserve.deploy.deployments import Deployments
from jupyter_sparkserve.deploy.mlflow import MlflowRegistry
from jupyter_sparkserve.lifecycle import (
    Action,
    deployment_actions,
    deployment_unavailable,
    unavailable_actions,
    version_states,
)
from jupyter_sparkserve.repository import ModelRepository

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

MENU = ".jp-SparkserveActionsMenu"
# Ours: the sidebar, our dialogs and our menus. JupyterLab's own chrome is its business.
OURS = [SIDEBAR, ".jp-Dialog", MENU]


PROBE = """() => {
  const probe = document.createElement('p');
  probe.id = 'jp-sparkserve-probe';
  probe.textContent = 'Deploying iris:1 ended failed.';
  probe.style.color = 'var(--jp-error-color1)';
  probe.style.background = 'var(--jp-layout-color2)';
  document.querySelector('#jp-sparkserve-sidebar').prepend(probe);
}"""


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations inside our elements on the page now."""
    from axe_playwright_python.sync_playwright import Axe

    # JupyterLab's body is 0 px high with overflow hidden (the shell is positioned over the
    # viewport): axe would take every text as clipped and check the contrast of none. The
    # body given the viewport's height changes nothing on screen and lets axe see the text.
    page.evaluate("() => { document.body.style.height = '100vh'; }")
    present = [[selector] for selector in OURS if page.locator(selector).count() > 0]
    assert present, "none of our elements is on the page"
    results = Axe().run(page, context={"include": present})
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        for node in violation["nodes"]:
            summary = node.get("failureSummary", "").replace("\n", " ")
            found.append(f"{violation['id']} ({violation['impact']}) {node['target']}: {summary}")
    return found


def assert_no_serious_violation(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], "\n".join(found)


def cancel_colours(page: Any) -> list[str]:
    """The texts of a cancelled job drawn in the colour of a failed job's error line."""
    return page.evaluate(
        """() => {
          const job = s => document.querySelector(`#jp-sparkserve-sidebar ${s}`);
          const failed = job('[data-testid="sparkserve-job"][data-status="failed"]');
          const cancelled = job('[data-testid="sparkserve-job"][data-status="cancelled"]');
          if (!failed || !cancelled) return ['a failed and a cancelled job are not both shown'];
          const red = getComputedStyle(
            failed.querySelector('[data-testid="sparkserve-job-status"]')).color;
          return [...cancelled.querySelectorAll('*')]
            .filter(node => node.childElementCount === 0 && node.textContent.trim())
            .filter(node => getComputedStyle(node).color === red)
            .map(node => node.textContent.trim());
        }"""
    )


def unnamed_buttons(page: Any) -> list[str]:
    """Our buttons (and menu items) without an accessible name: text, aria-label or title."""
    return page.evaluate(
        """(selectors) => {
          const unnamed = [];
          for (const root of document.querySelectorAll(selectors.join(','))) {
            for (const b of root.querySelectorAll('button, [role=menuitem], summary')) {
              const name = (b.getAttribute('aria-label') || b.textContent || b.title || '').trim();
              if (!name) unnamed.push(b.outerHTML.slice(0, 120));
            }
          }
          return unnamed;
        }""",
        OURS,
    )


def test_unavailable_actions_complete_the_enabled_ones(
    repo: ModelRepository, iris, iris_model
) -> None:
    """Every action is either offered or listed with a reason (Register and Re-register are
    one choice), in every state a version can be in."""
    from jupyter_sparkserve.lifecycle import (
        DEPLOYMENT_ACTIONS,
        DEPLOYMENT_ONLY,
        VersionState,
        enabled_actions,
    )

    for registered in (False, True):
        for deployed in (False, True):
            for serving in (False, True) if deployed else (False,):
                state = VersionState(registered, deployed, serving)
                offered = set(enabled_actions(state))
                greyed = dict(unavailable_actions(state))
                assert not offered & set(greyed)
                pair = {Action.REGISTER, Action.REREGISTER}
                versions = set(Action) - set(DEPLOYMENT_ONLY)  # Dismiss: a deployment's
                assert offered | set(greyed) | pair == versions, state
                assert all(reason.endswith(".") for reason in greyed.values())
    repo.save(iris_model, "iris", input_example=iris[0].head(3), **FAST_SAVE)
    [state] = version_states(repo, [("iris", 1)])
    assert dict(unavailable_actions(state))[Action.DEPLOY].startswith("Register it first")
    # A deployment's too.
    for status in ("starting", "running", "stopped", "failed"):
        offered = set(deployment_actions(status))
        greyed = dict(deployment_unavailable(status))
        assert not offered & set(greyed) and offered | set(greyed) == set(DEPLOYMENT_ACTIONS)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_sidebar_menu_and_dialog_pass_axe_in_both_themes(
    browser, tmp_path: Path, home: Path, iris, iris_model, slow_model, theme: str
) -> None:
    features, _target = iris
    repository = ModelRepository(Settings.from_env())
    repository.save(
        iris_model,
        "iris",
        description="Iris species from sepal and petal sizes",
        tags={"team": "botany"},
        metrics={"accuracy": 0.97},
        input_example=features.head(3),
        **FAST_SAVE,
    )
    MlflowRegistry(repository).register("iris:1")
    repository.save(iris_model, "plain", input_example=features.head(3), **FAST_SAVE)
    features.to_csv(tmp_path / "iris.csv", index=False)
    if theme == "dark":
        use_dark_theme(tmp_path)

    # A running deployment and finished jobs: the Deployments and Jobs sections show their
    # status colours too.
    deployments = Deployments(repository)
    deployments.deploy("iris:1")
    # and one recorded as starting, never launched: its Snippets is greyed with why
    repository.save(iris_model, "third", input_example=features.head(3), **FAST_SAVE)
    MlflowRegistry(repository).register("third:1")
    starting = deployments.begin("third:1")
    # and one whose endpoint died: its error in red, the end of its log behind a disclosure
    repository.save(iris_model, "fourth", input_example=features.head(3), **FAST_SAVE)
    MlflowRegistry(repository).register("fourth:1")
    dead = deployments.deploy("fourth:1")
    os.killpg(dead.details["pid"], signal.SIGKILL)
    lab = start_lab(tmp_path, home)
    try:
        # and a failed one, whose error line is red text in the jobs view
        for source, ending in (("iris.csv", "succeeded"), ("gone.csv", "failed")):
            spec = {"model": "iris:1", "input": source, "output": f"scored-{ending}.csv"}
            job = lab.api("POST", "sparkserve/api/v1/jobs", {"spec": spec})
            deadline = time.monotonic() + 180
            while job["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
                job = lab.api("GET", f"sparkserve/api/v1/jobs/{job['id']}")
            assert job["status"] == ending, job
        # and one the user cancelled: not a failure, so not in error red
        pd.DataFrame({"x1": [1.0] * 4, "x2": [2.0] * 4}).to_csv(tmp_path / "xs.csv", index=False)
        spec = {"model": slow_model(60.0), "input": "xs.csv", "output": "slow.csv"}
        job = lab.api("POST", "sparkserve/api/v1/jobs", {"spec": spec})
        deadline = time.monotonic() + 180
        while not (tmp_path / "predicting").exists():
            assert time.monotonic() < deadline, "the slow job never started predicting"
            time.sleep(0.3)
        job = lab.api("POST", f"sparkserve/api/v1/jobs/{job['id']}/cancel")
        assert job["status"] == "cancelled" and job["error"], job  # an error line to colour
        page, errors = open_lab(browser, lab)
        light = "false" if theme == "dark" else "true"
        page.wait_for_selector(
            f"body[data-jp-theme-light='{light}']", state="attached", timeout=60_000
        )
        page.locator(SIDEBAR_TAB).click()
        row = page.locator(f'{SIDEBAR} [data-testid="sparkserve-model"][data-model="iris"]')
        row.wait_for(timeout=60_000)
        row.locator('[data-testid="sparkserve-model-toggle"]').click()
        version = page.locator(f'{SIDEBAR} [data-testid="sparkserve-version"][data-ref="iris:1"]')
        version.wait_for()

        # A version's dates, description, tags and metrics, at the default sidebar width.
        assert "Iris species" in (version.get_attribute("title") or "")
        version.locator('[data-testid="sparkserve-version-details"] summary').click()
        facts = version.locator(".jp-SparkserveVersion-facts")
        facts.wait_for()
        assert "Iris species from sepal and petal sizes" in facts.inner_text()
        assert "botany" in facts.inner_text() and "0.97" in facts.inner_text()
        box = facts.bounding_box()
        sidebar = page.locator(SIDEBAR).bounding_box()
        assert box is not None and sidebar is not None
        assert box["x"] + box["width"] <= sidebar["x"] + sidebar["width"] + 1  # no overflow
        failed = page.locator(
            f'{SIDEBAR} [data-testid="sparkserve-deployment"][data-deployment-id="{dead.id}"]'
            '[data-status="failed"]'
        )
        failed.locator('[data-testid="sparkserve-deployment-log"] summary').click()
        failed.locator(".jp-SparkserveDeployment-logText").wait_for()
        assert_no_serious_violation(page)
        assert unnamed_buttons(page) == []
        assert cancel_colours(page) == []
        snippets = page.locator(
            f'{SIDEBAR} [data-testid="sparkserve-deployment"][data-deployment-id="{starting.id}"]'
            ' [data-testid="sparkserve-deployment-snippets"]'
        )
        assert snippets.is_disabled()
        assert snippets.get_attribute("title") == "Its endpoint does not answer yet."
        # The check can fail: the old error line (status red on the second layout colour,
        # 4.3:1 in the light theme and 2.7:1 in the dark one) is caught.
        page.evaluate(PROBE)
        assert any(v.startswith("color-contrast") for v in axe_violations(page))
        page.evaluate("() => document.getElementById('jp-sparkserve-probe').remove()")

        # The Actions menu, opened from the keyboard: greyed items say why; a separator
        # before Delete; Escape gives the focus back to the button.
        actions = page.locator(
            f'{SIDEBAR} [data-testid="sparkserve-version"][data-ref="plain:1"] '
            '[data-testid="sparkserve-actions"]'
        )
        page.locator(
            f'{SIDEBAR} [data-testid="sparkserve-model"][data-model="plain"] '
            '[data-testid="sparkserve-model-toggle"]'
        ).click()
        actions.wait_for()
        actions.focus()
        page.keyboard.press("Enter")
        menu = page.locator(MENU)
        menu.wait_for()
        deploy = menu.locator('li[data-command="sparkserve:deploy"]')
        assert "lm-mod-disabled" in (deploy.get_attribute("class") or "")
        assert (deploy.get_attribute("title") or "").startswith("Register it first")
        # Without a mouse: the arrow keys stop at the greyed Deploy too (Lumino's own skip
        # it), which is announced disabled with the core's reason as its description, and
        # shows the reason under its label; Enter on it does nothing.
        [plain] = version_states(repository, [("plain", 1)])
        why = dict(unavailable_actions(plain))[Action.DEPLOY]
        reason = deploy.locator(".jp-SparkserveActionsMenu-reason")
        assert reason.is_hidden()
        focused = "node => document.activeElement === node"
        for _ in range(menu.locator("li.lm-Menu-item").count()):
            page.keyboard.press("ArrowDown")
            if deploy.evaluate(focused):
                break
        assert deploy.evaluate(focused), "the arrow keys never reach the greyed Deploy"
        expect(deploy).to_have_attribute("aria-disabled", "true")
        expect(deploy).to_have_accessible_name("Deploy…")
        expect(deploy).to_have_accessible_description(why)
        assert reason.is_visible() and reason.inner_text() == why
        page.keyboard.press("Enter")
        assert menu.is_visible() and page.locator(".jp-Dialog").count() == 0
        assert deploy.evaluate(focused)
        items = menu.locator("li.lm-Menu-item").all()
        kinds = [item.get_attribute("data-type") for item in items]
        last = items[-1]
        assert last.get_attribute("data-command") == "sparkserve:delete"
        assert kinds[-2] == "separator"
        screenshot(page, f"a11y-actions-menu-{theme}.png")
        assert_no_serious_violation(page)
        assert unnamed_buttons(page) == []
        page.keyboard.press("Escape")
        menu.wait_for(state="detached")
        page.wait_for_function(
            "button => document.activeElement === button", arg=actions.element_handle()
        )

        # The Score dialog, holding a refusal next to its field.
        version.locator('[data-testid="sparkserve-actions"]').click()
        menu.wait_for()
        menu.locator('li[data-command="sparkserve:score"]').click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator('[data-testid="sparkserve-score-input"]').fill("iris.csv")
        dialog.locator('[data-testid="sparkserve-score-output"]').fill("out.xlsx")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        dialog.locator('[data-testid="sparkserve-field-error"]').wait_for()
        dialog.locator('[data-testid="sparkserve-browse-input"]').click()
        dialog.locator('[data-testid="sparkserve-browse-item"][data-path="iris.csv"]').wait_for()
        screenshot(page, f"a11y-score-dialog-{theme}.png")
        assert_no_serious_violation(page)
        assert unnamed_buttons(page) == []
        page.keyboard.press("Escape")
        dialog.wait_for(state="detached")

        assert our_errors(errors) == []
        page.close()
    finally:
        for deployment in deployments.list(active_only=True):
            deployments.undeploy(deployment.id)
        stop_lab(lab)
    assert our_tracebacks(lab) == []
