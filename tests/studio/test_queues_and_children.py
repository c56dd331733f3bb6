"""The queues page shows each queue's depth and caps and the schedules; a run's child runs
show as a tree linking to each child's own page."""

from __future__ import annotations

from playwright.sync_api import expect

from tidebase import RunContext, Tidebase

from .conftest import Studio


def test_queues_show_depth_caps_and_schedules(tide: Tidebase, studio: Studio) -> None:
    tide.queues.configure("emails", concurrency=2, rate_per_minute=30)
    for i in range(3):
        tide.enqueue("send-email", queue="emails", input={"to": i})
    tide.schedules.set("nightly", cron="0 3 * * *", workflow_name="report", queue="emails")

    page = studio.open("#/queues")
    emails = page.locator('#queues-table tr[data-queue="emails"]')
    expect(emails.locator(".depth")).to_have_text("3")
    expect(emails).to_contain_text("30 / min")
    expect(emails.locator("td").nth(3)).to_have_text("2")
    nightly = page.locator('#schedules-table tr[data-schedule="nightly"]')
    expect(nightly).to_contain_text("0 3 * * *")
    expect(nightly).to_contain_text("report")
    expect(page.locator('a[data-nav="queues"]')).to_have_class("active")

    tide.enqueue("send-email", queue="emails", input={"to": 3})
    expect(emails.locator(".depth")).to_have_text("4")  # live, no reload
    studio.shot("queues")


def test_child_runs_show_as_a_tree(tide: Tidebase, studio: Studio) -> None:
    def leaf(run: RunContext, _: None) -> int:
        return int(run.step("work", lambda: 1))

    def middle(run: RunContext, _: None) -> int:
        return int(run.child("leaf", leaf)) + 1

    def root(run: RunContext, _: None) -> int:
        return int(run.child("middle", middle)) + int(run.child("solo", leaf))

    assert tide.run("root", root, run_id="tree-1") == 3
    [mid, solo] = tide.runs.children("tree-1")
    [grandchild] = tide.runs.children(mid.run_id)

    page = studio.open("#/runs/tree-1")
    tree = page.locator("#children > ul.tree")
    expect(tree.locator(":scope > li")).to_have_count(2)
    middle_node = tree.locator(f':scope > li[data-run-id="{mid.run_id}"]')
    expect(middle_node.locator(f'ul.tree > li[data-run-id="{grandchild.run_id}"]')).to_be_visible()
    expect(tree.locator(f':scope > li[data-run-id="{solo.run_id}"]')).to_contain_text("completed")

    middle_node.get_by_role("link", name="middle").click()
    expect(page.locator("#run-id")).to_have_text(mid.run_id)
    expect(page.locator(f'#children li[data-run-id="{grandchild.run_id}"]')).to_be_visible()
