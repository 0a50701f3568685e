//! The HTTP API of `../shared/SPEC.md` §4 and the embedded UI, on ntex.
//!
//! Invariants:
//! - [`configure`] is the one route table, shared by the daemon and the tests.
//! - Handlers stay thin: they parse the request, call the store on the blocking pool
//!   (`web::block`), and shape JSON. Nothing here blocks the executor.
//! - Every failure is a JSON `{"error": …}`; [`status_of`] maps error kinds to status codes,
//!   the only place that does. Bad input is 4xx, never 5xx, never a panic.
//! - No file path is ever built from request input: files are found through the index.

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

use crate::body;
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::index::{Recording, Store};
use crate::live;
use crate::media;
use crate::media::layout::{Layout, Part};
use crate::media::stitch;
use crate::range::{self, Ranged};
use crate::recorder::Statuses;
use crate::retention;
use crate::retention::disk;
use crate::time;

/// The largest request body accepted (a PATCH is a few bytes).
const MAX_BODY: usize = 4096;

/// What the HTTP handlers share with the rest of the daemon.
pub struct Shared {
    pub store: Arc<Store>,
    pub config: RwLock<Arc<Config>>,
    pub statuses: Statuses,
    pub counters: Arc<retention::Counters>,
    layouts: Recent<LayoutKey, Arc<Layout>>,
    listings: Recent<ListingKey, Bytes>,
    fragments: Recent<FileKey, Arc<media::Fragments>>,
    plans: Recent<PlanKey, (Arc<stitch::Plan>, std::time::Instant)>,
    /// Started by the first live viewer.
    live: std::sync::Mutex<Option<Arc<live::Hub>>>,
}

/// (path, size, mtime) of a file whose fragments were read: a file that changes misses.
type FileKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// (stream, start, end) of a stitched playback.
type PlanKey = (String, Option<i64>, Option<i64>);

/// How long a stitched playback whose footage may still grow is served unchanged, so that the
/// range requests of one player see one file; a closed range is reused while its files last.
const OPEN_PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// (stream, start, end, index generation) of a recordings listing. An entry is only ever
/// found while the index is at the generation it was made from, so it is never stale.
type ListingKey = (String, Option<i64>, Option<i64>, u64);

/// (id, size, mtime) of a served layout: a file that changes misses.
type LayoutKey = (u64, u64, Option<std::time::SystemTime>);

