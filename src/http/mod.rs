//! The HTTP API and the embedded UI, on ntex: the server and the one route table here, then one
//! file per area: `recordings` (streams, listings, lock, delete), `video` (segments, stitched
//! playback, live), `health` (health and metrics), `assets` (the UI), with `params` (reading
//! requests), `state` (what handlers share, and its caches), `range`, `body` (streaming a
//! virtual file) and `live` (the inotify hub that wakes live viewers).
//!
//! Invariants:
//! - [`configure`] is the one route table, shared by the daemon and the tests.
//! - Handlers stay thin: they parse the request, call the store on the blocking pool
//!   (`web::block`), and shape JSON. Nothing here blocks the executor.
//! - Every failure is a JSON `{"error": …}`; [`status_of`] maps error kinds to status codes,
//!   the only place that does. Bad input is 4xx, never 5xx, never a panic.
//! - No file path is ever built from request input: files are found through the index.

pub mod access;
mod account;
mod assets;
mod body;
mod camera;
mod config;
mod health;
mod live;
mod params;
mod range;
mod recordings;
mod state;
pub mod tls;
mod video;

pub use access::Owner;
use assets::*;
use health::*;
use params::*;
use recordings::*;
pub use state::Shared;
use state::*;
use video::*;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::UNIX_EPOCH;

use jiff::tz::TimeZone;
use ntex::http::StatusCode;
use ntex::http::body::{Body, SizedStream};
use ntex::util::Bytes;
use ntex::web::{self, HttpRequest, HttpResponse};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::index::{Recording, Store};
use crate::media;
use crate::media::layout::{Layout, Part};
use crate::media::stitch;
use crate::recorder::Statuses;
use crate::retention;
use crate::retention::disk;
use crate::time;
use range::Ranged;

type State = web::types::State<Arc<Shared>>;

/// The status code of an error kind: the only place that knows.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::BadRequest | Kind::Config => StatusCode::BAD_REQUEST,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        Kind::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::Corrupt | Kind::Schema | Kind::Io | Kind::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl web::WebResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status_of(self.kind)
    }

    fn error_response(&self, _: &HttpRequest) -> HttpResponse {
        if self.status_code().is_server_error() {
            log::error!("http: {self}");
        }
        HttpResponse::build(self.status_code()).json(&json!({ "error": self.msg }))
    }
}

