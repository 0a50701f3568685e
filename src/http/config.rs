//! The config over HTTP (SPEC §6): the text with its tag, validation, and a whole new text
//! saved with `If-Match` and applied by the daemon's one reload path. Admin only.

use std::time::Duration;

use super::*;
use crate::config::ConfigErrors;
use crate::config::save::{self, Saved};

/// How long a save waits for the daemon to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(10);

fn config_path(st: &State) -> Result<PathBuf> {
    st.config_path
        .clone()
        .ok_or_else(|| Error::not_found("this daemon runs without a config file (the demo)"))
}

/// `[{"line", "col", "key", "message"}]`, as `check-config` reports them.
fn errors_json(e: &ConfigErrors) -> Value {
    Value::Array(
        e.errors
            .iter()
            .map(|x| {
                let (key, message) = match x.message.split_once(": ") {
                    Some((k, m)) if !k.contains(char::is_whitespace) => (k, m),
                    _ => ("", x.message.as_str()),
                };
                json!({"line": x.line, "col": x.col, "key": key, "message": message})
            })
            .collect(),
    )
}

pub(super) async fn get_config(st: State) -> Result<HttpResponse> {
    let path = config_path(&st)?;
    let (text, tag) = blocking(move || save::read(&path)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/toml; charset=utf-8")
        .header("etag", tag)
        .header("cache-control", "no-store")
        .body(text))
}

async fn text_body(payload: web::types::Payload) -> Result<String> {
    String::from_utf8(read_config_body(payload).await?)
        .map_err(|_| Error::bad_request("the config must be UTF-8 text"))
}

pub(super) async fn validate_config(
    st: State,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let path = config_path(&st)?;
    let text = text_body(payload).await?;
    let errors = match crate::config::Config::parse(&text, &path) {
        Ok(_) => json!([]),
        Err(e) => errors_json(&e),
    };
    Ok(json_ok(&json!({ "errors": errors })))
}

/// What a save through the API gives back: the new config, or the errors of an invalid text.
type Outcome = std::result::Result<(Box<crate::config::Config>, Value), ConfigErrors>;

/// Saves `text` over the file at tag `if_match` and waits for the daemon's reload. Blocking;
/// the caller holds `config_save`.
fn save_and_apply(
    shared: &Shared,
    path: &std::path::Path,
    text: &str,
    if_match: &str,
    (who, addr, action): (&crate::auth::Identity, std::net::IpAddr, &str),
) -> Result<Outcome> {
    let seen = shared.reload_count();
    let running = shared.config();
    let (new, tag) = match save::save(path, text, if_match)? {
        Saved::Invalid(e) => return Ok(Err(e)),
        Saved::Written(new, tag) => (new, tag),
    };
    shared
        .auth
        .record(&who.audit_name(), addr, action, "config");
    // The rename wakes the daemon's config watch; its reload applies the file. Another reload
    // (a hand edit just before) may come first: wait for ours.
    let deadline = std::time::Instant::now() + APPLY_WAIT;
    let mut seen = seen;
    let applied = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !shared.wait_reload(seen, left) {
            break false;
        }
        seen = shared.reload_count();
        if *shared.config() == *new {
            break true;
        }
    };
    let restart = save::restart_needed(&running, &new);
    Ok(Ok((
        new,
        json!({"etag": tag, "applied": applied, "restart_needed": restart}),
    )))
}

fn invalid(e: &ConfigErrors) -> HttpResponse {
    HttpResponse::build(status_of(Kind::BadRequest)).json(&json!({
        "error": "the config would not be valid; nothing was written",
        "errors": errors_json(e),
    }))
}

pub(super) async fn put_config(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let path = config_path(&st)?;
    let if_match = req
        .headers()
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::new(
                Kind::PreconditionRequired,
                "send If-Match with the ETag of the config you edited",
            )
        })?;
    let text = text_body(payload).await?;
    let (shared, who, addr) = (
        st.get_ref().clone(),
        access::caller(&req)?,
        access::peer(&req),
    );
    let outcome = blocking(move || {
        let _one = shared.config_save.lock().unwrap_or_else(|e| e.into_inner());
        save_and_apply(
            &shared,
            &path,
            &text,
            &if_match,
            (&who, addr, "config_save"),
        )
    })
    .await?;
    Ok(match outcome {
        Ok((_, v)) => json_ok(&v),
        Err(e) => invalid(&e),
    })
}

/// A camera as the admin endpoints answer it: the URL with its password masked.
fn stream_json(s: &crate::config::Stream) -> Value {
    json!({
        "id": s.id, "name": s.name, "url": crate::auth::secret::mask_password(&s.url),
        "enabled": s.enabled, "retention_days": s.retention_days,
        "segment_seconds": s.segment_seconds,
    })
}

/// Applies `edit` to the current text and saves it; `id` names the stream in the answer.
async fn edit_streams(
    st: &State,
    req: &HttpRequest,
    action: &'static str,
    id: String,
    edit: impl FnOnce(&str) -> Result<String> + Send + Sync + 'static,
) -> Result<std::result::Result<(Option<Value>, Value), HttpResponse>> {
    let path = config_path(st)?;
    let (shared, who, addr) = (
        st.get_ref().clone(),
        access::caller(req)?,
        access::peer(req),
    );
    let outcome = blocking(move || {
        let _one = shared.config_save.lock().unwrap_or_else(|e| e.into_inner());
        let (text, tag) = save::read(&path)?;
        let new_text = edit(&text)?;
        let out = save_and_apply(&shared, &path, &new_text, &tag, (&who, addr, action))?;
        Ok(out.map(|(c, v)| (c.stream(&id).map(stream_json), v)))
    })
    .await?;
    Ok(outcome.map_err(|e| invalid(&e)))
}

async fn fields_of(payload: web::types::Payload) -> Result<serde_json::Map<String, Value>> {
    let body = read_body(payload).await?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::bad_request(
            "the body must be a JSON object of stream settings",
        )),
    }
}

pub(super) async fn add_stream(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let mut fields = fields_of(payload).await?;
    let id = match fields.remove("id") {
        Some(Value::String(id)) => id,
        _ => return Err(Error::bad_request("a new stream needs an \"id\"")),
    };
    if !fields.get("url").is_some_and(Value::is_string) {
        return Err(Error::bad_request("a new stream needs a \"url\""));
    }
    let key = id.clone();
    let r = edit_streams(&st, &req, "stream_add", id.clone(), move |t| {
        crate::config::edit::add_stream(t, &key, &fields)
    })
    .await?;
    Ok(match r {
        Ok((stream, _)) => HttpResponse::Created().json(&stream.unwrap_or(Value::Null)),
        Err(resp) => resp,
    })
}

pub(super) async fn patch_stream(
    st: State,
    req: HttpRequest,
    payload: web::types::Payload,
) -> Result<HttpResponse> {
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    let fields = fields_of(payload).await?;
    let key = id.clone();
    let r = edit_streams(&st, &req, "stream_change", id, move |t| {
        crate::config::edit::patch_stream(t, &key, &fields)
    })
    .await?;
    Ok(match r {
        Ok((stream, _)) => json_ok(&stream.unwrap_or(Value::Null)),
        Err(resp) => resp,
    })
}

pub(super) async fn delete_stream(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    let key = id.clone();
    let r = edit_streams(&st, &req, "stream_remove", id.clone(), move |t| {
        crate::config::edit::remove_stream(t, &key)
    })
    .await?;
    Ok(match r {
        Ok(_) => json_ok(&json!({"status": "removed", "id": id})),
        Err(resp) => resp,
    })
}