/// The last few answers of one kind, the oldest dropped first. Listings are cached because the
/// UI asks for the same day again and again; layouts so the seeks of a player do not walk the
/// file's fragments on every request.
struct Recent<K, V> {
    size: usize,
    items: std::sync::Mutex<Vec<(K, V)>>,
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    fn new(size: usize) -> Self {
        Recent {
            size,
            items: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// Adds `key`, first dropping the entries it supersedes.
    fn insert(&self, key: K, value: V, supersedes: impl Fn(&K) -> bool) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.retain(|(k, _)| !supersedes(k) && *k != key);
        if items.len() >= self.size {
            items.remove(0);
        }
        items.push((key, value));
    }
}

impl Shared {
    pub fn new(
        store: Arc<Store>,
        config: Config,
        statuses: Statuses,
        counters: Arc<retention::Counters>,
    ) -> Shared {
        Shared {
            store,
            config: RwLock::new(Arc::new(config)),
            statuses,
            counters,
            layouts: Recent::new(16),
            listings: Recent::new(32),
            // A day of 15-minute segments, so a player seeking through a day re-reads none.
            fragments: Recent::new(128),
            plans: Recent::new(8),
            live: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_config(&self, c: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
    }

    fn live_hub(&self) -> Result<Arc<live::Hub>> {
        let mut hub = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = &*hub {
            return Ok(h.clone());
        }
        let h = Arc::new(live::Hub::start()?);
        *hub = Some(h.clone());
        Ok(h)
    }

    /// Ends every live view, so a stopping server is not kept waiting by endless responses.
    pub fn close_live(&self) {
        if let Some(h) = self.live.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.close();
        }
    }

    fn recordings_dir(&self) -> PathBuf {
        self.config().storage.recordings_dir.clone()
    }
}

type State = web::types::State<Arc<Shared>>;

/// The status code of an error kind: the only place that knows.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::BadRequest | Kind::Config => StatusCode::BAD_REQUEST,
        Kind::NotFound => StatusCode::NOT_FOUND,
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

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/streams", web::get().to(streams))
        .route(
            "/api/streams/{id}/recordings",
            web::get().to(stream_recordings),
        )
        .route(
            "/api/streams/{id}/recordings/dates",
            web::get().to(stream_dates),
        )
        .route("/api/recordings/{id}", web::get().to(recording))
        .route("/api/recordings/{id}", web::patch().to(patch_recording))
        .route("/api/recordings/{id}", web::delete().to(delete_recording))
        .route("/api/recordings/{id}/stream", web::get().to(stream_file))
        .route("/api/recordings/{id}/stream", web::head().to(stream_file))
        .route(
            "/api/streams/{id}/playback.mp4",
            web::get().to(playback_mp4),
        )
        .route(
            "/api/streams/{id}/playback.mp4",
            web::head().to(playback_mp4),
        )
        .route(
            "/api/streams/{id}/playback.json",
            web::get().to(playback_json),
        )
        .route("/api/streams/{id}/live.mp4", web::get().to(live_mp4))
        .route("/api/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(index_page));
}

/// The running HTTP server: its own thread with ntex's runtime and worker threads.
pub struct Server {
    handle: ntex::server::Server,
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
    ) -> Result<Server> {
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::new(Kind::Io, format!("http: cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = shared.clone();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let run =
                    ntex::rt::System::new("http", ntex::rt::DefaultRuntime).block_on(async move {
                        let server = web::server(async move || {
                            web::App::new()
                                .state(shared.clone())
                                .configure(configure)
                                .default_service(web::to(not_found))
                        })
                        .workers(workers)
                        .disable_signals()
                        .listen(listener)?
                        .run();
                        let _ = tx.send(server.clone());
                        server.await
                    });
                if let Err(e) = run {
                    log::error!("http: {e}");
                }
            })
            .map_err(|e| Error::internal(format!("http thread: {e}")))?;
        let handle = rx
            .recv()
            .map_err(|_| Error::internal("http: the server did not start"))?;
        log::info!("http: listening on {addr}");
        Ok(Server {
            handle,
            shared: kept,
            thread: Some(thread),
            addr,
        })
    }

    /// Stops accepting, lets running requests finish, and waits for the thread.
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + Sync + 'static,
) -> Result<T> {
    web::block(f).await.map_err(|e| match e {
        web::error::BlockingError::Error(e) => e,
        web::error::BlockingError::Canceled => Error::internal("blocking task canceled"),
    })
}

fn query(req: &HttpRequest) -> Vec<(String, String)> {
    req.query_string()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16)).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first of `names` present in the query.
fn param<'q>(q: &'q [(String, String)], names: &[&str]) -> Option<&'q str> {
    names
        .iter()
        .find_map(|n| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
}

fn time_param(q: &[(String, String)], names: &[&str]) -> Result<Option<i64>> {
    match param(q, names) {
        None => Ok(None),
        Some(v) => time::parse_query_time(v).map(Some).ok_or_else(|| {
            Error::bad_request(format!(
                "{}: {v:?} is not an RFC 3339 time or Unix seconds",
                names[0]
            ))
        }),
    }
}

fn id_param(req: &HttpRequest) -> Result<u64> {
    let raw = req.match_info().get("id").unwrap_or("");
    raw.parse()
        .map_err(|_| Error::bad_request(format!("{raw:?} is not a recording id")))
}

/// A recording as SPEC §4 shapes it.
#[derive(serde::Serialize)]
struct RecordingJson<'a> {
    id: u64,
    stream_id: &'a str,
    start_time: String,
    end_time: String,
    duration_seconds: f64,
    file_path: String,
    file_size_bytes: u64,
    retention_locked: bool,
}

impl<'a> From<&'a Recording> for RecordingJson<'a> {
    fn from(r: &'a Recording) -> Self {
        RecordingJson {
            id: r.id,
            stream_id: &r.stream_id,
            start_time: time::rfc3339_us(r.start_ms * 1000),
            end_time: time::rfc3339_us(r.end_us()),
            duration_seconds: r.duration_us as f64 / 1e6,
            file_path: r.file_path(),
            file_size_bytes: r.file_size_bytes,
            retention_locked: r.retention_locked,
        }
    }
}

