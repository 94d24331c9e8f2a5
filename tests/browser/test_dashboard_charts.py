"""The dashboard's charts in a real browser: uPlot draws one per figure, the runs' outcomes among them, and choosing
an agent fetches its figures from /api/metrics/ and redraws them (no failed request, no script error); a chart with
fewer than two days of figures says so instead of drawing a lone dot."""

import datetime as dt
from collections.abc import Callable

from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from agents.models import RunOutcome, RunStatus
from tests.browser.conftest import Console
from tests.console.conftest import Cast

CHARTS = [
    "Task completion rate (%)",
    "Finished runs by outcome",
    "Median time to resolution (minutes)",
    "User satisfaction (average rating, 1 to 5)",
    "Policy violations per 100 interactions",
    "Escalation rate (%)",
    "Cost",
]


def test_the_charts_show_the_runs_outcomes_and_follow_the_chosen_agent(
    console: Console, viewer: User, make_user: Callable[..., User]
) -> None:
    cast = Cast(make_user("cleo-client"))
    inventory, risk = cast.subject("agent", "inventory"), cast.subject("agent", "risk")
    now = timezone.now()  # runs on two days, whatever the time of day: a chart needs two points to draw a line
    cast.run(inventory, at=now - dt.timedelta(hours=1), took=5)
    cast.run(inventory, at=now - dt.timedelta(days=1, hours=2), took=5, outcome=RunOutcome.NOT_COMPLETED)
    cast.run(risk, at=now - dt.timedelta(hours=3), status=RunStatus.FAILED, took=5, outcome=RunOutcome.ESCALATED)

    page = console(viewer)
    charts = page.locator("#metrics-charts .console-chart")
    expect(charts).to_have_count(len(CHARTS))
    assert page.locator("#metrics-charts .console-chart h3").all_inner_texts() == CHARTS
    outcomes = charts.nth(1)
    expect(outcomes.locator("canvas")).to_have_count(1)
    legend = outcomes.locator(".u-legend .u-series .u-label").all_inner_texts()
    assert legend == ["day", "completed", "not completed", "escalated"]
    figures = page.locator("#metrics-completion")
    expect(figures.locator('[data-figure="task_completion_rate"]')).to_have_text("33.3 %")
    expect(figures.locator('[data-figure="runs_escalated"]')).to_have_text("1")

    page.select_option("#metrics-scope", "agent:inventory")
    expect(figures.locator('[data-figure="task_completion_rate"]')).to_have_text("50.0 %")
    expect(figures.locator('[data-figure="runs_not_completed"]')).to_have_text("1")
    expect(figures.locator('[data-figure="runs_escalated"]')).to_have_text("0")
    expect(charts).to_have_count(len(CHARTS))


def test_a_chart_with_less_than_two_days_of_figures_says_there_is_not_enough_data_yet(
    console: Console, viewer: User, make_user: Callable[..., User]
) -> None:
    cast = Cast(make_user("cleo-client"))
    inventory, risk = cast.subject("agent", "inventory"), cast.subject("agent", "risk")
    now = timezone.now()
    cast.run(inventory, at=now - dt.timedelta(minutes=5), took=5)  # one day of figures: one point, no line
    for days_ago in (3, 4):
        cast.run(risk, at=now - dt.timedelta(days=days_ago), took=5)

    page = console(viewer)
    charts = page.locator("#metrics-charts .console-chart")
    expect(charts).to_have_count(len(CHARTS))
    expect(charts.nth(1).locator("canvas")).to_have_count(1)  # two days of finished runs: a line
    satisfaction = charts.nth(CHARTS.index("User satisfaction (average rating, 1 to 5)"))
    expect(satisfaction.locator(".console-chart-empty")).to_have_text("Not enough data yet")  # no rating at all
    expect(satisfaction.locator("canvas")).to_have_count(0)

    page.select_option("#metrics-scope", "agent:inventory")  # its one day of runs
    outcomes = page.locator("#metrics-charts .console-chart").nth(1)
    expect(outcomes.locator(".console-chart-empty")).to_have_text("Not enough data yet")
    expect(outcomes.locator("canvas")).to_have_count(0)
    expect(page.locator("#metrics-charts .console-chart-empty")).to_have_count(len(CHARTS))
