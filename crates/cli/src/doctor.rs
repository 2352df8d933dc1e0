//! `ritma doctor`: checks a running stack and says what to do about what it
//! finds. NATS through its monitoring endpoint (reachable, version,
//! JetStream, the telemetry and dead-letter streams, the ingest consumer),
//! PostgreSQL (reachable, migrations, node credentials about to expire),
//! the controller's readiness, and clock skew between this machine, the
//! controller, NATS and PostgreSQL. Exits non-zero when a check fails.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use crate::stack_file::{DEFAULT_DATA_DIR, StackFile};

/// Below this the server line is out of support.
const SUPPORTED_NATS: (u32, u32) = (2, 11);
/// Skew beyond this is a warning; beyond `SKEW_FAIL`, a failure (JWT
/// validity and offline deadlines depend on clocks).
const SKEW_WARN: Duration = Duration::from_secs(2);
const SKEW_FAIL: Duration = Duration::from_secs(30);
/// Consumer backlog beyond this is worth a look.
const PENDING_WARN: u64 = 100_000;
/// Node credentials expiring within this while the node is up have not been
/// refreshed (nodes refresh at two thirds of the lifetime).
const CREDENTIAL_WARN: i64 = 300;

#[derive(Args)]
pub struct DoctorArgs {
    /// The `ritma up` folder whose stack.json names the services.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// NATS monitoring URL (instead of the stack file's), e.g. http://nats:8222.
    #[arg(long)]
    nats_monitor_url: Option<String>,
    /// PostgreSQL URL (instead of the stack file's).
    #[arg(long)]
    database_url: Option<String>,
    /// Controller URL (instead of the stack file's).
    #[arg(long)]
    api_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: String,
    pub detail: String,
    /// What to do (empty when all is well).
    pub todo: String,
}

#[derive(Default)]
struct Report(Vec<Finding>);

/// A live node whose credential is about to expire: org, node, status, expiry.
type ExpiringNode = (String, String, String, DateTime<Utc>);

impl Report {
    fn add(&mut self, level: Level, check: &str, detail: impl Into<String>, todo: &str) {
        self.0.push(Finding {
            level,
            check: check.into(),
            detail: detail.into(),
            todo: todo.into(),
        });
    }
    fn ok(&mut self, check: &str, detail: impl Into<String>) {
        self.add(Level::Ok, check, detail, "");
    }
}

struct Targets {
    monitor: Option<String>,
    database: Option<String>,
    api: Option<String>,
}

fn targets(args: &DoctorArgs) -> Targets {
    let stack = StackFile::load(&args.data_dir).ok();
    Targets {
        monitor: args
            .nats_monitor_url
            .clone()
            .or_else(|| stack.as_ref().map(|s| s.nats_monitor_url.clone())),
        database: args
            .database_url
            .clone()
            .or_else(|| stack.as_ref().map(|s| s.database_url.clone())),
        api: args
            .api_url
            .clone()
            .or_else(|| stack.as_ref().map(|s| s.api_url.clone())),
    }
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
) -> Result<(Value, Option<DateTime<Utc>>), String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    let date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() && body.get("status").is_none() && body.get("ready").is_none() {
        return Err(format!("HTTP {status}"));
    }
    Ok((body, date))
}