fn recording_json(r: &Recording) -> HttpResponse {
    HttpResponse::Ok().json(&RecordingJson::from(r))
}

fn json_ok(v: &Value) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

async fn streams(st: State) -> Result<HttpResponse> {
    let config = st.config();
    let statuses = st
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let list: Vec<Value> = config
        .streams
        .iter()
        .map(|s| {
            let status = statuses.get(&s.id);
            let state = match status {
                Some(st) => st.state.as_str(),
                None if s.enabled => "starting",
                None => "disabled",
            };
            json!({
                "id": s.id,
                "name": s.name,
                "enabled": s.enabled,
                "retention_days": s.retention_days,
                "segment_seconds": s.segment_seconds,
                "recorder": {
                    "state": state,
                    "restarts": status.map_or(0, |x| x.restarts),
                    "last_error": status.and_then(|x| x.last_error.clone()),
                    "last_segment_time": status.and_then(|x| x.last_segment_ms).map(|ms| time::rfc3339_us(ms * 1000)),
                },
            })
        })
        .collect();
    Ok(json_ok(&Value::Array(list)))
}

/// The stream id of the path, if the config or the index knows it.
async fn known_stream(st: &State, req: &HttpRequest) -> Result<String> {
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    if st.config().stream(&id).is_some() {
        return Ok(id);
    }
    let store = st.store.clone();
    let probe = id.clone();
    if crate::config::valid_stream_id(&id) && blocking(move || store.has_stream(&probe)).await? {
        return Ok(id);
    }
    Err(Error::not_found(format!("no stream {id:?}")))
}

async fn stream_recordings(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = known_stream(&st, &req).await?;
    let q = query(&req);
    let start = time_param(&q, &["start", "start_time"])?;
    let end = time_param(&q, &["end", "end_time"])?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Error::bad_request("start is after end"));
    }
    // The UI asks for the same day again and again; the answer only changes with the index.
    let key = (id.clone(), start, end, st.store.generation());
    if let Some(body) = st.listings.get(&key) {
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(body));
    }
    let store = st.store.clone();
    // Serialized on the blocking pool too: a day of recordings is a few dozen kilobytes.
    let body = blocking(move || {
        let recs = store.overlapping(&id, start, end)?;
        let list: Vec<RecordingJson<'_>> = recs.iter().map(RecordingJson::from).collect();
        serde_json::to_vec(&list).map_err(|e| Error::internal(format!("json: {e}")))
    })
    .await?;
    let body = Bytes::from(body);
    let generation = key.3;
    st.listings.insert(key, body.clone(), |k| k.3 != generation);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

async fn stream_dates(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = known_stream(&st, &req).await?;
    let q = query(&req);
    let tz = match param(&q, &["tz"]) {
        None | Some("") => TimeZone::UTC,
        Some(name) => TimeZone::get(name)
            .map_err(|_| Error::bad_request(format!("unknown time zone {name:?}")))?,
    };
    let store = st.store.clone();
    let days = blocking(move || store.dates(&id, &tz)).await?;
    Ok(json_ok(&Value::Array(
        days.iter().map(|d| Value::String(d.to_string())).collect(),
    )))
}

async fn recording(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let store = st.store.clone();
    let rec = blocking(move || store.get(id)).await?;
    Ok(recording_json(&rec))
}

