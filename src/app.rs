//! Assembly: builds the shared state, starts the workers (group-commit
//! writers, dispatchers, maintenance), serves the HTTP API, and on shutdown
//! stops them in order: stop accepting → drain HTTP → finish attempts in
//! flight (up to the grace period) → close the store.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::admin::openapi::ApiDoc;
use crate::backlog::Backlog;
use crate::config::{Config, Loaded};
use crate::connectors::health::{HealthBoard, Prober};
use crate::deliver::{Engine, Wakers};
use crate::ingest::auth::Partners;
use crate::ingest::commit::Committer;
use crate::ingest::sink::Sink;
use crate::model::now_millis;
use crate::queue::{self, MaintenanceContext};
use crate::reference::{Checker, ReferenceData, ReferenceErrors};
use crate::route::RouteTable;
use crate::schema::{Catalogue, SchemaError};
use crate::store::{Backend, Store, StoreError};

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The canonical catalogue did not load.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A mapping file did not compile (every error, `file:line: …`).
    #[error("mapping files do not load:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Mappings(Vec<crate::mapping::LoadError>),
    /// The reference data did not load (one line per problem, `file:line`).
    #[error("reference data is invalid:\n{0}")]
    Reference(#[from] ReferenceErrors),
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A connector could not be built.
    #[error(transparent)]
    Connector(#[from] crate::connectors::BuildError),
    /// The job queue did not start.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// Process configuration.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// Canonical schemas.
    pub catalogue: Catalogue,
    /// Compiled mapping files, all versions.
    pub mappings: Arc<crate::mapping::MappingSet>,
    /// Per destination, how its bodies are rendered (for the trace API).
    pub renderers: std::collections::BTreeMap<String, crate::deliver::render::Renderer>,
    /// Reference data and the identifier checks run after the schema.
    pub reference: Checker,
    /// Routes.
    pub routes: RouteTable,
    /// Partner keys.
    pub partners: Partners,
    /// Group commit.
    pub committer: Committer,
    /// Back-pressure counter.
    pub backlog: Arc<Backlog>,
    /// Dispatcher wake-ups.
    pub wakers: Wakers,
    /// Every connector's health (probes and receivers' reports).
    pub health: HealthBoard,
    /// Probes the outbound connectors on demand and periodically.
    pub prober: Prober,
    /// The provinces the hub exchanges signed letters with.
    pub xp_provinces: crate::xp::inbound::Provinces,
    shutting_down: AtomicBool,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// After a replay: count the revived deliveries and wake every dispatcher.
    pub async fn after_replay(&self, n: u64) {
        self.backlog.add(i64::try_from(n).unwrap_or(i64::MAX));
        self.wakers.wake_all();
    }
}

/// Every route with its OpenAPI annotations (state not yet attached).
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::ingest::router())
        .merge(crate::admin::router())
        .merge(crate::xp::inbound::router())
        .merge(crate::xp::api::router())
}

/// A name for this process in leases: configured, or host + pid + a random
/// suffix (a restarted process never inherits a dead one's claims).
pub fn node_id(cfg: &Config) -> String {
    if !cfg.server.node_id.is_empty() {
        return cfg.server.node_id.clone();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let suffix = ulid::Ulid::generate().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[20..])
}

