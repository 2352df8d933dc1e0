//! The Ritma controller: enrollment and credential minting, JetStream ingest
//! into Postgres, offline detection, state changes back onto the bus, and
//! the REST API.
//!
//! `Controller::build(config)` connects and prepares everything;
//! `Controller::run(listener, shutdown)` serves until `shutdown` fires, so
//! tests start it on port 0.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bulk;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod error;
pub mod fleet;
pub mod metrics;
pub mod state;
pub mod tasks;
pub mod template;
pub mod trust;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use ritma_bus::{BusKeys, connect, streams};
use ritma_db::ingest::OfflinePolicy;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::accounts::Accounts;
use crate::config::read_secret;
use crate::crypto::MasterKey;
use crate::state::AppState;
use crate::tasks::ingest::{IngestStats, IngestWorker};

pub struct Controller {
    config: Config,
    state: AppState,
    consumer: jetstream::consumer::PullConsumer,
    js: jetstream::Context,
    outbox_wake: Arc<Notify>,
}

/// Retry `f` until it succeeds or `deadline` passes (dependencies may still be starting).
async fn retry<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    deadline: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() < deadline => {
                tracing::warn!(error = %e, "{what} not ready yet; retrying");
                tokio::time::sleep(tasks::backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => anyhow::bail!("{what}: {e}"),
        }
    }
}