/// The request body, up to [`MAX_BODY`] bytes. A larger one is read on (up to a bound) and
/// dropped, so the client is still reading when the 413 arrives instead of seeing a reset.
async fn read_body(mut payload: web::types::Payload) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = payload.recv().await {
        let chunk = chunk.map_err(|e| Error::bad_request(format!("reading the body: {e}")))?;
        seen += chunk.len();
        if seen > MAX_BODY * 256 {
            break;
        }
        if seen <= MAX_BODY {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY {
        return Err(Error::new(
            Kind::TooLarge,
            format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    Ok(body)
}

async fn patch_recording(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let body = read_body(payload).await?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::bad_request(format!("the body is not JSON: {e}")))?;
    let locked = match v.as_object().map(|o| (o.len(), o.get("retention_locked"))) {
        Some((1, Some(Value::Bool(b)))) => *b,
        _ => {
            return Err(Error::bad_request(
                "the body must be {\"retention_locked\": true|false}",
            ));
        }
    };
    let (store, dir) = (st.store.clone(), st.recordings_dir());
    let rec = blocking(move || {
        let rec = store.get(id)?;
        set_file_locked(&dir.join(rec.file_path()), locked)?;
        store.set_locked(id, locked)
    })
    .await?;
    log::info!(
        "recording {id} ({}): {}",
        rec.file_path(),
        if locked { "locked" } else { "unlocked" }
    );
    Ok(recording_json(&rec))
}

/// A recording's lock lives in its file's mode (read-only = locked), so it survives a rebuild.
fn set_file_locked(path: &std::path::Path, locked: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path)
        .map_err(|e| Error::from(e).context(path.display()))?
        .permissions();
    let mode = perm.mode();
    perm.set_mode(if locked { mode & !0o222 } else { mode | 0o200 });
    std::fs::set_permissions(path, perm).map_err(|e| Error::from(e).context(path.display()))
}

async fn delete_recording(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let (shared, dir) = (st.get_ref().clone(), st.recordings_dir());
    blocking(move || {
        let rec = shared.store.get(id)?;
        if rec.retention_locked {
            return Err(Error::new(
                Kind::Conflict,
                format!("recording {id} is locked; unlock it first"),
            ));
        }
        retention::delete(
            &shared.store,
            &dir,
            &rec,
            retention::Reason::Manual,
            &shared.counters,
        )
    })
    .await?;
    Ok(json_ok(&json!({"status": "deleted", "id": id})))
}

/// The layout served for a segment: a fragmented file gets a `sidx` per track between its
/// header and its fragments, so a browser knows the whole duration at once and can seek; the
/// media bytes are the file's own. Anything else is served as it is.
fn segment_layout(path: &std::path::Path, len: u64) -> Layout {
    match media::fragments(path) {
        Ok(Some(f)) => {
            let end = f.content_end().min(len);
            Layout::new(
                vec![path.to_owned()],
                Vec::new(),
                vec![
                    Part::File {
                        file: 0,
                        offset: 0,
                        len: f.head_len,
                    },
                    Part::Mem(Bytes::from(f.sidx_boxes())),
                    Part::File {
                        file: 0,
                        offset: f.head_len,
                        len: end - f.head_len,
                    },
                ],
            )
        }
        _ => Layout::whole_file(path.to_owned(), len),
    }
}

/// A recording as served: `Range`, `If-Range`, `ETag`, `Last-Modified`, `HEAD`.
async fn stream_file(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let (shared, dir) = (st.get_ref().clone(), st.recordings_dir());
    let (file, meta, layout) = blocking(move || {
        let rec = shared.store.get(id)?;
        let path = dir.join(rec.file_path());
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::not_found(format!("the file of recording {id} is gone"))
            }
            _ => Error::from(e).context(rec.file_path()),
        })?;
        let meta = file.metadata()?;
        let key = (id, meta.len(), meta.modified().ok());
        let layout = match shared.layouts.get(&key) {
            Some(l) => l,
            None => {
                let l = Arc::new(segment_layout(&path, meta.len()));
                shared.layouts.insert(key, l.clone(), |k| k.0 == id);
                l
            }
        };
        Ok((file, meta, layout))
    })
    .await?;
    let len = layout.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = {
        use std::os::unix::fs::MetadataExt;
        format!(
            "\"{:x}-{:x}-{:x}-{len:x}\"",
            meta.ino(),
            meta.len(),
            mtime.as_nanos()
        )
    };
    let last_modified = http_date(mtime.as_secs() as i64);
    serve_layout(
        &req,
        layout,
        &etag,
        Some(&last_modified),
        Some(file),
        |_| (),
    )
}