fn version_tuple(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn skew(
    report: &mut Report,
    what: &str,
    theirs: DateTime<Utc>,
    asked: DateTime<Utc>,
    took: Duration,
) {
    // Their clock was read somewhere inside the round trip: allow for it.
    let mid = asked + chrono::Duration::from_std(took / 2).unwrap_or_default();
    let off = (theirs - mid).num_milliseconds().unsigned_abs();
    let slack = took.as_millis() as u64 / 2 + 1000; // HTTP dates have 1 s resolution
    let off = Duration::from_millis(off.saturating_sub(slack.min(off)));
    let check = format!("clock skew: {what}");
    if off >= SKEW_FAIL {
        report.add(Level::Fail, &check, format!("{:.1} s off this machine", off.as_secs_f64()),
            "run NTP (chrony or systemd-timesyncd) on every host: credentials and offline deadlines depend on clocks");
    } else if off >= SKEW_WARN {
        report.add(
            Level::Warn,
            &check,
            format!("{:.1} s off this machine", off.as_secs_f64()),
            "check NTP on both hosts (`chronyc tracking` or `timedatectl`)",
        );
    } else {
        report.ok(&check, "within 2 s");
    }
}

async fn check_nats(report: &mut Report, http: &reqwest::Client, monitor: &str) {
    let asked = Utc::now();
    let started = std::time::Instant::now();
    let varz = match get_json(http, &format!("{monitor}/varz")).await {
        Ok((v, _)) => v,
        Err(e) => {
            report.add(Level::Fail, "NATS reachable", format!("{monitor}: {e}"),
                "start nats-server (`systemctl status nats-server`, or `ritma up`), and check the monitoring port (8222) is reachable from here");
            return;
        }
    };
    let took = started.elapsed();
    let version = varz["version"].as_str().unwrap_or("?").to_owned();
    report.ok(
        "NATS reachable",
        format!(
            "{monitor}, nats-server {version}, {} connections",
            varz["connections"]
        ),
    );
    match version_tuple(&version) {
        Some(v) if v >= SUPPORTED_NATS => report.ok("NATS version", format!("{version} (supported)")),
        _ => report.add(Level::Warn, "NATS version", format!("{version} is older than 2.11, out of support"),
            "run the pinned server: `ritma bus server` prints it; deploy/README.md says how to install it"),
    }
    if let Some(now) = varz["now"]
        .as_str()
        .and_then(|n| DateTime::parse_from_rfc3339(n).ok())
    {
        skew(report, "NATS", now.with_timezone(&Utc), asked, took);
    }
    match get_json(http, &format!("{monitor}/healthz?js-enabled-only=true")).await {
        Ok((h, _)) if h["status"] == "ok" => report.ok("JetStream", "enabled and healthy"),
        Ok((h, _)) => report.add(Level::Fail, "JetStream", format!("unhealthy: {h}"),
            "check the server log; JetStream needs its store_dir writable and, in a cluster, a meta leader (`/jsz`)"),
        Err(e) => report.add(Level::Fail, "JetStream", e,
            "enable JetStream in the server config (`jetstream { store_dir: ... }`)"),
    }
    let jsz = match get_json(
        http,
        &format!("{monitor}/jsz?accounts=true&streams=true&consumers=true&config=true"),
    )
    .await
    {
        Ok((j, _)) => j,
        Err(e) => {
            report.add(
                Level::Fail,
                "JetStream streams",
                e,
                "check the monitoring endpoint",
            );
            return;
        }
    };
    let (used, limit) = (
        jsz["storage"].as_u64().unwrap_or(0),
        jsz["config"]["max_storage"].as_u64().unwrap_or(0),
    );
    if limit > 0 && used * 10 > limit * 8 {
        report.add(
            Level::Warn,
            "JetStream storage",
            format!("{used} of {limit} bytes used"),
            "grow the store volume or lower RITMA_TELEMETRY_STREAM_MAX_BYTES",
        );
    } else {
        report.ok(
            "JetStream storage",
            format!(
                "{used} bytes used of {}",
                if limit > 0 {
                    limit.to_string()
                } else {
                    "unlimited".into()
                }
            ),
        );
    }
    streams(report, &jsz);
}

/// Every stream (with its consumers) the server reports, over all accounts.
fn all_streams(jsz: &Value) -> Vec<&Value> {
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .collect()
}

fn streams(report: &mut Report, jsz: &Value) {
    let streams = all_streams(jsz);
    let find = |name: &str| streams.iter().find(|s| s["name"] == name).copied();
    let Some(telemetry) = find(ritma_bus::streams::TELEMETRY_STREAM) else {
        report.add(
            Level::Fail,
            "telemetry stream",
            format!("{} not found", ritma_bus::streams::TELEMETRY_STREAM),
            "start the controller: it creates the streams and the ingest consumer at start",
        );
        return;
    };
    let state = &telemetry["state"];
    let (bytes, max_bytes) = (
        state["bytes"].as_u64().unwrap_or(0),
        telemetry["config"]["max_bytes"].as_i64().unwrap_or(-1),
    );
    report.ok(
        "telemetry stream",
        format!(
            "{} messages, {bytes} bytes (max {max_bytes})",
            state["messages"]
        ),
    );
    if max_bytes > 0 && bytes * 10 > (max_bytes as u64) * 9 {
        report.add(Level::Warn, "telemetry stream size", "over 90% of its byte limit: the oldest messages go first",
            "check the ingest keeps up (consumer below); raise RITMA_TELEMETRY_STREAM_MAX_BYTES if it does");
    }
    let consumer = telemetry["consumer_detail"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == ritma_bus::streams::INGEST_CONSUMER);
    match consumer {
        None => report.add(
            Level::Fail,
            "ingest consumer",
            format!("{} not found", ritma_bus::streams::INGEST_CONSUMER),
            "start the controller (it creates the consumer); nothing is ingested without it",
        ),
        Some(c) => {
            let pending = c["num_pending"].as_u64().unwrap_or(0);
            let ack_pending = c["num_ack_pending"].as_u64().unwrap_or(0);
            let redelivered = c["num_redelivered"].as_u64().unwrap_or(0);
            let detail =
                format!("{pending} pending, {ack_pending} awaiting ack, {redelivered} redelivered");
            if pending > PENDING_WARN {
                report.add(Level::Warn, "ingest consumer", detail,
                    "the ingest is behind: check the controller's log and PostgreSQL; add workers (RITMA_WORKERS) or controllers");
            } else {
                report.ok("ingest consumer", detail);
            }
        }
    }
    match find(ritma_bus::streams::DEAD_LETTER_STREAM) {
        Some(d) => {
            let n = d["state"]["messages"].as_u64().unwrap_or(0);
            if n > 0 {
                report.add(Level::Warn, "dead letters", format!("{n} refused messages kept"),
                    "see why: GET /api/orgs/{org}/ingest-stats, or the dead_letters table (reason, detail)");
            } else {
                report.ok("dead letters", "none");
            }
        }
        None => report.add(
            Level::Warn,
            "dead letters",
            "no dead-letter stream",
            "start the controller once: it creates it",
        ),
    }
}

async fn check_postgres(report: &mut Report, url: &str) {
    let pool = match tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(url)).await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            report.add(
                Level::Fail,
                "PostgreSQL reachable",
                e.to_string(),
                "start PostgreSQL (`systemctl status postgresql`) and check RITMA_DATABASE_URL",
            );
            return;
        }
        Err(_) => {
            report.add(
                Level::Fail,
                "PostgreSQL reachable",
                "no answer in 5 s",
                "check the host, port and firewall",
            );
            return;
        }
    };
    let asked = Utc::now();
    let started = std::time::Instant::now();
    let row: Result<(String, DateTime<Utc>), _> =
        sqlx::query_as("SELECT current_setting('server_version'), now()")
            .fetch_one(&pool)
            .await;
    let took = started.elapsed();
    match row {
        Ok((version, now)) => {
            report.ok("PostgreSQL reachable", format!("server {version}"));
            skew(report, "PostgreSQL", now, asked, took);
        }
        Err(e) => report.add(
            Level::Fail,
            "PostgreSQL reachable",
            e.to_string(),
            "check the database user's rights",
        ),
    }
    let migrations: Result<(i64, bool), _> =
        sqlx::query_as("SELECT count(*), coalesce(bool_and(success), true) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await;
    match migrations {
        Ok((n, true)) => report.ok("migrations", format!("{n} applied")),
        Ok((n, false)) => report.add(
            Level::Fail,
            "migrations",
            format!("{n} recorded, one failed"),
            "read the controller's log at start; fix and restart it (it migrates at start)",
        ),
        Err(_) => report.add(
            Level::Fail,
            "migrations",
            "none applied",
            "start the controller once: it migrates the database at start",
        ),
    }
    let expiring: Result<Vec<ExpiringNode>, _> = sqlx::query_as(
        "SELECT n.org_id, n.id, n.status, c.expires_at FROM nodes n
         JOIN credential_expiries c ON c.org_id = n.org_id AND c.public_key = n.public_key
         WHERE n.status IN ('online', 'degraded', 'stale') AND c.expires_at IS NOT NULL
           AND c.expires_at < now() + make_interval(secs => $1)
         ORDER BY c.expires_at LIMIT 20",
    )
    .bind(CREDENTIAL_WARN as f64)
    .fetch_all(&pool)
    .await;
    match expiring {
        Ok(rows) if rows.is_empty() => report.ok(
            "node credentials",
            "no live node's credential is about to expire",
        ),
        Ok(rows) => {
            let expired = rows.iter().filter(|r| r.3 <= Utc::now()).count();
            let names: Vec<String> = rows
                .iter()
                .take(5)
                .map(|r| {
                    format!(
                        "{}/{} ({}, until {})",
                        r.0,
                        r.1,
                        r.2,
                        r.3.format("%H:%M:%SZ")
                    )
                })
                .collect();
            let level = if expired > 0 {
                Level::Fail
            } else {
                Level::Warn
            };
            report.add(level, "node credentials", format!("{} live node(s) with a credential expiring within 5 min ({expired} expired): {}", rows.len(), names.join(", ")),
                "these nodes did not refresh: check their log (`journalctl -u ritma-node`), that they reach the controller, and `ritma-node diagnose`");
        }
        Err(e) => report.add(
            Level::Warn,
            "node credentials",
            e.to_string(),
            "check the database schema is current",
        ),
    }
    pool.close().await;
}

