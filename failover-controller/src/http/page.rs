//! The status page: regions, their state and votes, and recent decisions,
//! at a glance. Server-rendered HTML that refreshes itself every 2 s.

use crate::state::{Event, StatusSnapshot};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%H:%M:%S%.3f").to_string()
}

fn event_row(e: &Event) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td class=\"o-{}\">{}</td><td>{}</td><td>{}</td></tr>",
        time(&e.at),
        esc(e.region.as_deref().unwrap_or("*")),
        esc(&e.kind),
        esc(&e.name),
        esc(e.outcome.split_whitespace().next().unwrap_or("")),
        esc(&e.outcome),
        esc(&e.actor),
        esc(&e.detail),
    )
}

/// Renders the page.
pub fn render(status: &StatusSnapshot) -> String {
    let mut cards = String::new();
    for r in &status.regions {
        let mut votes = String::new();
        for (vantage, v) in &r.votes {
            votes.push_str(&format!(
                "<li class=\"v-{}{}\">{} says <b>{}</b>{}{}</li>",
                v.verdict.as_str(),
                if v.discarded { " discarded" } else { "" },
                esc(vantage),
                v.verdict.as_str(),
                v.rtt_ms
                    .map(|ms| format!(" &middot; {ms:.1} ms"))
                    .unwrap_or_default(),
                if v.discarded {
                    " (cut off, not counted)"
                } else {
                    ""
                },
            ));
        }
        if votes.is_empty() {
            votes.push_str("<li>no fresh votes</li>");
        }
        let recover = r
            .recover_at
            .map(|at| format!("<div>returns after {}</div>", time(&at)))
            .unwrap_or_default();
        cards.push_str(&format!(
            "<section class=\"card s-{state}\"><h2>{name}</h2><div class=\"state\">{state}</div>\
             <div>since {since} &middot; majority: {verdict:?} ({up} up / {down} down){dis}</div>\
             <div>drain flag: <b>{flag}</b> &middot; DNS: <b>{dns}</b> &middot; hold-down {hold:.1} s</div>{recover}\
             <ul>{votes}</ul></section>",
            name = esc(&r.region),
            state = r.state.as_str(),
            since = time(&r.since),
            verdict = r.verdict,
            up = r.votes_up,
            down = r.votes_down,
            dis = if r.disagreement { " &middot; <b>vantage points disagree</b>" } else { "" },
            flag = if r.drain_flag { "drained" } else { "clear" },
            dns = match (r.dns_serving, r.dns_left_early) {
                (true, _) => "serving",
                (false, true) => "left early by the votes",
                (false, false) => "not serving",
            },
            hold = r.hold_down_ms as f64 / 1000.0,
        ));
    }
    let events: String = status
        .recent_events
        .iter()
        .take(30)
        .map(event_row)
        .collect();
    let overrides: String = status
        .overrides
        .iter()
        .map(|o| {
            format!(
                "<li><b>{}</b> {} by {}: {} (until {})</li>",
                o.kind.as_str(),
                esc(o.region.as_deref().unwrap_or("")),
                esc(&o.actor),
                esc(&o.reason),
                o.expires_at.to_rfc3339()
            )
        })
        .collect();
    let banner = if status.frozen {
        format!(
            "<div class=\"banner frozen\">Automation frozen: {}</div>",
            esc(status.freeze_reason.as_deref().unwrap_or("manual freeze"))
        )
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Failover controller {region}</title><style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;background:#f6f7f9;color:#1b1f24}}
h1{{margin:0 0 .3rem;font-size:1.4rem}} .meta{{color:#555;margin-bottom:1rem}}
.grid{{display:flex;gap:1rem;flex-wrap:wrap}} .card{{background:#fff;border-radius:8px;padding:1rem;min-width:18rem;flex:1;border-top:6px solid #999;box-shadow:0 1px 3px #0002}}
.card h2{{margin:0;font-size:1.2rem}} .state{{font-size:1.6rem;font-weight:700;text-transform:uppercase;margin:.3rem 0}}
.s-healthy{{border-color:#1a7f37}} .s-healthy .state{{color:#1a7f37}} .s-draining{{border-color:#bf8700}} .s-draining .state{{color:#bf8700}}
.s-drained{{border-color:#cf222e}} .s-drained .state{{color:#cf222e}} .s-recovering{{border-color:#0969da}} .s-recovering .state{{color:#0969da}}
ul{{padding-left:1.1rem}} .v-up{{color:#1a7f37}} .v-down{{color:#cf222e}} .discarded{{text-decoration:line-through;color:#888}}
table{{border-collapse:collapse;width:100%;background:#fff;margin-top:1rem;font-size:.9rem}} td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}}
.banner{{padding:.6rem 1rem;border-radius:6px;margin-bottom:1rem;font-weight:600}} .frozen{{background:#ffebe9;color:#a40e26}}
.o-ok{{color:#1a7f37}} .o-error,.o-fenced{{color:#cf222e}}
</style></head><body>
<h1>Failover controller &middot; {region}</h1>
<div class="meta">{id} &middot; leader: <b>{leader}</b> (epoch {epoch}, holder {holder}){dry} &middot; probe every {interval} ms &middot; updated {updated}</div>
{banner}<div class="grid">{cards}</div>
<h3>Overrides</h3><ul>{overrides}</ul>
<h3>Recent decisions and actions</h3>
<table><tr><th>time (UTC)</th><th>region</th><th>kind</th><th>what</th><th>outcome</th><th>actor</th><th>detail</th></tr>{events}</table>
</body></html>"#,
        region = esc(&status.region),
        id = esc(&status.controller_id),
        leader = if status.lease.held {
            "this replica"
        } else {
            "another replica"
        },
        epoch = status.lease.epoch,
        holder = esc(&status.lease.holder),
        dry = if status.dry_run {
            " &middot; <b>DRY RUN</b>"
        } else {
            ""
        },
        interval = status.probe_interval_ms,
        updated = status.generated_at.as_ref().map(time).unwrap_or_default(),
        overrides = if overrides.is_empty() {
            "<li>none</li>".to_string()
        } else {
            overrides
        },
    )
}