/// Serves `layout` as `video/mp4` with `Range`, `If-Range` (against `etag` or
/// `last_modified`), `ETag` and `Accept-Ranges`.
fn serve_layout(
    req: &HttpRequest,
    layout: Arc<Layout>,
    etag: &str,
    last_modified: Option<&str>,
    open: Option<std::fs::File>,
    more: impl FnOnce(&mut ntex::http::ResponseBuilder),
) -> Result<HttpResponse> {
    let len = layout.len();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let if_range_ok = match header("if-range") {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => Some(v) == last_modified,
    };
    let ranged = if if_range_ok {
        range::parse(header("range"), len)
    } else {
        Ranged::Full
    };

    let mut resp = match ranged {
        Ranged::Unsatisfiable => {
            return Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
                .header("content-range", format!("bytes */{len}"))
                .header("accept-ranges", "bytes")
                .json(
                    &json!({"error": format!("the range is outside the {len} bytes of the video")}),
                ));
        }
        Ranged::Full => HttpResponse::Ok(),
        Ranged::Part { start, end } => {
            let mut r = HttpResponse::build(StatusCode::PARTIAL_CONTENT);
            r.header("content-range", format!("bytes {start}-{end}/{len}"));
            r
        }
    };
    let (start, count) = match ranged {
        Ranged::Part { start, end } => (start, end - start + 1),
        _ => (0, len),
    };
    resp.content_type("video/mp4")
        .header("accept-ranges", "bytes")
        .header("etag", etag)
        .header("cache-control", "no-cache");
    if let Some(lm) = last_modified {
        resp.header("last-modified", lm);
    }
    more(&mut resp);
    let body = body::Body::new(layout, start, start + count, open);
    Ok(resp.body(Body::from_message(SizedStream::new(count, body))))
}

/// The fragments of a segment file, read once per version of the file.
fn file_fragments(
    shared: &Shared,
    path: &std::path::Path,
) -> Result<Option<Arc<media::Fragments>>> {
    let meta = std::fs::metadata(path)?;
    let key = (path.to_owned(), meta.len(), meta.modified().ok());
    if let Some(f) = shared.fragments.get(&key) {
        return Ok(Some(f));
    }
    let Some(f) = media::fragments(path)? else {
        return Ok(None);
    };
    let f = Arc::new(f);
    shared
        .fragments
        .insert(key, f.clone(), |k| k.0.as_path() == path);
    Ok(Some(f))
}

/// The stitched playback of `stream` over `[start_us, end_us]`, reused while its files are
/// intact (see [`OPEN_PLAN_TTL`]).
fn playback_plan(
    shared: &Shared,
    stream: &str,
    start_us: Option<i64>,
    end_us: Option<i64>,
) -> Result<Arc<stitch::Plan>> {
    let key = (stream.to_owned(), start_us, end_us);
    if let Some((plan, made)) = shared.plans.get(&key) {
        let open = end_us.is_none_or(|e| e > plan.end_us);
        let intact = plan
            .layout
            .files
            .iter()
            .zip(&plan.needs)
            .all(|(p, need)| std::fs::metadata(p).is_ok_and(|m| m.len() >= *need));
        if intact && (!open || made.elapsed() < OPEN_PLAN_TTL) {
            return Ok(plan);
        }
    }
    let dir = shared.recordings_dir();
    let recs = shared.store.overlapping(stream, start_us, end_us)?;
    let mut sources = Vec::with_capacity(recs.len() + 1);
    for r in &recs {
        let path = dir.join(r.file_path());
        match file_fragments(shared, &path) {
            Ok(Some(frags)) => sources.push(stitch::Source {
                recording_id: Some(r.id),
                start_ms: r.start_ms,
                path,
                frags,
            }),
            Ok(None) => log::debug!("playback: {} is not fragmented", r.file_path()),
            Err(e) => log::warn!("playback: {}: {e}", r.file_path()),
        }
    }
    let last = recs.last();
    if end_us.is_none_or(|e| last.is_none_or(|r| r.end_us() < e)) {
        let after = shared.store.newest(stream)?.map(|r| r.start_ms);
        // The newest file, when it is newer than the index: the segment being written, which
        // the index does not have until it is closed.
        if let Some((ms, path)) = live::newest_segment(&dir.join(stream))
            && after.is_none_or(|a| ms > a)
            && end_us.is_none_or(|e| ms * 1000 <= e)
            && let Ok(Some(frags)) = file_fragments(shared, &path)
        {
            sources.push(stitch::Source {
                recording_id: None,
                start_ms: ms,
                path,
                frags,
            });
        }
    }
    let plan = Arc::new(stitch::plan(&sources, start_us, end_us)?);
    if let Some(why) = &plan.cut_short {
        log::info!("playback of {stream}: ends early: {why}");
    }
    shared
        .plans
        .insert(key, (plan.clone(), std::time::Instant::now()), |_| false);
    Ok(plan)
}

