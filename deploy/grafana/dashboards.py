"""The Grafana dashboards of caesar-rest, as code (Grafana Foundation SDK).

    python deploy/grafana/dashboards.py          # (re)write deploy/grafana/dashboards/*.json
    python deploy/grafana/dashboards.py --check  # exit 1 if a committed file is stale

Why code, not JSON saved from the UI: every query is reviewed next to the metric it reads
(the services' ``metrics.py``), the four dashboards share one style, and
``tests/unit/test_dashboards.py`` fails when the committed JSON and this file disagree,
while ``tests/e2e/test_dashboards.py`` runs every panel's query against a live stack.

The JSON goes to ``deploy/grafana/dashboards/``, which Grafana's file provider loads
(``deploy/grafana/provisioning/``); every panel reads the Prometheus data source with the
fixed uid :data:`DATASOURCE_UID` that the provisioning creates, so no import step picks a
data source. Queries aggregate over replicas the way each metric needs: gauges recounted
from the database by every replica (jobs by state, slots, heartbeat ages) with ``max`` /
``min``, per-process counters with ``sum`` of their rates, and the scheduler's per-pool
gauges from the replica that holds the dispatcher lease only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from grafana_foundation_sdk.builders import bargauge, common, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models

OUT_DIR: Final = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID: Final = "caesar-prometheus"
DATASOURCE: Final = models.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS: Final = ["caesar-rest"]

# The scheduler's per-pool gauges are set by the replica holding the dispatcher lease; a
# replica that lost it keeps its last values, so only the leader's count.
LEADER_ONLY: Final = "and on (instance) (caesar_scheduler_leader == 1)"
ACTIVE_STATES: Final = "PENDING|HELD|QUEUED|STARTED|RUNNING"

Panel = dash.Panel | timeseries.Panel | stat.Panel | bargauge.Panel


# --------------------------------------------------------------------------- helpers


def query(expr: str, legend: str, ref: str) -> prom.Dataquery:
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def with_queries(panel: Panel, queries: Sequence[tuple[str, str]]) -> None:
    for index, (expr, legend) in enumerate(queries):
        panel.with_target(query(expr, legend, chr(ord("A") + index)))


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 12,
    stacked: bool = False,
    threshold: float | None = None,
) -> timeseries.Panel:
    """A time series panel; ``threshold`` draws a dashed red line at that value."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(25 if stacked else 10)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.TABLE)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if threshold is not None:
        panel.thresholds(thresholds((None, "green"), (threshold, "red"))).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    with_queries(panel, queries)
    return panel


def single_stat(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    width: int,
    red_from: float | None = None,
) -> stat.Panel:
    """The latest value of each series; red from ``red_from`` on, if given."""
    steps: list[tuple[float | None, str]] = [(None, "green")]
    if red_from is not None:
        steps.append((red_from, "red"))
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(4)
        .color_mode(
            common_models.BigValueColorMode.BACKGROUND
            if red_from is not None
            else common_models.BigValueColorMode.NONE
        )
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
    )
    with_queries(panel, queries)
    return panel


def bars(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str,
    width: int = 12,
    maximum: float | None = None,
    warn_from: float | None = None,
    red_from: float | None = None,
) -> bargauge.Panel:
    """Horizontal bars, one per series (latest value)."""
    steps: list[tuple[float | None, str]] = [(None, "green")]
    if warn_from is not None:
        steps.append((warn_from, "orange"))
    if red_from is not None:
        steps.append((red_from, "red"))
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds(*steps))
    )
    if maximum is not None:
        panel.max(maximum)
    with_queries(panel, queries)
    return panel


def per_minute(counter: str, by: str, selector: str = "") -> str:
    """A counter's rate per minute, summed over the processes that count it."""
    series = f"{counter}{{{selector}}}" if selector else counter
    return f"sum by ({by}) (rate({series}[$__rate_interval])) * 60"