/// Compiles the mapping files the configuration points at, checking them
/// against the catalogue. Every error of every file is returned.
pub fn load_mappings(loaded: &Loaded, catalogue: &Catalogue) -> Result<crate::mapping::MappingSet, Vec<crate::mapping::LoadError>> {
    let dir = loaded.paths.resolve(&loaded.config.mappings.dir);
    let reference = loaded.paths.resolve(&loaded.config.catalogue.reference);
    let set = crate::mapping::MappingSet::load(
        &dir,
        &crate::mapping::LoadContext {
            catalogue,
            reference_dir: &reference,
        },
    )?;
    let errors = connector_mapping_errors(&loaded.connectors, &set);
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

/// Every mapping a connector names must exist, translate that message type
/// and go the right way.
fn connector_mapping_errors(
    connectors: &[crate::config::ConnectorConfig],
    set: &crate::mapping::MappingSet,
) -> Vec<crate::mapping::LoadError> {
    use crate::mapping::Direction;
    let mut errors = Vec::new();
    for c in connectors {
        let text = std::fs::read_to_string(&c.file).unwrap_or_default();
        let sides = [
            (Direction::Inbound, c.inbound.as_ref().map(|i| &i.mappings)),
            (Direction::Outbound, c.outbound.as_ref().map(|o| &o.mappings)),
        ];
        for (direction, mappings) in sides {
            for (message_type, name) in mappings.into_iter().flatten() {
                let line = text.lines().position(|l| l.contains(&format!("\"{name}\""))).map_or(1, |i| i + 1);
                let problem = match set.versions(name).first() {
                    None => Some(format!(
                        "mapping {name:?} (for {message_type}) does not exist; known: {}",
                        set.names().collect::<Vec<_>>().join(", ")
                    )),
                    Some(m) if !m.message_types.contains(message_type) => Some(format!(
                        "mapping {name:?} translates {}, not {message_type}",
                        m.message_types.join(", ")
                    )),
                    Some(m) if m.direction != direction => Some(format!(
                        "mapping {name:?} is {:?}, but it is named under [{}]",
                        m.direction,
                        if direction == Direction::Inbound {
                            "inbound.mappings"
                        } else {
                            "outbound.mappings"
                        }
                    )),
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    errors.push(crate::mapping::LoadError {
                        file: std::path::PathBuf::from(&c.file),
                        line,
                        message,
                    });
                }
            }
        }
        // A drop folder's records must be in the format its mapping reads.
        if let Some(f) = &c.file_drop
            && let Some(name) = c.inbound.as_ref().and_then(|i| i.mappings.get(&f.message_type))
            && let Some(m) = set.versions(name).first()
            && m.reads_xml() != (f.format == crate::config::file::FileFormat::Xml)
        {
            errors.push(crate::mapping::LoadError {
                file: std::path::PathBuf::from(&c.file),
                line: text.lines().position(|l| l.trim_start().starts_with("format")).map_or(1, |i| i + 1),
                message: format!(
                    "file.format {:?} needs a mapping that reads {}, but {name:?} reads {}",
                    f.format,
                    if f.format == crate::config::file::FileFormat::Xml {
                        "XML"
                    } else {
                        "JSON (one object per record)"
                    },
                    if m.reads_xml() { "XML" } else { "JSON" }
                ),
            });
        }
        // A polled page holds JSON records.
        if let Some(p) = &c.poll
            && p.format == crate::config::poll::PollFormat::Document
            && let Some(name) = c.inbound.as_ref().and_then(|i| i.mappings.get(&p.message_type))
            && let Some(m) = set.versions(name).first()
            && m.reads_xml()
        {
            errors.push(crate::mapping::LoadError {
                file: std::path::PathBuf::from(&c.file),
                line: text.lines().position(|l| l.trim_start().starts_with("type")).map_or(1, |i| i + 1),
                message: format!("poll items are JSON records, but {name:?} reads XML"),
            });
        }
    }
    errors
}

/// Runs the hub on `listener` until `shutdown` is cancelled. This is the
/// entry point the binary and the integration tests share.
pub async fn run(loaded: Loaded, listener: TcpListener, shutdown: CancellationToken) -> Result<(), AppError> {
    let cfg = loaded.config.clone();
    let node = node_id(&cfg);
    // Install the metrics recorder before anything records.
    crate::telemetry::prometheus();
    let catalogue = Catalogue::load(&loaded.paths.resolve(&cfg.catalogue.schemas))?;
    let mappings = Arc::new(load_mappings(&loaded, &catalogue).map_err(AppError::Mappings)?);
    let reference = Checker::new(&catalogue, ReferenceData::load(&loaded.paths.resolve(&cfg.catalogue.reference))?);
    let store = Store::connect(&cfg.database).await?;
    if store.backend() == Backend::Sqlite {
        // One process owns a SQLite store, so every claim left in flight
        // belongs to a process that is gone: retry them now, same ids.
        let n = store.reap_expired(now_millis(), true).await?;
        if n > 0 {
            tracing::warn!(deliveries = n, "Resuming deliveries interrupted by the last stop.");
        }
    }
    let backlog = Arc::new(Backlog::default());
    backlog.resync(&store).await?;
    // The workflow destination gets the hub's state once it exists.
    let workflow_app = Arc::new(std::sync::OnceLock::new());
    let workflow = crate::xp::workflow::Workflow::new(
        workflow_app.clone(),
        crate::xp::workflow::Senders::new(&loaded.connectors, &cfg.xp.departments),
    );
    let xp_provinces = crate::xp::inbound::Provinces::new(&loaded.connectors, cfg.xp.letters_per_second)?;
    let (engine, wakers) = Engine::start(
        store.clone(),
        &loaded.connectors,
        &cfg.delivery,
        crate::deliver::Builtins {
            prompts: &cfg.prompts,
            workflow,
            xp: &cfg.xp,
        },
        &node,
        backlog.clone(),
        mappings.clone(),
    )?;
    let mut background = JoinSet::new();
    let writers = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };
    let committer = Committer::start(
        store.clone(),
        wakers.clone(),
        backlog.clone(),
        cfg.ingest.commit_batch,
        writers,
        &mut background,
    );
    let maintenance_stop = CancellationToken::new();
    let maintenance = MaintenanceContext {
        store: store.clone(),
        backlog: backlog.clone(),
        keep_finished: cfg.retention.keep_finished.0,
    };
    queue::start(
        maintenance,
        cfg.retention.maintenance_interval.0,
        maintenance_stop.clone(),
        &mut background,
    )
    .await?;

    // One board for every connector's health: probes of the outbound
    // partners (periodic unless the interval is 0) and the receivers' reports.
    let health = HealthBoard::new(&loaded.connectors);
    let prober = Prober::new(health.clone(), engine.outbounds(), &loaded.connectors);
    let health_stop = CancellationToken::new();
    if !cfg.health.interval.0.is_zero() {
        background.spawn(prober.clone().run(cfg.health.interval.0, health_stop.clone()));
    }

    let state = AppState(Arc::new(Inner {
        config: cfg.clone(),
        store: store.clone(),
        catalogue,
        renderers: loaded
            .connectors
            .iter()
            .filter_map(|c| {
                let out = c.outbound.as_ref()?;
                Some((
                    c.name.clone(),
                    crate::deliver::render::Renderer::new(mappings.clone(), out.mappings.clone()),
                ))
            })
            .collect(),
        mappings,
        reference,
        routes: RouteTable::new(&loaded.connectors),
        partners: Partners::new(&loaded.connectors),
        committer,
        backlog,
        wakers,
        health,
        prober,
        xp_provinces,
        shutting_down: AtomicBool::new(false),
    }));
    let _ = workflow_app.set(state.clone());
    // The workflow's dispatcher keeps the only other handle; it ends with the
    // delivery stage, so the state (and the group commit it feeds) can close.
    drop(workflow_app);
    let xp_stop = CancellationToken::new();
    if !cfg.xp.check_interval.0.is_zero() {
        background.spawn(crate::xp::deadlines::run(state.clone(), cfg.xp.check_interval.0, xp_stop.clone()));
    }
    // Connector kinds that receive on their own (a broker subscription, a
    // drop folder, a poller) hand what they receive to the same pipeline.
    let receivers_stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    for c in loaded.connectors.iter().filter(|c| c.enabled) {
        let Some(sink) = Sink::new(state.clone(), &c.name) else { continue };
        if let Some(task) = crate::connectors::receiver(c, sink, receivers_stop.clone(), store.clone(), &node)? {
            receivers.spawn(task);
        }
    }
    let (router, _) = api_router().split_for_parts();
    let app = router
        .with_state(state.clone())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            cfg.server.request_timeout.0,
        ))
        .layer(TraceLayer::new_for_http());
    let addr = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!(%addr, node = %node, backend = ?store.backend(), "wastehub is serving.");

    let signal = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            state.0.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("Shutting down: no new requests; finishing those in flight.");
        }
    };
    drop(state);
    let serve = axum::serve(listener, app).with_graceful_shutdown(signal);
    let served = tokio::spawn(async move { serve.await });
    shutdown.cancelled().await;
    // One deadline for the whole shutdown, shared by its phases.
    let deadline = tokio::time::Instant::now() + cfg.server.shutdown_grace.0;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout(left(), served).await {
        Ok(Ok(Err(e))) => return Err(AppError::Serve(e)),
        Ok(_) => {}
        Err(_) => tracing::warn!("Some HTTP requests did not finish within the grace period."),
    }
    receivers_stop.cancel();
    health_stop.cancel();
    xp_stop.cancel();
    if tokio::time::timeout(left(), async { while receivers.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("Some receivers did not stop within the grace period.");
    }
    engine.shutdown(left()).await;
    maintenance_stop.cancel();
    let _ = tokio::time::timeout(left(), async { while background.join_next().await.is_some() {} }).await;
    store.close().await;
    tracing::info!("wastehub stopped.");
    Ok(())
}