/// The stream and `[start, end]` of a playback request.
async fn playback_request(
    st: &State,
    req: &HttpRequest,
) -> Result<(Arc<stitch::Plan>, String, Vec<(String, String)>)> {
    let id = known_stream(st, req).await?;
    let q = query(req);
    let start = time_param(&q, &["start", "start_time"])?;
    let end = time_param(&q, &["end", "end_time"])?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Error::bad_request("start is after end"));
    }
    let shared = st.get_ref().clone();
    let stream = id.clone();
    let plan = blocking(move || playback_plan(&shared, &stream, start, end)).await?;
    Ok((plan, id, q))
}

async fn playback_mp4(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let (plan, id, q) = playback_request(&st, &req).await?;
    let download = matches!(param(&q, &["download"]), Some("1" | "true" | "yes"));
    let name = format!(
        "{id}_{}_{}.mp4",
        time::segment_name(plan.start_us.div_euclid(1000)),
        time::segment_name(plan.end_us.div_euclid(1000))
    );
    let etag = plan.etag();
    let layout = plan.layout.clone();
    serve_layout(&req, layout, &etag, None, None, |r| {
        if download {
            r.header(
                "content-disposition",
                format!("attachment; filename=\"{name}\""),
            );
        }
    })
}

async fn playback_json(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let (plan, _, _) = playback_request(&st, &req).await?;
    let spans: Vec<Value> = plan
        .spans
        .iter()
        .map(|s| {
            json!({
                "media_start_seconds": s.media_start_us as f64 / 1e6,
                "start_time": time::rfc3339_us(s.start_us),
                "end_time": time::rfc3339_us(s.end_us),
                "recording_id": s.recording_id,
            })
        })
        .collect();
    Ok(json_ok(&json!({
        "start_time": time::rfc3339_us(plan.start_us),
        "end_time": time::rfc3339_us(plan.end_us),
        "duration_seconds": plan.duration_us as f64 / 1e6,
        "spans": spans,
    })))
}

