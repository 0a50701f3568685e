//! Streams and recordings: listings, calendar dates, one recording, lock and delete.

use super::*;

/// A recording as SPEC §4 shapes it.
#[derive(serde::Serialize)]
pub(super) struct RecordingJson<'a> {
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

pub(super) fn recording_json(r: &Recording) -> HttpResponse {
    HttpResponse::Ok().json(&RecordingJson::from(r))
}

pub(super) async fn streams(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let config = st.config();
    // Camera URLs may hold passwords: admins see them masked, viewers not at all.
    let admin = access::caller(&req).is_ok_and(|w| w.role == crate::auth::Role::Admin);
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
            let mut v = json!({
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
            });
            if admin {
                v["url"] = json!(crate::auth::secret::mask_password(&s.url));
            }
            v
        })
        .collect();
    Ok(json_ok(&Value::Array(list)))
}

/// The stream id of the path, if the config or the index knows it.
pub(super) async fn known_stream(st: &State, req: &HttpRequest) -> Result<String> {
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

pub(super) async fn stream_recordings(st: State, req: HttpRequest) -> Result<HttpResponse> {
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
    st.listings
        .insert(key, body.clone(), body.len(), |k| k.3 != generation);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

pub(super) async fn stream_dates(st: State, req: HttpRequest) -> Result<HttpResponse> {
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

pub(super) async fn recording(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let store = st.store.clone();
    let rec = blocking(move || store.get(id)).await?;
    Ok(recording_json(&rec))
}

pub(super) async fn patch_recording(
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
    let (auth, who, addr) = (st.auth.clone(), access::caller(&req)?, access::peer(&req));
    let rec = blocking(move || {
        let rec = store.get(id)?;
        set_file_locked(&dir.join(rec.file_path()), locked)?;
        let rec = store.set_locked(id, locked)?;
        let action = if locked { "lock" } else { "unlock" };
        account::record(&auth, &who, addr, action, &rec.file_path());
        Ok(rec)
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
pub(super) fn set_file_locked(path: &std::path::Path, locked: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path)
        .map_err(|e| Error::from(e).context(path.display()))?
        .permissions();
    let mode = perm.mode();
    perm.set_mode(if locked { mode & !0o222 } else { mode | 0o200 });
    std::fs::set_permissions(path, perm).map_err(|e| Error::from(e).context(path.display()))
}

pub(super) async fn delete_recording(st: State, req: HttpRequest) -> Result<HttpResponse> {
    let id = id_param(&req)?;
    let (shared, dir) = (st.get_ref().clone(), st.recordings_dir());
    let (who, addr) = (access::caller(&req)?, access::peer(&req));
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
        )?;
        account::record(&shared.auth, &who, addr, "delete", &rec.file_path());
        Ok(())
    })
    .await?;
    Ok(json_ok(&json!({"status": "deleted", "id": id})))
}
