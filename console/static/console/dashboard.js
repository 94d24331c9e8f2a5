/*
 * The console dashboard's charts: the metrics of the last days, one point per day.
 *
 * Chart library: uPlot 1.6.32 (MIT licence, https://github.com/leeoniya/uPlot), shipped with the project in
 * ./vendor/ (uPlot.iife.min.js, uPlot.min.css, uPlot.LICENSE), taken unchanged from the npm package
 * uplot@1.6.32. Nothing is loaded from outside the server.
 *
 * The figures come from the page (the json_script "metrics-data", the same JSON as GET /api/metrics/);
 * choosing an agent or a persona fetches that one's figures from /api/metrics/ and redraws.
 */
(function () {
    "use strict";

    var CHARTS = [
        {title: "Task completion rate (%)", series: [{key: "task_completion_rate", label: "completed", scale: 100}]},
        {title: "Finished runs by outcome", basis: "runs_finished", series: [
            {key: "runs_completed", label: "completed"},
            {key: "runs_not_completed", label: "not completed"},
            {key: "runs_escalated", label: "escalated"}
        ]},
        {title: "Median time to resolution (minutes)", series: [
            {key: "median_run_resolution_seconds", label: "runs", scale: 1 / 60},
            {key: "median_conversation_resolution_seconds", label: "conversations", scale: 1 / 60}
        ]},
        {title: "User satisfaction (average rating, 1 to 5)", series: [{key: "user_satisfaction", label: "rating"}]},
        {title: "Policy violations per 100 interactions", series: [
            {key: "policy_violations_per_100_interactions", label: "per 100"}
        ]},
        {title: "Escalation rate (%)", series: [
            {key: "run_escalation_rate", label: "runs", scale: 100},
            {key: "escalation_rate", label: "conversations", scale: 100}
        ]},
        {title: "Cost", basis: "runs_started", series: [{key: "cost", label: "cost"}]}
    ];
    var NO_FIGURE = "\u2014";
    // A chart with fewer points than this says so instead of drawing a lone dot (or nothing).
    var MIN_POINTS = 2;
    var NOT_ENOUGH = "Not enough data yet";
    var FORMATS = {
        percent: function (value) { return (value * 100).toFixed(1) + " %"; },
        duration: function (seconds) {
            var units = [["d", 86400], ["h", 3600], ["min", 60]];
            for (var i = 0; i < units.length; i++) {
                if (seconds >= units[i][1]) { return (seconds / units[i][1]).toFixed(1) + " " + units[i][0]; }
            }
            return seconds.toFixed(0) + " s";
        },
        figure: function (value) { return Number(value).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}); }
    };

    function cssVar(name, fallback) {
        var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
        return value || fallback;
    }

    function dayStamp(isoDate) {
        var parts = isoDate.split("-").map(Number);
        return Date.UTC(parts[0], parts[1] - 1, parts[2]) / 1000;
    }

    function seriesValues(daily, spec) {
        return daily.map(function (day) {
            var value = day[spec.key];
            return value === null || value === undefined ? null : Number(value) * (spec.scale || 1);
        });
    }

    // The days a chart has a figure for: one of its series has a value there and, for a chart of counts, its basis
    // (the runs finished, the runs started) is not zero: a count of 0 on a day without runs is no data point.
    function pointCount(chart, daily) {
        return daily.filter(function (day) {
            if (chart.basis && !Number(day[chart.basis])) { return false; }
            return chart.series.some(function (spec) { return day[spec.key] !== null && day[spec.key] !== undefined; });
        }).length;
    }

    function Dashboard(root, data) {
        this.root = root;
        this.container = root.querySelector("#metrics-charts");
        this.status = root.querySelector("#metrics-status");
        this.plots = [];
        this.days = data.days;
        this.draw(data);
    }

    Dashboard.prototype.draw = function (data) {
        var self = this;
        var stamps = data.daily.map(function (day) { return dayStamp(day.date); });
        var colours = [cssVar("--secondary", "#417690"), cssVar("--primary", "#79aec8"), cssVar("--error-fg", "#ba2121")];
        var axis = {stroke: cssVar("--body-quiet-color", "#666"), grid: {stroke: cssVar("--hairline-color", "#e8e8e8")},
                    ticks: {stroke: cssVar("--hairline-color", "#e8e8e8")}};
        this.plots.forEach(function (plot) { if (plot) { plot.destroy(); } });
        this.container.textContent = "";
        this.plots = CHARTS.map(function (chart) {
            var cell = document.createElement("div");
            cell.className = "console-chart";
            var title = document.createElement("h3");
            title.textContent = chart.title;
            cell.appendChild(title);
            self.container.appendChild(cell);
            if (pointCount(chart, data.daily) < MIN_POINTS) {
                var empty = document.createElement("p");
                empty.className = "console-chart-empty";
                empty.textContent = NOT_ENOUGH;
                cell.appendChild(empty);
                return null;
            }
            var options = {
                width: Math.max(cell.clientWidth, 280),
                height: 170,
                tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
                scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, Math.max(max || 0, 1)]; }}},
                axes: [Object.assign({}, axis), Object.assign({size: 45}, axis)],
                series: [{label: "day", value: "{YYYY}-{MM}-{DD}"}].concat(chart.series.map(function (spec, index) {
                    return {label: spec.label, stroke: colours[index % colours.length], width: 2,
                            dash: [undefined, [6, 4], [2, 3]][index % 3], points: {show: true, size: 4},
                            value: function (u, value) { return value === null ? NO_FIGURE : value.toFixed(2); }};
                }))
            };
            var values = [stamps].concat(chart.series.map(function (spec) { return seriesValues(data.daily, spec); }));
            return new uPlot(options, values, cell);
        });
        this.root.querySelectorAll("[data-figure]").forEach(function (element) {
            var value = data.totals[element.dataset.figure];
            var format = FORMATS[element.dataset.format];
            element.textContent = value === null || value === undefined ? NO_FIGURE : format ? format(value) : value;
        });
    };

    Dashboard.prototype.load = function (scope) {
        var self = this;
        var params = new URLSearchParams({days: String(this.days)});
        if (scope) {
            var parts = scope.split(":");
            params.set(parts[0], parts[1]);
        }
        this.status.textContent = "Loading\u2026";
        fetch(this.root.dataset.metricsUrl + "?" + params.toString(), {
            credentials: "same-origin",
            headers: {Accept: "application/json"}
        }).then(function (response) {
            if (!response.ok) { throw new Error("HTTP " + response.status); }
            return response.json();
        }).then(function (data) {
            self.status.textContent = "";
            self.draw(data);
        }).catch(function (error) {
            self.status.textContent = "The figures could not be loaded (" + error.message + ").";
        });
    };

    function start() {
        var root = document.getElementById("metrics");
        var source = document.getElementById("metrics-data");
        if (!root || !source || typeof uPlot === "undefined") { return; }
        var dashboard = new Dashboard(root, JSON.parse(source.textContent));
        root.querySelector("#metrics-scope").addEventListener("change", function (event) {
            dashboard.load(event.target.value);
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
}());