/// The route table: every route with its owner. `configure` registers them, the `access`
/// middleware enforces the owners, and `ROUTES` lists them for the tests, so a route cannot be
/// added without an owner.
macro_rules! routes {
    ($($method:ident $path:literal $owner:ident => $handler:expr;)*) => {
        /// Every route: method, path pattern, owner.
        pub const ROUTES: &[(&str, &str, Owner)] =
            &[$((stringify!($method), $path, Owner::$owner)),*];

        /// Registers every route of [`ROUTES`].
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

routes! {
    get "/api/streams" Viewer => streams;
    get "/api/streams/{id}/recordings" Viewer => stream_recordings;
    get "/api/streams/{id}/recordings/dates" Viewer => stream_dates;
    get "/api/recordings/{id}" Viewer => recording;
    patch "/api/recordings/{id}" Admin => patch_recording;
    delete "/api/recordings/{id}" Admin => delete_recording;
    get "/api/recordings/{id}/stream" Viewer => stream_file;
    head "/api/recordings/{id}/stream" Viewer => stream_file;
    get "/api/streams/{id}/playback.mp4" Viewer => playback_mp4;
    head "/api/streams/{id}/playback.mp4" Viewer => playback_mp4;
    get "/api/streams/{id}/playback.json" Viewer => playback_json;
    get "/api/streams/{id}/live.mp4" Viewer => live_mp4;
    get "/api/health" Public => health;
    get "/metrics" Metrics => metrics;
    get "/api/setup" Public => account::setup_state;
    post "/api/setup" Public => account::setup;
    post "/api/login" Public => account::login;
    post "/api/logout" Viewer => account::logout;
    get "/api/me" Viewer => account::me;
    get "/api/users" Admin => account::users;
    post "/api/users" Admin => account::add_user;
    put "/api/users/{name}/password" Viewer => account::set_password;
    delete "/api/users/{name}" Admin => account::delete_user;
    get "/api/tokens" Admin => account::tokens;
    post "/api/tokens" Admin => account::add_token;
    delete "/api/tokens/{id}" Admin => account::delete_token;
    post "/api/sign" Viewer => account::sign_url;
    get "/api/audit" Admin => account::audit;
    get "/api/config" Admin => config::get_config;
    put "/api/config" Admin => config::put_config;
    post "/api/config/validate" Admin => config::validate_config;
    post "/api/streams" Admin => config::add_stream;
    post "/api/sources/probe" Admin => camera::probe_source;
    get "/api/streams/{id}/snapshot.jpg" Viewer => camera::snapshot;
    patch "/api/streams/{id}" Admin => config::patch_stream;
    delete "/api/streams/{id}" Admin => config::delete_stream;
    get "/ui/{file}" Public => ui_file;
    get "/favicon.ico" Public => favicon;
    get "/" Public => index_page;
}

/// The running HTTP server: its own thread with ntex's runtime and worker threads.
pub struct Server {
    handle: ntex::server::Server,
    /// Ends the server thread's future even if ntex's own stop never resolves it (seen when a
    /// stop came while workers were still starting).
    quit: Option<tokio::sync::oneshot::Sender<()>>,
    /// Says the server thread has ended, so `stop` never waits on it forever.
    done: std::sync::mpsc::Receiver<()>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addr: std::net::SocketAddr,
}

impl Server {
    /// Binds `listen` now (so a busy port is an error before the daemon says it is ready) and
    /// serves on it from a new thread.
    pub fn start(
        shared: Arc<Shared>,
        listen: std::net::SocketAddr,
        workers: usize,
        tls: Option<Arc<tls::Certs>>,
    ) -> Result<Server> {
        let tls = tls.map(|c| c.server_config()).transpose()?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::new(Kind::Io, format!("http: cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (quit, quit_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let kept = shared.clone();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let run =
                    ntex::rt::System::new("http", ntex::rt::DefaultRuntime).block_on(async move {
                        let server = web::server(async move || {
                            web::App::new()
                                .middleware(access::Access(shared.clone()))
                                .state(shared.clone())
                                .configure(configure)
                                .default_service(web::to(not_found))
                        })
                        .workers(workers)
                        .disable_signals();
                        let server = match tls {
                            Some(c) => server.listen_rustls(listener, c)?,
                            None => server.listen(listener)?,
                        }
                        .run();
                        let _ = tx.send(server.clone());
                        tokio::select! {
                            r = server => r,
                            _ = quit_rx => Ok(()),
                        }
                    });
                if let Err(e) = run {
                    log::error!("http: {e}");
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::internal(format!("http thread: {e}")))?;
        let handle = rx
            .recv()
            .map_err(|_| Error::internal("http: the server did not start"))?;
        log::info!(
            "http: listening on {addr}{}",
            if kept.tls { " (https)" } else { "" }
        );
        Ok(Server {
            handle,
            quit: Some(quit),
            done,
            shared: kept,
            thread: Some(thread),
            addr,
        })
    }

    /// Stops accepting, lets running requests finish (5 s at most), and ends the thread. It
    /// never waits forever: a stop must not depend on ntex resolving its server future.
    pub fn stop(mut self) {
        self.shared.close_live();
        let stop = self.handle.stop(true);
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            rt.block_on(async {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stop).await;
            });
        }
        if let Some(q) = self.quit.take() {
            let _ = q.send(());
        }
        match self.done.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log::warn!("http: the server thread did not end; leaving it to the exit");
            }
        }
    }
}

/// The answer for routes that do not exist.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse> {
    Err(Error::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}