def in_range(counter: str, by: str, selector: str) -> str:
    """A counter's increase over the dashboard's time range."""
    return f"sum by ({by}) (increase({counter}{{{selector}}}[$__range]))"


def quantiles(histogram: str, selector: str) -> list[tuple[str, str]]:
    """p50 and p95 per app of a histogram, over the rate interval."""
    rate = f"rate({histogram}_bucket{{{selector}}}[$__rate_interval])"
    return [
        (f"histogram_quantile({q}, sum by (app, le) ({rate}))", f"p{round(q * 100)} {{{{app}}}}")
        for q in (0.5, 0.95)
    ]


def label_variable(name: str, label: str, metric: str) -> dash.QueryVariable:
    """A multi-value variable of a label's values; "All" matches every value (``.*``)."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )


def new_dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
    )


def add_panels(board: dash.Dashboard, panels: Sequence[Panel]) -> dash.Dashboard:
    """Add the panels left to right, top to bottom, with ids in that order."""
    for number, panel in enumerate(panels, start=1):
        board.with_panel(panel.id(number))
    return board


# --------------------------------------------------------------------------- dashboards


def jobs() -> dash.Dashboard:
    app = 'app=~"$app"'
    board = new_dashboard(
        "caesar-jobs",
        "caesar-rest / Jobs",
        "Jobs by state, throughput, queue wait and run time per app, failures, retries, dead letters.",
    ).with_variable(label_variable("app", "App", "caesar_api_jobs_submitted_total"))
    return add_panels(
        board,
        [
            single_stat(
                "Jobs by state",
                "Jobs in each state now, as the monitor recounts them (terminal states: every job ended so).",
                [("max by (state) (caesar_jobs)", "{{state}}")],
                width=24,
            ),
            graph(
                "Active jobs by state",
                "Jobs not yet ended, by state (caesar_jobs, recounted by the monitor).",
                [(f'max by (state) (caesar_jobs{{state=~"{ACTIVE_STATES}"}})', "{{state}}")],
                stacked=True,
            ),
            graph(
                "Submitted and finished per minute",
                "Jobs the api accepted, and jobs accounting recorded a final outcome for, per minute.",
                [
                    (
                        per_minute("caesar_api_jobs_submitted_total", "app", app),
                        "submitted {{app}}",
                    ),
                    (
                        per_minute("caesar_accounting_jobs_total", "outcome", app),
                        "finished {{outcome}}",
                    ),
                ],
                unit="short",
            ),
            graph(
                "Queue wait p50 / p95 per app",
                "Time from QUEUED to STARTED, once per attempt (caesar_job_queue_wait_seconds).",
                quantiles("caesar_job_queue_wait_seconds", app),
                unit="s",
            ),
            graph(
                "Run time p50 / p95 per app",
                "Time from STARTED to the attempt's end, once per attempt (caesar_job_run_seconds).",
                quantiles("caesar_job_run_seconds", app),
                unit="s",
            ),
            graph(
                "Failures per minute by reason",
                "Failed attempts (a lost runner's too: those are retried) and aborted jobs, by reason: "
                "app_error (the app exited non-zero), timeout, runner_lost, never_started, "
                "infrastructure, gave_up, no_runner, no_pool, other.",
                [
                    (
                        per_minute("caesar_job_failures_total", "reason", app),
                        "{{reason}}",
                    )
                ],
                stacked=True,
            ),
            graph(
                "Retries and re-sends per minute",
                "New attempts after an infrastructure failure, and RunJob commands sent again "
                "because no runner started them in time, per pool.",
                [
                    (
                        per_minute("caesar_scheduler_retries_total", "pool"),
                        "retries {{pool}}",
                    ),
                    (
                        per_minute("caesar_scheduler_start_resends_total", "pool"),
                        "re-sends {{pool}}",
                    ),
                ],
            ),
            single_stat(
                "Dead letters",
                "Messages in the dead-letter queues: each needs an operator (scripts: deadletters list).",
                [("sum(max by (queue) (caesar_dead_letter_messages))", "dead letters")],
                width=6,
                red_from=1,
            ),
            graph(
                "Dead letters by queue",
                "Messages waiting in each service queue's dead-letter queue.",
                [("max by (queue) (caesar_dead_letter_messages)", "{{queue}}")],
                width=18,
                threshold=1,
            ),
            graph(
                "Longest time in a state",
                "How long the job longest in each non-terminal state has been there. PENDING and "
                "STARTED normally last seconds (alert CaesarJobStuck); QUEUED waits for a slot.",
                [("max by (state) (caesar_job_oldest_in_state_seconds)", "{{state}}")],
                unit="s",
                width=24,
                threshold=600,
            ),
        ],
    )


def runners() -> dash.Dashboard:
    pool = 'pool=~"$pool"'
    slots = 'max by (pool) (caesar_runner_slots{{kind="{kind}", ' + pool + "}})"
    board = new_dashboard(
        "caesar-runners",
        "caesar-rest / Runners",
        "Runner slots used and free per pool, live runners, heartbeat ages, the pools' backlog.",
    ).with_variable(label_variable("pool", "Pool", "caesar_scheduler_live_runners"))
    return add_panels(
        board,
        [
            graph(
                "Slots used and free per pool",
                "Slots of the runners heard from within the heartbeat timeout (the monitor's recount).",
                [
                    (f"{slots.format(kind='total')} - {slots.format(kind='free')}", "{{pool}} used"),
                    (slots.format(kind="free"), "{{pool}} free"),
                ],
                stacked=True,
            ),
            graph(
                "Live runners per pool",
                "Runners heard from within the heartbeat expiry, as the scheduler's leader counts "
                "them. 0 for long: alert CaesarPoolWithoutRunners.",
                [(f"max by (pool) (caesar_scheduler_live_runners{{{pool}}} {LEADER_ONLY})", "{{pool}}")],
            ),
            graph(
                "Heartbeat age per runner",
                "Seconds since each runner's latest heartbeat reached the monitor; the dashed line is the "
                "default runner timeout (30 s): past it the monitor declares the runner's jobs lost.",
                [
                    (
                        f"min by (pool, runner) (caesar_runner_heartbeat_age_seconds{{{pool}}})",
                        "{{pool}} {{runner}}",
                    )
                ],
                unit="s",
                threshold=30,
            ),
            graph(
                "Jobs waiting for a slot",
                "Admitted jobs waiting for a runner slot, per pool (the scheduler's leader).",
                [(f"max by (pool) (caesar_scheduler_waiting_jobs{{{pool}}} {LEADER_ONLY})", "{{pool}}")],
            ),
            graph(
                "Dispatches per minute",
                "RunJob commands the scheduler sent, per pool.",
                [
                    (
                        per_minute("caesar_scheduler_dispatches_total", "pool", pool),
                        "{{pool}}",
                    )
                ],
                width=24,
            ),
        ],
    )


def users() -> dash.Dashboard:
    who = 'owner=~"$owner", app=~"$app"'
    board = (
        new_dashboard(
            "caesar-users",
            "caesar-rest / Users",
            "Usage by user and app over the time range, and quota use (where a quota policy is set).",
        )
        .with_variable(label_variable("owner", "User", "caesar_accounting_user_jobs_total"))
        .with_variable(label_variable("app", "App", "caesar_accounting_user_jobs_total"))
    )
    return add_panels(
        board,
        [
            bars(
                "Jobs finished per user and app",
                "Jobs accounting recorded a final outcome for, in the time range.",
                [
                    (
                        in_range("caesar_accounting_user_jobs_total", "owner, app", who),
                        "{{owner}} {{app}}",
                    )
                ],
                unit="short",
            ),
            bars(
                "CPU hours per user and app",
                "CPU time of the jobs accounted in the time range.",
                [
                    (
                        in_range("caesar_accounting_user_cpu_seconds_total", "owner, app", who) + " / 3600",
                        "{{owner}} {{app}}",
                    )
                ],
                unit="h",
            ),
            graph(
                "Jobs finished per minute by user",
                "Final outcomes recorded per minute, per user.",
                [
                    (
                        per_minute("caesar_accounting_user_jobs_total", "owner", who),
                        "{{owner}}",
                    )
                ],
                stacked=True,
            ),
            bars(
                "Quota use",
                "Each user's use of each limited quota resource (running_jobs, cpu_hours_month, "
                "stored_bytes) in percent of the limit. Empty without a quota policy; unlimited "
                "resources have no limit series and are not shown.",
                [
                    (
                        'max by (owner, resource) (caesar_quota_used{owner=~"$owner"}) * 100 '
                        '/ max by (owner, resource) (caesar_quota_limit{owner=~"$owner"} > 0)',
                        "{{owner}} {{resource}}",
                    )
                ],
                unit="percent",
                maximum=100,
                warn_from=80,
                red_from=100,
            ),
        ],
    )


def infrastructure() -> dash.Dashboard:
    queue = 'queue=~"$queue"'
    board = new_dashboard(
        "caesar-infrastructure",
        "caesar-rest / Infrastructure",
        "RabbitMQ queue depths (rabbitmq_prometheus plugin), outboxes, message handling, scrape targets.",
    ).with_variable(label_variable("queue", "Queue", "rabbitmq_detailed_queue_messages"))
    return add_panels(
        board,
        [
            graph(
                "RabbitMQ messages ready per queue",
                "Messages waiting for a consumer in each queue (rabbitmq_detailed_queue_messages_ready).",
                [
                    (
                        f"sum by (vhost, queue) (rabbitmq_detailed_queue_messages_ready{{{queue}}})",
                        "{{queue}} ({{vhost}})",
                    )
                ],
            ),
            graph(
                "RabbitMQ messages unacknowledged per queue",
                "Messages delivered to a consumer and not yet acknowledged.",
                [
                    (
                        f"sum by (vhost, queue) (rabbitmq_detailed_queue_messages_unacked{{{queue}}})",
                        "{{queue}} ({{vhost}})",
                    )
                ],
            ),
            graph(
                "RabbitMQ consumers per queue",
                "Consumers of each queue: 0 on a service queue means that service is not consuming.",
                [
                    (
                        f"sum by (vhost, queue) (rabbitmq_detailed_queue_consumers{{{queue}}})",
                        "{{queue}} ({{vhost}})",
                    )
                ],
            ),
            graph(
                "Outbox pending documents",
                "Documents whose outbox still holds unpublished events, per service and collection "
                "(normally 0: events wait there only while the broker is away).",
                [("max by (job, collection) (caesar_outbox_pending_documents)", "{{job}} {{collection}}")],
            ),
            graph(
                "Messages consumed per second",
                "Messages the services consumed, by queue and outcome.",
                [
                    (
                        "sum by (queue, outcome) (rate(caesar_messages_consumed_total[$__rate_interval]))",
                        "{{queue}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            single_stat(
                "Scrape targets up",
                "Targets Prometheus scraped successfully, per job (the runner job counts every replica).",
                [('sum by (job) (up{job=~"caesar-.*|rabbitmq"})', "{{job}}")],
                width=12,
            ),
        ],
    )


DASHBOARDS: Final[dict[str, Callable[[], dash.Dashboard]]] = {
    "jobs": jobs,
    "runners": runners,
    "users": users,
    "infrastructure": infrastructure,
}


def render(board: dash.Dashboard) -> str:
    return json.dumps(board.build(), cls=JSONEncoder, indent=2) + "\n"


def render_all() -> dict[str, str]:
    """``{file name: JSON text}`` of every dashboard."""
    return {f"{name}.json": render(build()) for name, build in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = OUT_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run: python deploy/grafana/dashboards.py", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