async fn check_controller(report: &mut Report, http: &reqwest::Client, api: &str) {
    let asked = Utc::now();
    let started = std::time::Instant::now();
    match get_json(http, &format!("{api}/readyz")).await {
        Ok((body, date)) => {
            if body["ready"] == true {
                report.ok("controller ready", format!("{api}: database and bus up"));
            } else {
                report.add(Level::Fail, "controller ready", format!("{api}: {body}"),
                    "the controller cannot reach PostgreSQL or NATS: see the checks above and its log");
            }
            if let Some(d) = date {
                skew(report, "controller", d, asked, started.elapsed());
            }
        }
        Err(e) => report.add(
            Level::Fail,
            "controller ready",
            format!("{api}: {e}"),
            "start the controller (`systemctl status ritma-controller`) and check RITMA_API_LISTEN",
        ),
    }
}

/// Run every check that has a target; the findings in order.
pub async fn examine(args: &DoctorArgs) -> Vec<Finding> {
    let t = targets(args);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut report = Report::default();
    match &t.monitor {
        Some(m) => check_nats(&mut report, &http, m.trim_end_matches('/')).await,
        None => report.add(
            Level::Warn,
            "NATS",
            "not checked",
            "pass --nats-monitor-url (or run from a `ritma up` folder)",
        ),
    }
    match &t.database {
        Some(d) => check_postgres(&mut report, d).await,
        None => report.add(
            Level::Warn,
            "PostgreSQL",
            "not checked",
            "pass --database-url",
        ),
    }
    match &t.api {
        Some(a) => check_controller(&mut report, &http, a.trim_end_matches('/')).await,
        None => report.add(Level::Warn, "controller", "not checked", "pass --api-url"),
    }
    report.0
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let findings = examine(&args).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let tag = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{tag}  {:<26} {}", f.check, f.detail);
            if !f.todo.is_empty() {
                println!("      -> {}", f.todo);
            }
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warned = findings.iter().filter(|f| f.level == Level::Warn).count();
    println!(
        "{} checks: {failed} failed, {warned} warnings",
        findings.len()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