impl Controller {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let master = MasterKey::from_hex(&read_secret(
            config.master_key.as_deref(),
            config.master_key_file.as_ref(),
            "master key (RITMA_MASTER_KEY or RITMA_MASTER_KEY_FILE)",
        )?)?;
        let admin_token = read_secret(
            config.admin_token.as_deref(),
            config.admin_token_file.as_ref(),
            "admin token",
        )
        .ok();
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            anyhow::bail!("the admin token must be at least 16 characters");
        }
        let console_token = read_secret(
            config.console_service_token.as_deref(),
            config.console_service_token_file.as_ref(),
            "console service token",
        )
        .ok();
        if console_token.as_ref().is_some_and(|t| t.len() < 16) {
            anyhow::bail!("the console service token must be at least 16 characters");
        }
        if console_token.is_some() && console_token == admin_token {
            anyhow::bail!("the console service token must differ from the admin token");
        }
        let production = config.environment != "development";
        if production && config.dev_header_auth {
            anyhow::bail!(
                "RITMA_DEV_HEADER_AUTH trusts unauthenticated headers and is refused when RITMA_ENVIRONMENT is production"
            );
        }
        let oidc = match (&config.oidc_issuer, &config.oidc_audience) {
            (Some(issuer), Some(audience)) => Some(Arc::new(auth::oidc::OidcVerifier::new(
                auth::oidc::OidcSettings {
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    jwks_url: config.oidc_jwks_url.clone(),
                    roles_claim: config.oidc_roles_claim.clone(),
                },
            ))),
            (None, None) => None,
            _ => anyhow::bail!("set both RITMA_OIDC_ISSUER and RITMA_OIDC_AUDIENCE, or neither"),
        };
        if admin_token.is_none() && oidc.is_none() && !config.dev_header_auth {
            anyhow::bail!(
                "no way to sign in: set RITMA_ADMIN_TOKEN(_FILE) or RITMA_OIDC_ISSUER and RITMA_OIDC_AUDIENCE"
            );
        }
        let metrics_token = read_secret(
            config.metrics_token.as_deref(),
            config.metrics_token_file.as_ref(),
            "metrics token",
        )
        .ok();
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            anyhow::bail!("the metrics token must be at least 16 characters");
        }
        if metrics_token.is_some()
            && (metrics_token == admin_token || metrics_token == console_token)
        {
            anyhow::bail!("the metrics token must differ from the admin and console tokens");
        }
        if config.nats_urls.is_empty() {
            anyhow::bail!("RITMA_NATS_URL is not set");
        }
        let pool = ritma_db::pool_lazy(&config.database_url, 16)?;
        retry("database migration", Duration::from_secs(60), || {
            ritma_db::migrate(&pool)
        })
        .await?;

        let keys = BusKeys::load(&config.nats_keys_dir)?;
        let bus_tls = connect::BusTls {
            ca_file: config.nats_ca_file.clone(),
            required: false,
        };
        // Handed to nodes at enrollment: they pin it for the bus.
        let bus_ca_pem = match &config.nats_ca_file {
            Some(path) => Some(Arc::<str>::from(std::fs::read_to_string(path).map_err(
                |e| anyhow::anyhow!("RITMA_NATS_CA_FILE {}: {e}", path.display()),
            )?)),
            None => None,
        };
        let system = retry("NATS (system account)", Duration::from_secs(60), || {
            connect::connect_as_tls(
                &config.nats_urls,
                "ritma-controller-system",
                keys.system_user_jwt().unwrap_or_default(),
                &keys.system_user,
                &bus_tls,
            )
        })
        .await?;
        let nats_controller_jwt = keys.controller_user_jwt()?;
        let controller_user = nkeys::KeyPair::from_seed(&keys.controller_user.seed()?)?;
        let public_nats_urls = if config.public_nats_urls.is_empty() {
            config.nats_urls.clone()
        } else {
            config.public_nats_urls.clone()
        };
        let control = Arc::new(trust::ControlKeys::new(
            master.clone(),
            pool.clone(),
            config
                .command_ttl_secs
                .clamp(1, ritma_protocol::command::MAX_COMMAND_TTL_SECS),
        ));
        let accounts = Arc::new(Accounts::new(
            keys,
            master,
            pool.clone(),
            config.nats_urls.clone(),
            system,
            bus_tls.clone(),
        ));
        accounts.reconcile_all().await?;

        let nats = retry("NATS (controller account)", Duration::from_secs(30), || {
            connect::connect_as_tls(
                &config.nats_urls,
                "ritma-controller",
                nats_controller_jwt.clone(),
                &controller_user,
                &bus_tls,
            )
        })
        .await?;
        let js = jetstream::new(nats.clone());
        let settings = streams::StreamSettings {
            max_ack_pending: (config.batch_size * config.workers * 4).max(20_000) as i64,
            replicas: config.stream_replicas,
            ack_wait: Duration::from_secs(config.ack_wait_secs.max(1)),
            max_age: Duration::from_secs(config.telemetry_stream_max_age_secs.max(60)),
            max_bytes: config.telemetry_stream_max_bytes,
            max_msgs_per_subject: config.telemetry_stream_max_msgs_per_subject,
            dead_letter_max_age: Duration::from_secs(
                config.dead_letter_stream_max_age_secs.max(60),
            ),
            dead_letter_max_bytes: config.dead_letter_stream_max_bytes,
            dead_letter_max_msgs: config.dead_letter_stream_max_msgs,
        };
        // JetStream in the freshly pushed account can take a moment to enable.
        let consumer = retry("JetStream streams", Duration::from_secs(30), || {
            streams::ensure_streams(&js, &settings)
        })
        .await?;

        let state = AppState {
            pool,
            accounts,
            control,
            bus_ca_pem,
            admin_token: admin_token.map(Into::into),
            oidc,
            dev_header_auth: config.dev_header_auth,
            public_nats_urls: Arc::new(public_nats_urls),
            node_jwt_ttl_secs: config.node_jwt_ttl_secs,
            default_heartbeat_secs: config.default_heartbeat_secs,
            stats: Arc::new(IngestStats::default()),
            metrics: Arc::new(metrics::Metrics::new()),
            metrics_token: metrics_token.map(Into::into),
            budgets: Arc::new(tasks::budget::Budgets::new(tasks::budget::BudgetSettings {
                node: tasks::budget::Rate::new(config.ingest_node_rate, config.ingest_node_burst),
                org: tasks::budget::Rate::new(config.ingest_org_rate, config.ingest_org_burst),
                dead_letters: tasks::budget::Rate::new(
                    config.ingest_dead_letter_rate,
                    config.ingest_dead_letter_burst,
                ),
            })),
            nats,
            enroll_limiter: Arc::new(
                api::ratelimit::FailureLimiter::new(
                    config.enroll_failures_burst,
                    config.enroll_failures_per_min,
                )
                .shared_by(config.api_replicas),
            ),
            fleet: Arc::new(fleet::Fleet::from_config(&config)?),
            dry_run_limiter: Arc::new(
                api::ratelimit::KeyedLimiter::new(config.dry_runs_burst, config.dry_runs_per_min)
                    .shared_by(config.api_replicas),
            ),
            console_token: console_token.map(Into::into),
            console_bus_ttl_secs: config.console_bus_ttl_secs,
            request_limiter: Arc::new(
                api::ratelimit::RequestLimiter::new(
                    api::ratelimit::Budget {
                        per_sec: config.api_rate_per_credential,
                        burst: config.api_burst_per_credential,
                    },
                    api::ratelimit::Budget {
                        per_sec: config.api_rate_per_address,
                        burst: config.api_burst_per_address,
                    },
                    config.api_trusted_proxies.clone(),
                )
                .shared_by(config.api_replicas),
            ),
            alerting: Arc::new(state::Alerting {
                settings: config.alerts.clone(),
                evaluate: Arc::new(Notify::new()),
                deliver: Arc::new(Notify::new()),
            }),
            bulk: config.bulk.clone(),
            bulk_wake: Arc::new(Notify::new()),
        };
        Ok(Self {
            config,
            state,
            consumer,
            js,
            outbox_wake: Arc::new(Notify::new()),
        })
    }

    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let (rollup_cue, rollup_cues) =
            tasks::rollup_cue::RollupCue::start(self.state.accounts.clone());
        // Ends when the ingest workers (holding the cue) have stopped.
        tokio::spawn(rollup_cues);
        IngestWorker {
            consumer: self.consumer.clone(),
            js: self.js.clone(),
            pool: self.state.pool.clone(),
            batch_size: self.config.batch_size.max(1),
            batch_wait: Duration::from_millis(self.config.batch_wait_ms.max(1)),
            policy: OfflinePolicy {
                intervals: self.config.offline_intervals,
                grace_secs: self.config.offline_grace_secs,
                flapping: self.config.flap_policy(),
            },
            stats: self.state.stats.clone(),
            outbox_wake: self.outbox_wake.clone(),
            admitted: Arc::default(),
            budgets: self.state.budgets.clone(),
            metrics: self.state.metrics.clone(),
            rollup_cue,
        }
        .spawn(self.config.workers, &mut tasks, &shutdown);
        tasks.spawn(tasks::reconciler::run(
            self.state.pool.clone(),
            self.js.clone(),
            Duration::from_millis(self.config.reconcile_ms.max(50)),
            self.config.flap_policy(),
            self.outbox_wake.clone(),
            self.state.metrics.clone(),
            shutdown.clone(),
        ));
        if self.config.offline_from_broker {
            tasks.spawn(
                tasks::broker_presence::BrokerPresence {
                    pool: self.state.pool.clone(),
                    system: self.state.accounts.system_client(),
                    js: self.js.clone(),
                    grace: Duration::from_millis(self.config.offline_broker_grace_ms),
                    flapping: self.config.flap_policy(),
                    wake: self.outbox_wake.clone(),
                }
                .run(shutdown.clone()),
            );
        }
        tasks.spawn(tasks::periodic::every(
            "flapping",
            Duration::from_secs(1),
            shutdown.clone(),
            tasks::flapping::FlappingSettler {
                pool: self.state.pool.clone(),
                policy: self.config.flap_policy(),
                wake: self.outbox_wake.clone(),
            },
        ));
        tasks.spawn(tasks::periodic::every(
            "consumer metrics",
            metrics::CONSUMER_SAMPLE_EVERY,
            shutdown.clone(),
            metrics::ConsumerSampler {
                js: self.js.clone(),
                metrics: self.state.metrics.clone(),
                consumer: None,
            },
        ));
        tasks.spawn(tasks::periodic::every(
            "outbox backlog metrics",
            metrics::BACKLOG_SAMPLE_EVERY,
            shutdown.clone(),
            metrics::BacklogSampler {
                pool: self.state.pool.clone(),
                metrics: self.state.metrics.clone(),
            },
        ));
        if let Some(addr) = self.config.metrics_listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("metrics listener {addr}: {e}"))?;
            let exposition = ritma_runtime::metrics::Exposition {
                registry: self.state.metrics.registry(),
                token: self.state.metrics_token.clone(),
            };
            tasks.spawn(exposition.serve(listener, shutdown.clone()));
        }
        tasks.spawn(tasks::periodic::every(
            "fleet",
            Duration::from_millis(self.config.fleet_reconcile_ms.max(50)),
            shutdown.clone(),
            tasks::fleet::FleetReconciler {
                pool: self.state.pool.clone(),
                fleet: self.state.fleet.clone(),
                retention: ritma_db::telemetry::Retention {
                    raw_days: self.config.telemetry_raw_days.max(1),
                    rollup_days: self.config.telemetry_rollup_days.max(1),
                    dead_letter_days: self.config.dead_letter_retention_days.max(1),
                    status_history_days: self.config.status_history_retention_days.max(1),
                },
                wake: self.outbox_wake.clone(),
                last_sync: None,
                last_prune: None,
            },
        ));
        tasks.spawn(tasks::budget::flush(
            self.state.pool.clone(),
            self.state.budgets.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(tasks::outbox::listen(
            self.state.pool.clone(),
            self.outbox_wake.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(tasks::outbox::run(
            self.state.pool.clone(),
            self.state.accounts.clone(),
            self.outbox_wake.clone(),
            self.state.alerting.evaluate.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(
            alerts::evaluate::Evaluator {
                pool: self.state.pool.clone(),
                js: self.js.clone(),
                every: Duration::from_millis(self.config.alerts.eval_ms.max(50)),
                wake: self.state.alerting.evaluate.clone(),
                deliver: self.state.alerting.deliver.clone(),
            }
            .run(shutdown.clone()),
        );
        tasks.spawn(
            alerts::deliver::Deliverer {
                pool: self.state.pool.clone(),
                accounts: self.state.accounts.clone(),
                settings: self.config.alerts.clone(),
                wake: self.state.alerting.deliver.clone(),
                metrics: self.state.metrics.clone(),
            }
            .run(shutdown.clone()),
        );
        tasks.spawn(
            bulk::worker::BulkWorker {
                pool: self.state.pool.clone(),
                accounts: self.state.accounts.clone(),
                control: self.state.control.clone(),
                settings: self.config.bulk.clone(),
                wake: self.state.bulk_wake.clone(),
            }
            .run(shutdown.clone()),
        );
        let app = api::router(self.state.clone());
        tracing::info!(addr = %listener.local_addr()?, "controller API listening");
        let stop = shutdown.clone();
        axum::serve(
            ritma_runtime::listener_without_delay(listener),
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        // Bounded: a client cut off from the bus would wait for it for ever.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.state.nats.flush()).await;
        tracing::info!("controller stopped");
        Ok(())
    }
}
