// The drill report's timeline charts. uPlot (vendored, inlined beside this
// script) draws the axes and the series; this script only adds what uPlot
// has no notion of: the fault windows, the controllers' numbered events and
// the failover and failback milestones of each fault. What to draw comes
// from the JSON that chaos/src/report/charts.rs writes into the page.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  var TITLE_FONT = '600 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  var TAG_ROW = 18;
  var MAX_TAG_ROWS = 4;
  var charts = [];

  // 0-100%, with 90-100% given three quarters of the height, so that a dip
  // to 98% is as visible as one to 50% (the same scale as before uPlot).
  function knee(v) { return v >= 0.9 ? 0.25 + (v - 0.9) / 0.1 * 0.75 : v / 0.9 * 0.25; }
  function unknee(f) { return f >= 0.25 ? 0.9 + (f - 0.25) / 0.75 * 0.1 : f / 0.25 * 0.9; }

  // Ticks every 1, 2, 5, 10, 15, 30... seconds: 6 to 15 over any span.
  function secondTicks() {
    var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800], step = 1800;
    for (var i = 0; i < steps.length; i++) { if (data.span_s / steps[i] <= 15) { step = steps[i]; break; } }
    var ticks = [];
    for (var t = 0; t <= data.span_s + 1e-9; t += step) ticks.push(t);
    return ticks;
  }

  // 0.1, 0.2, 0.5, 1, 2, 5 ... ms: the steps of the latency axis.
  var ONE_TWO_FIVE = [];
  for (var e = -1; e < 7; e++) [1, 2, 5].forEach(function (m) { ONE_TWO_FIVE.push(m * Math.pow(10, e)); });

  // The 1-2-5 steps between the scale's ends.
  function latencyTicks(u, axisIdx, min, max) {
    var ticks = ONE_TWO_FIVE.filter(function (v) { return v >= min * 0.999 && v <= max * 1.001; });
    // Beyond three decades, powers of ten only, so labels never crowd.
    if (max / min > 1000) ticks = ticks.filter(function (v) { return Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9; });
    return ticks;
  }
  function msLabel(v) { return v >= 1000 ? v / 1000 + " s" : v + " ms"; }

  // The moments to tag above the plot: the milestones, then the events
  // (grouped when their badges would touch, as "3–11").
  function tags(u, withEvents) {
    var list = data.milestones.map(function (m) {
      return { x: u.valToPos(m.at_s, "x"), text: m.label, colour: m.colour, solid: m.direction === "failback", milestone: true };
    });
    if (!withEvents) return list;
    var group = null;
    data.events.forEach(function (e) {
      var x = u.valToPos(e.at_s, "x");
      if (group && x - group.x0 < 12) { group.last = e.number; group.x1 = x; return; }
      group = { x0: x, x1: x, first: e.number, last: e.number };
      list.push(group);
    });
    list.forEach(function (t) {
      if (t.milestone) return;
      t.text = t.first === t.last ? String(t.first) : t.first + "–" + t.last;
      t.x = (t.x0 + t.x1) / 2;
      t.colour = "#334155";
    });
    return list;
  }

  // Greedy rows, left to right, so that no two tags in a row overlap.
  function placeTags(ctx, list, maxRows) {
    ctx.font = FONT;
    var ends = [];
    list.slice().sort(function (a, b) { return a.x - b.x; }).forEach(function (t) {
      t.width = ctx.measureText(t.text).width + 10;
      var start = t.x - t.width / 2, row = 0;
      while (row < ends.length && ends[row] + 3 > start) row++;
      row = Math.min(row, maxRows - 1);
      if (row === ends.length) ends.push(-Infinity);
      ends[row] = Math.max(ends[row], t.x + t.width / 2);
      t.row = row;
    });
    return ends.length;
  }

  // Fault windows shaded under the data.
  function shadeFaults(u) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    ctx.fillStyle = "rgba(254, 202, 202, 0.55)";
    data.faults.forEach(function (f) {
      var x1 = u.valToPos(f.start_s, "x", true), x2 = u.valToPos(f.end_s, "x", true);
      ctx.fillRect(x1, top, Math.max(x2 - x1, 1), height);
    });
    ctx.restore();
  }

  // Lines through the plot and tags above it; a red strip over the plot
  // for bar charts, whose bars hide the shading.
  function drawMarks(u, opts) {
    var ctx = u.ctx, dpr = devicePixelRatio, top = u.bbox.top, bottom = top + u.bbox.height;
    ctx.save();
    if (opts.strip) {
      ctx.fillStyle = "#f87171";
      data.faults.forEach(function (f) {
        var x1 = u.valToPos(f.start_s, "x", true), x2 = u.valToPos(f.end_s, "x", true);
        ctx.fillRect(x1, top - 7 * dpr, Math.max(x2 - x1, dpr), 5 * dpr);
      });
    }
    data.events.forEach(function (e) {
      line(ctx, u.valToPos(e.at_s, "x", true), top, bottom, "rgba(51, 65, 85, 0.75)", [4 * dpr, 3 * dpr], dpr);
    });
    data.milestones.forEach(function (m) {
      var dash = m.direction === "failback" ? [] : [2 * dpr, 2 * dpr];
      line(ctx, u.valToPos(m.at_s, "x", true), top, bottom, m.colour, dash, 1.5 * dpr);
    });
    if (opts.tags) {
      var list = tags(u, opts.events);
      placeTags(ctx, list, opts.rows);
      ctx.font = "700 " + 11 * dpr + "px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      list.forEach(function (t) {
        var x = (u.bbox.left / dpr + t.x) * dpr, cy = top - (10 + t.row * TAG_ROW) * dpr;
        line(ctx, x, cy + 8 * dpr, top, t.colour, [], 1.2 * dpr);
        ctx.fillStyle = t.colour;
        roundRect(ctx, x - t.width / 2 * dpr, cy - 8 * dpr, t.width * dpr, 16 * dpr, 8 * dpr);
        ctx.fillStyle = "#fff";
        ctx.fillText(t.text, x, cy + 0.5 * dpr);
      });
      // What was drawn, for a reader of the DOM (the browser test): a
      // canvas keeps no trace of its text.
      u.root.parentNode.setAttribute("data-tags", list.map(function (t) { return t.text; }).join("|"));
    }
    if (opts.dips) drawDips(u);
    ctx.restore();
  }

  function line(ctx, x, y1, y2, colour, dash, width) {
    ctx.beginPath();
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.moveTo(x, y1);
    ctx.lineTo(x, y2);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  function roundRect(ctx, x, y, w, h, r) {
    ctx.beginPath();
    ctx.moveTo(x + r, y);
    ctx.arcTo(x + w, y, x + w, y + h, r);
    ctx.arcTo(x + w, y + h, x, y + h, r);
    ctx.arcTo(x, y + h, x, y, r);
    ctx.arcTo(x, y, x + w, y, r);
    ctx.fill();
  }

  // A dot on every second that lost requests, and "min 64.0%" under each
  // client region's worst one, so one bad second cannot hide in a line.
  function drawDips(u) {
    var ctx = u.ctx, dpr = devicePixelRatio;
    data.clients.forEach(function (c) {
      var worst = -1;
      c.success.forEach(function (v, i) {
        if (v === null || v >= 1) return;
        if (worst < 0 || v < c.success[worst]) worst = i;
        ctx.beginPath();
        ctx.fillStyle = c.colour;
        ctx.arc(u.valToPos(data.x[i], "x", true), u.valToPos(v, "y", true), 3.5 * dpr, 0, 2 * Math.PI);
        ctx.fill();
      });
      if (worst < 0) return;
      var x = u.valToPos(data.x[worst], "x", true), y = u.valToPos(c.success[worst], "y", true);
      var below = y + 20 * dpr < u.bbox.top + u.bbox.height;
      ctx.font = "700 " + 12 * dpr + "px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.lineWidth = 3 * dpr;
      ctx.strokeStyle = "#fff";
      ctx.fillStyle = c.colour;
      var text = "min " + (c.success[worst] * 100).toFixed(1) + "%";
      ctx.strokeText(text, x, below ? y + 18 * dpr : y - 9 * dpr);
      ctx.fillText(text, x, below ? y + 18 * dpr : y - 9 * dpr);
    });
  }

  function axes(yLabel, yTicks, yValues, xLabel) {
    var common = { font: FONT, labelFont: TITLE_FONT, stroke: "#475569", grid: { stroke: "#e2e8f0", width: 1 }, ticks: { stroke: "#64748b", width: 1, size: 4 } };
    return [
      Object.assign({}, common, { splits: secondTicks, label: xLabel, size: 28, labelSize: xLabel ? 20 : 0, grid: { show: false } }),
      // filter: every split gets its label (uPlot's log axes would drop
      // the 2s and 5s, which the 1-2-5 splits already thin out).
      Object.assign({}, common, { splits: yTicks, filter: function (u, splits) { return splits; }, label: yLabel, size: 56, labelSize: 22 }, yValues ? { values: yValues } : {}),
    ];
  }

  // Creates one chart in `element`, with room above the plot for `rows` of
  // tags.
  function chart(element, title, series, columns, scaleY, axisList, marks) {
    var width = element.clientWidth || 1100;
    var rows = 0;
    if (marks.tags) {
      var estimate = { valToPos: function (v) { return v / data.span_s * (width - 80); } };
      var probe = document.createElement("canvas").getContext("2d");
      rows = placeTags(probe, tags(estimate, marks.events), MAX_TAG_ROWS);
    }
    marks.rows = Math.max(rows, 1);
    var u = new uPlot({
      title: undefined,
      width: width,
      height: marks.height + rows * TAG_ROW,
      padding: [10 + rows * TAG_ROW + (marks.strip ? 8 : 0), 18, 0, 0],
      // The live legend is the hover readout; the small panels go without.
      legend: { show: !marks.compact, live: true },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: false, range: [0, data.span_s] }, y: scaleY },
      axes: axisList,
      series: [{ label: "second", value: function (u, v) { return v == null ? "" : Math.floor(v); } }].concat(series),
      hooks: { drawAxes: [shadeFaults], draw: [function (u) { drawMarks(u, marks); }] },
    }, [data.x].concat(columns), element);
    u.root.setAttribute("aria-label", title);
    charts.push({ u: u, element: element });
  }

  function successChart(element) {
    var n = data.clients.length;
    chart(element, "success ratio per second and client region",
      data.clients.map(function (c, i) {
        // Every client sits at 100% most of the time: earlier series are
        // drawn wider so that each colour still shows where lines coincide.
        return { label: c.name + " clients", stroke: c.colour, width: 2 + 2.75 * (n - 1 - i), points: { show: false },
          value: function (u, v) { return v == null ? "–" : (v * 100).toFixed(2) + "%"; } };
      }),
      data.clients.map(function (c) { return c.success; }),
      { distr: 100, fwd: knee, bwd: unknee, range: [0, 1] },
      axes("success (%)", function () { return [0, 0.5, 0.9, 0.95, 0.99, 1]; },
        function (u, ticks) { return ticks.map(function (v) { return Math.round(v * 100) + "%"; }); },
        "seconds since the load started"),
      { height: 300, tags: true, events: true, dips: true });
  }

  function latencyChart(element) {
    var values = [];
    data.clients.forEach(function (c) { values = values.concat(c.p50_ms, c.p99_ms); });
    values = values.filter(function (v) { return v !== null; });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    // The 1-2-5 steps around the data, at least a decade.
    var min = ONE_TWO_FIVE.filter(function (s) { return s <= low; }).pop() || 0.1;
    var max = ONE_TWO_FIVE.filter(function (s) { return s >= high; })[0] || 5e6;
    max = Math.max(max, min * 10);
    var series = [], columns = [];
    data.clients.forEach(function (c) {
      var ms = function (u, v) { return v == null ? "–" : v.toFixed(1) + " ms"; };
      series.push({ label: c.name + " p50", stroke: c.colour, width: 2.2, points: { show: false }, value: ms });
      series.push({ label: c.name + " p99", stroke: c.colour, width: 1.6, dash: [6, 4], points: { show: false }, value: ms });
      columns.push(c.p50_ms, c.p99_ms);
    });
    chart(element, "p50 and p99 latency per second and client region", series, columns,
      { distr: 3, log: 10, range: [min, max] },
      axes("latency (ms, log scale)", latencyTicks, function (u, ticks) { return ticks.map(msLabel); },
        "seconds since the load started"),
      { height: 300, tags: true, events: true });
  }

  // Requests per second of one client region by serving region: each layer
  // drawn as a bar from zero to its running total, tallest first, so the
  // bars stack. The legend shows each layer's own count.
  function servedByChart(element, client, first, last) {
    var totals = null, columns = [], series = [];
    client.layers.forEach(function (layer) {
      totals = layer.counts.map(function (v, i) {
        return v === null ? null : (totals && totals[i] !== null ? totals[i] : 0) + v;
      });
      columns.push(totals);
      series.push({ label: layer.label, fill: layer.colour, stroke: layer.colour, width: 0, points: { show: false },
        paths: uPlot.paths.bars({ size: [0.9, Infinity], gap: 1 }),
        value: (function (counts) { return function (u, v, si, i) { return i == null || counts[i] == null ? "–" : counts[i]; }; })(layer.counts) });
    });
    var max = data.requests_axis_max;
    chart(element, "requests of " + client.name + " clients per second by serving region",
      series.reverse(), columns.reverse(), { range: [0, max] },
      axes("req/s", function () { return [0, max / 2, max]; }, null, last ? "seconds since the load started" : null),
      { height: last ? 150 : 126, tags: first, events: true, strip: true, compact: true });
  }

  var success = document.getElementById("chart-success");
  if (success) successChart(success);
  var latency = document.getElementById("chart-latency");
  if (latency) latencyChart(latency);
  data.clients.forEach(function (client, i) {
    var element = document.getElementById("chart-served-" + i);
    if (element) servedByChart(element, client, i === 0, i === data.clients.length - 1);
  });

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      charts.forEach(function (c) { c.u.setSize({ width: c.element.clientWidth, height: c.u.height }); });
    }, 100);
  });
})();
