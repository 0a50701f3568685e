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
        let seen = shared.reload_count();
        let running = shared.config();
        match save::save(&path, &text, &if_match)? {
            Saved::Invalid(e) => Ok(Err(e)),
            Saved::Written(new, tag) => {
                shared
                    .auth
                    .record(&who.audit_name(), addr, "config_save", "config");
                // The rename wakes the daemon's config watch; its reload applies the file.
                // Another reload (a hand edit just before) may come first: wait for ours.
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
                Ok(Ok(
                    json!({"etag": tag, "applied": applied, "restart_needed": restart}),
                ))
            }
        }
    })
    .await?;
    match outcome {
        Ok(v) => Ok(json_ok(&v)),
        Err(e) => Ok(
            HttpResponse::build(status_of(Kind::BadRequest)).json(&json!({
                "error": "the config is not valid; nothing was written",
                "errors": errors_json(&e),
            })),
        ),
    }
}