/// The live view: an endless fragmented MP4 tailing the segment being written.
async fn live_mp4(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = known_stream(&st, &req).await?;
    let dir = st.recordings_dir().join(&id);
    let shared = st.get_ref().clone();
    let d = dir.clone();
    let changed = blocking(move || {
        if live::newest_segment(&d).is_none() {
            return Err(Error::not_found(format!(
                "stream {id:?} has not recorded anything yet"
            )));
        }
        shared.live_hub()?.subscribe(&id, &d)
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    ntex::rt::spawn(live::run(dir, changed, tx));
    Ok(HttpResponse::Ok()
        .content_type("video/mp4")
        .header("cache-control", "no-store")
        .streaming(Receiver(rx)))
}

/// A channel's receiving end as a response body.
struct Receiver<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> ntex::util::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(unix_s: i64) -> String {
    jiff::Timestamp::from_second(unix_s).map_or_else(
        |_| String::new(),
        |t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    )
}

struct HealthReport {
    problems: Vec<String>,
    disk: Option<disk::DiskUsage>,
    recordings: u64,
    unindexable: u64,
}

fn health_report(st: &Shared) -> Result<HealthReport> {
    let config = st.config();
    let mut problems = Vec::new();
    let disk = match disk::usage(&config.storage.recordings_dir) {
        Ok(d) => {
            if d.free_percent() < config.retention.min_free_percent {
                problems.push(format!(
                    "disk: {:.1}% free, below min_free_percent ({}%)",
                    d.free_percent(),
                    config.retention.min_free_percent
                ));
            }
            Some(d)
        }
        Err(e) => {
            problems.push(format!("disk: {e}"));
            None
        }
    };
    for (id, s) in st.statuses.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if s.state == crate::recorder::State::Backoff {
            problems.push(format!(
                "stream {id}: not recording: {}",
                s.last_error.as_deref().unwrap_or("restarting")
            ));
        }
    }
    if st.counters.short_with_only_locked.load(Ordering::Relaxed) {
        problems.push(format!(
            "disk: below the target of {}% free and only locked recordings are left; unlock or delete some",
            config.retention.target_free_percent
        ));
    }
    let recordings = st.store.count()?;
    let unindexable = st.store.unindexable_count()?;
    if unindexable > 0 {
        problems.push(format!("index: {unindexable} file(s) could not be indexed"));
    }
    Ok(HealthReport {
        problems,
        disk,
        recordings,
        unindexable,
    })
}

async fn health(st: State) -> Result<HttpResponse> {
    let shared = st.get_ref().clone();
    let r = blocking(move || health_report(&shared)).await?;
    let disk = r.disk.map_or(Value::Null, |d| {
        json!({"total_bytes": d.total_bytes, "free_bytes": d.free_bytes, "free_percent": (d.free_percent() * 100.0).round() / 100.0})
    });
    Ok(json_ok(&json!({
        "status": if r.problems.is_empty() { "healthy" } else { "degraded" },
        "problems": r.problems,
        "disk": disk,
        "index": {"recordings": r.recordings, "unindexable_files": r.unindexable},
    })))
}

async fn metrics(st: State) -> Result<HttpResponse> {
    let shared = st.get_ref().clone();
    let text = blocking(move || {
        let config = shared.config();
        let totals = shared.store.stream_totals()?;
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let label = |k: &str, v: &str| {
            format!(
                "{{{k}=\"{}\"}}",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )
        };
        family(
            "wallflower_recordings",
            "gauge",
            "Recordings in the index, per stream.",
            totals
                .iter()
                .map(|(s, (n, _))| (label("stream", s), n.to_string()))
                .collect(),
        );
        family(
            "wallflower_recording_bytes",
            "gauge",
            "Bytes of the recordings in the index, per stream.",
            totals
                .iter()
                .map(|(s, (_, b))| (label("stream", s), b.to_string()))
                .collect(),
        );
        let statuses = shared
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        family(
            "wallflower_recorder_restarts_total",
            "counter",
            "Recorder (ffmpeg) restarts since the daemon started, per stream.",
            config
                .streams
                .iter()
                .map(|s| {
                    (
                        label("stream", &s.id),
                        statuses.get(&s.id).map_or(0, |x| x.restarts).to_string(),
                    )
                })
                .collect(),
        );
        family(
            "wallflower_retention_deletions_total",
            "counter",
            "Recordings deleted since the daemon started, by reason.",
            retention::REASONS
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        label("reason", r),
                        shared.counters.deletions[i]
                            .load(Ordering::Relaxed)
                            .to_string(),
                    )
                })
                .collect(),
        );
        if let Ok(d) = disk::usage(&config.storage.recordings_dir) {
            family(
                "wallflower_disk_free_bytes",
                "gauge",
                "Free bytes on the recordings filesystem.",
                vec![(String::new(), d.free_bytes.to_string())],
            );
            family(
                "wallflower_disk_total_bytes",
                "gauge",
                "Size of the recordings filesystem.",
                vec![(String::new(), d.total_bytes.to_string())],
            );
        }
        family(
            "wallflower_index_size_bytes",
            "gauge",
            "Size of the index file.",
            vec![(String::new(), shared.store.file_size_bytes().to_string())],
        );
        family(
            "wallflower_index_unindexable_files",
            "gauge",
            "Segment files that could not be indexed.",
            vec![(String::new(), shared.store.unindexable_count()?.to_string())],
        );
        Ok(out)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

async fn index_page(req: HttpRequest) -> HttpResponse {
    let etag = crate::ui::etag();
    let fresh = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return HttpResponse::build(StatusCode::NOT_MODIFIED)
            .header("etag", etag)
            .finish();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .header("etag", etag)
        .header("cache-control", "no-cache")
        .body(crate::ui::INDEX_HTML)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("Europe%2FBerlin"), "Europe/Berlin");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
